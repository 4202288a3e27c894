"""tty logging (issue 5): tty_log_dir= / tty_log_fd= record every byte typed on and shown
by guest terminals in UML's tty_log_buf format; tty_replay plays the session back."""
from __future__ import annotations

import os
import select
import subprocess
import time
import types

from tests.integration.console import ROOT, USERMODE, Console
from tests.integration.test_mconsole import OURS as MCONSOLE, PROMPT, mc
from usermode.drivers import ttylog
from usermode.drivers.tty import Tty

REPLAY = os.path.join(ROOT, ".venv", "bin", "tty_replay")


def everything(c: Console, seen: list[bytes]) -> bytes:
    """All the instance wrote to its terminal, to the end."""
    while True:
        r, _, _ = select.select([c.master], [], [], 10)
        try:
            data = os.read(c.master, 65536) if r else b""
        except OSError:
            data = b""
        if not data:
            break
        c.buf += data
    return b"".join(seen) + c.buf


def replay(*args: str) -> tuple[bytes, float]:
    start = time.monotonic()
    p = subprocess.run([REPLAY, *args], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout, time.monotonic() - start


def test_console_session_logged_and_replayed(tmp_path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    c = Console(["quiet", "umid=log", f"uml_dir={tmp_path / 'uml'}", f"tty_log_dir={logs}"])
    seen = []
    try:
        seen.append(c.read_until(PROMPT, 60))
        for line in ("echo hel''lo", "sleep 2; echo after-a-while", "stty -echo",
                     "echo secret-typed", "stty echo"):
            c.send(line.encode() + b"\r")
            seen.append(c.read_until(PROMPT, 30))
        assert mc(MCONSOLE, str(tmp_path / "uml" / "log" / "mconsole"), "halt")[0] == 0
        shown = everything(c, seen)
        c.wait(30)
    finally:
        c.kill()
    files = os.listdir(logs)
    assert len(files) == 1 and files[0].split("-")[0].isdigit(), files
    log = str(logs / files[0])
    records = list(ttylog.parse(open(log, "rb").read()))
    assert records[0].what == ttylog.TTY_LOG_OPEN and records[0].data == b"console"
    assert records[-1].what == ttylog.TTY_LOG_CLOSE

    fast, took = replay("--fast", log)
    assert fast == shown and b"after-a-while" in fast          # byte for byte
    assert took < 1.5
    timed, took = replay(log)
    assert timed == shown and took >= 2                        # the sleep 2 is replayed
    typed, _ = replay("--fast", "--input", log)
    assert typed == b"echo hel''lo\rsleep 2; echo after-a-while\rstty -echo\r" \
                    b"echo secret-typed\rstty echo\r"
    listing = subprocess.run([REPLAY, "--list", log], capture_output=True, text=True).stdout
    assert listing.startswith("1\tconsole\t")
    execs = subprocess.run([REPLAY, "--execs", log], capture_output=True, text=True).stdout
    # init's respawned shell, then the one command ash really executes (stty runs inside)
    assert [line.split("\t")[2] for line in execs.splitlines()] == ["-/bin/sh", "sleep 2"]


def test_plain_console_into_an_fd(tmp_path) -> None:
    log = tmp_path / "all.log"
    with open(log, "wb") as f:
        p = subprocess.run([USERMODE, "quiet", f"uml_dir={tmp_path}",
                            f"tty_log_fd={f.fileno()}", "init=/bin/sh"],
                           input=b"echo one; echo two >&2; exit\n", capture_output=True,
                           timeout=60, pass_fds=(f.fileno(),))
    assert p.stdout == b"one\ntwo\n"                # stdout and stderr share the console
    out, _ = replay("--fast", str(log))
    assert out == p.stdout
    assert replay("--fast", "--input", str(log))[0] == b"echo one; echo two >&2; exit\n"


def test_bad_switches_are_one_line(tmp_path) -> None:
    for switch, text in ((f"tty_log_dir={tmp_path}/nope", "no such directory"),
                         ("tty_log_fd=57", "Bad file descriptor"),
                         ("tty_log_fd=x", "expected tty_log_fd=N")):
        p = subprocess.run([USERMODE, "quiet", f"uml_dir={tmp_path}", switch, "init=/bin/true"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode != 0 and text in p.stderr and len(p.stderr.splitlines()) == 1, \
            p.stderr
    p = subprocess.run([REPLAY, str(tmp_path / "missing")], capture_output=True, text=True)
    assert p.returncode == 1 and "No such file" in p.stderr and "Traceback" not in p.stderr


def test_pty_slave_logged(tmp_path) -> None:
    """A pty slave's Tty logs like a console line (unit level: the driver side only)."""
    logger = ttylog.TtyLogger(str(tmp_path))
    shown = []
    tty = Tty("pts/0", shown.append, types.SimpleNamespace(ttylog=logger))
    tty.receive(b"ls\r")
    tty.output(b"a\nb\n")
    tty.close_log()
    (name,) = os.listdir(tmp_path)
    recs = list(ttylog.parse(open(tmp_path / name, "rb").read()))
    assert (recs[0].what, recs[0].data) == (ttylog.TTY_LOG_OPEN, b"pts/0")
    assert (recs[-1].what, recs[-1].data) == (ttylog.TTY_LOG_CLOSE, b"")
    assert all(r.what == ttylog.TTY_LOG_WRITE and r.tty == recs[0].tty for r in recs[1:-1])
    typed = b"".join(r.data for r in recs if r.direction == ttylog.TTY_READ)
    echoed = b"".join(r.data for r in recs[1:-1] if r.direction == ttylog.TTY_WRITE)
    assert typed == b"ls\r" and echoed == b"".join(shown) == b"ls\r\na\r\nb\r\n"
