"""The tty log record format (docs/ttylog.md) and uml_watchdog's argument parsing."""
from __future__ import annotations

import pytest

from usermode.drivers import ttylog
from usermode.tools import uml_watchdog


def test_record_layout_is_uml_tty_log_buf() -> None:
    raw = ttylog.pack(ttylog.TTY_LOG_WRITE, 7, ttylog.TTY_WRITE, b"hi", 1700000000.25)
    assert len(raw) == 40 + 2 and ttylog.RECORD.size == 40
    assert raw[:4] == (3).to_bytes(4, "little") and raw[8:16] == (7).to_bytes(8, "little")
    assert raw[16:20] == (2).to_bytes(4, "little") and raw[20:24] == (2).to_bytes(4, "little")
    assert raw[24:32] == (1700000000).to_bytes(8, "little")
    assert raw[32:40] == (250000).to_bytes(8, "little") and raw[40:] == b"hi"


def test_parse_stops_at_a_truncated_record() -> None:
    a = ttylog.pack(ttylog.TTY_LOG_OPEN, 1, 0, b"tty1", 5.0)
    b = ttylog.pack(ttylog.TTY_LOG_WRITE, 1, ttylog.TTY_READ, b"abc", 6.5)
    recs = list(ttylog.parse(a + b + b[:42]))
    assert [(r.what, r.data, r.time) for r in recs] == [(1, b"tty1", 5.0), (3, b"abc", 6.5)]


def test_watchdog_args(monkeypatch) -> None:
    monkeypatch.delenv("USERMODE_WATCHDOG_TIMEOUT", raising=False)
    assert uml_watchdog.parse_args(["-pid", "12"]) == ("pid", "12", 60.0)
    assert uml_watchdog.parse_args(["-mconsole", "/s", "-timeout", "2.5"]) == \
        ("mconsole", "/s", 2.5)
    monkeypatch.setenv("USERMODE_WATCHDOG_TIMEOUT", "3")
    assert uml_watchdog.parse_args(["-pid", "1"])[2] == 3.0
    for bad in ([], ["-pid"], ["-pid", "x"], ["-pid", "1", "-timeout", "0"], ["-what", "1"]):
        with pytest.raises(uml_watchdog.UsageError):
            uml_watchdog.parse_args(bad)
