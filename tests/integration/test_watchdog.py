"""harddog (issue 5): /dev/watchdog in the guest and the uml_watchdog host helper: pings
keep it quiet; a missed ping sends the "hang" notification (mconsole=notify:) or kills the
instance; close stops it unless harddog.nowayout=1. The helper itself is compared with
uml-utilities' /usr/bin/uml_watchdog. USERMODE_WATCHDOG_TIMEOUT shortens its 60 s."""
from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from tests.integration.console import ROOT, USERMODE
from usermode.drivers import mconsole_proto as proto

TIMEOUT = 2
ENV = {**os.environ, "USERMODE_WATCHDOG_TIMEOUT": str(TIMEOUT)}
OURS = os.path.join(ROOT, ".venv", "bin", "uml_watchdog")
REAL = "/usr/bin/uml_watchdog"


def boot(tmp_path, script: bytes, *switches: str) -> subprocess.Popen:
    p = subprocess.Popen([USERMODE, "quiet", f"uml_dir={tmp_path / 'uml'}", *switches,
                          "init=/bin/sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=ENV)
    p.stdin.write(script)
    p.stdin.flush()
    return p


def listener(tmp_path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(30)
    return s, path


def next_notification(s: socket.socket) -> tuple[int, bytes, float]:
    kind, data = proto.parse_notify(s.recv(4096))
    return kind, data, time.monotonic()


def test_pings_then_silence_sends_hang(tmp_path) -> None:
    s, path = listener(tmp_path)
    script = (b"ls -l /dev/watchdog | awk '{print $1, $5, $6}'\n"
              b"exec 3>/dev/watchdog; for i in 1 2 3 4 5; do echo >&3; sleep 1; done\n"
              b"echo pinged; sleep 6; echo done; exit 0\n")
    p = boot(tmp_path, script, "umid=dog", f"mconsole=notify:{path}")
    try:
        assert next_notification(s)[0] == proto.NOTIFY_SOCKET
        start = time.monotonic()
        kind, data, when = next_notification(s)
        assert (kind, data) == (proto.NOTIFY_HANG, b"")
        # five pings a second apart kept it quiet; the hang came TIMEOUT s after the last
        assert when - start >= 5 + TIMEOUT - 1, when - start
        out, _ = p.communicate(timeout=30)
        assert out == b"crw------- 10, 130\npinged\ndone\n"      # the guest itself runs on
    finally:
        s.close()
        p.kill()


def test_missed_ping_kills_the_instance(tmp_path) -> None:
    start = time.monotonic()
    p = boot(tmp_path, b"exec 3>/dev/watchdog; echo >&3; echo opened; sleep 60; echo survived\n")
    out, err = p.communicate(timeout=60)
    assert out == b"opened\n" and b"Traceback" not in err, err
    assert p.returncode == 130                        # SIGINT from the helper
    assert time.monotonic() - start < 30


def test_close_stops_it_and_second_open_is_busy(tmp_path) -> None:
    s, path = listener(tmp_path)
    script = (b"exec 3>/dev/watchdog; echo >&3\n"
              b"(echo >/dev/watchdog) 2>&1 | grep -o 'Device or resource busy'\n"
              b"exec 3>&-; sleep 5; echo closed-and-quiet; exit 0\n")
    p = boot(tmp_path, script, "umid=dog2", f"mconsole=notify:{path}")
    try:
        assert next_notification(s)[0] == proto.NOTIFY_SOCKET
        out, _ = p.communicate(timeout=30)
        assert out == b"Device or resource busy\nclosed-and-quiet\n"
        # no hang notification: the next one is the panic of init's exit
        assert next_notification(s)[0] == proto.NOTIFY_PANIC
    finally:
        s.close()
        p.kill()


def test_nowayout_keeps_it_running_after_close(tmp_path) -> None:
    s, path = listener(tmp_path)
    script = b"printf V >/dev/watchdog; sleep 6; echo done; exit 0\n"
    p = boot(tmp_path, script, "umid=dog3", f"mconsole=notify:{path}", "harddog.nowayout=1")
    try:
        assert next_notification(s)[0] == proto.NOTIFY_SOCKET
        assert next_notification(s)[:2] == (proto.NOTIFY_HANG, b"")
        assert p.communicate(timeout=30)[0] == b"done\n"
    finally:
        s.close()
        p.kill()


@pytest.mark.parametrize("helper", [OURS, REAL])
def test_helper_protocol_matches_uml_utilities(helper) -> None:
    """Ready byte, pings, end of input -> status 0; bad arguments -> status 1."""
    if not os.path.exists(helper):
        pytest.skip(f"{helper} missing")     # REAL comes with uml-utilities (setup.sh)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        w = subprocess.Popen([helper, "-pid", str(sleeper.pid)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert len(w.stdout.read(1)) == 1
        w.stdin.write(b"\n\n")
        w.stdin.flush()
        w.stdin.close()
        assert w.wait(10) == 0 and sleeper.poll() is None
        for args in ([], ["-pid", "notanumber"], ["-bogus", "1"], ["-pid", "999999999"]):
            r = subprocess.run([helper, *args], capture_output=True, timeout=10,
                               stdin=subprocess.DEVNULL)
            assert r.returncode == 1, args
            if helper == OURS:
                assert len(r.stderr.decode().splitlines()) <= 2 and b"Traceback" not in r.stderr
    finally:
        sleeper.kill()
        sleeper.wait()


def test_helper_pid_mode_signals_the_target() -> None:
    """Our helper on its own, with -timeout: SIGINT to the target after the silence."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        w = subprocess.Popen([OURS, "-pid", str(sleeper.pid), "-timeout", "0.5"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        w.stdout.read(1)
        assert sleeper.wait(10) == -2 and w.wait(10) == 1
    finally:
        sleeper.kill()


def test_harddog_drives_the_real_uml_watchdog(tmp_path) -> None:
    """uml-utilities' helper as the harddog's (USERMODE_WATCHDOG_HELPER): it starts, takes
    pings, and ends when the device is closed; a reopen starts it again."""
    if not os.path.exists(REAL):
        pytest.skip("uml-utilities missing")
    script = (b"exec 3>/dev/watchdog && echo >&3 && echo >&3 && echo first\n"
              b"exec 3>&-; sleep 1; exec 3>/dev/watchdog && echo >&3 && echo second\n"
              b"exec 3>&-; sleep 1; exit 0\n")
    p = subprocess.run([USERMODE, "quiet", f"uml_dir={tmp_path}", "init=/bin/sh"],
                       input=script, capture_output=True, timeout=60,
                       env={**os.environ, "USERMODE_WATCHDOG_HELPER": REAL})
    assert p.stdout == b"first\nsecond\n", p.stderr
    left = subprocess.run(["pgrep", "-f", f"{REAL} -pid"], capture_output=True, text=True)
    assert left.stdout == "", "a helper outlived its close"
