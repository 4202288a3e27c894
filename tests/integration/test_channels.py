"""Consoles and serial lines on host channels (issue 3): con1=port, ssl0=port, con1=pty,
con=port shared by several consoles under busybox init, and one-line errors for bad ones."""
from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import time

import pytest

from tests.integration.console import USERMODE
from usermode.tools.busybox_root import build, find_busybox

pytestmark = pytest.mark.skipif(find_busybox() is None, reason="busybox-static not installed")

LINE_INIT = """#!/bin/sh
# pid 1: a shell on the line given as $1, started as a session leader
setsid sh -c "exec sh -i </dev/$1 >/dev/$1 2>&1" &
exec sleep 1000
"""

INITTAB = """::sysinit:/etc/init.d/rcS
tty1::respawn:-/bin/sh
tty2::respawn:-/bin/sh
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
    r = build(str(tmp_path_factory.mktemp("chan") / "root"))
    with open(os.path.join(r, "lineinit"), "w") as f:
        f.write(LINE_INIT)
    os.chmod(os.path.join(r, "lineinit"), 0o755)
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def boot(*args: str, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen([USERMODE, *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.kill()
    p.wait(10)


class Telnet:
    def __init__(self, port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.buf = b""

    def read_until(self, pat: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while pat not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"waited for {pat!r}; got {self.buf[-1000:]!r}")
            r, _, _ = select.select([self.s], [], [], left)
            if r:
                data = self.s.recv(65536)
                if not data:
                    raise TimeoutError(f"connection closed; got {self.buf[-1000:]!r}")
                self.buf += data
        i = self.buf.index(pat) + len(pat)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def send(self, data: bytes) -> None:
        self.s.sendall(data)

    def close(self) -> None:
        self.s.close()


def test_console_on_a_telnet_port(root: str) -> None:
    port = free_port()
    p = boot("quiet", f"rootflags={root}", f"con1=port:{port}", "init=/lineinit", "tty1")
    try:
        t = Telnet(port)
        head = t.read_until(b"# ")
        # the server offers to echo and to suppress go-ahead (then asks for the window size)
        assert head.startswith(bytes((255, 251, 1, 255, 251, 3)))
        t.send(b"echo hel''lo\r\n")                  # a telnet client's Enter is CR LF
        assert b"\r\nhello\r\n" in t.read_until(b"# ")
        t.send(b"tty\r\x00")                          # ... or CR NUL
        assert b"/dev/tty1\r\n" in t.read_until(b"# ")
        t.send(bytes((255, 253, 1)) + b"echo a\xff\xffb | od -An -tx1\r\n")   # IAC stripped
        assert b"61 ff 62" in t.read_until(b"# ")
        t.close()
    finally:
        stop(p)


def test_serial_line_on_a_telnet_port(root: str) -> None:
    port = free_port()
    p = boot("quiet", f"rootflags={root}", f"ssl0=port:{port}", "init=/lineinit", "ttyS0")
    try:
        t = Telnet(port)
        t.read_until(b"# ")
        t.send(b"echo hel''lo; tty\r\n")
        out = t.read_until(b"# ")
        assert b"\r\nhello\r\n/dev/ttyS0\r\n" in out
        t.close()
    finally:
        stop(p)


def test_console_on_a_host_pty(root: str) -> None:
    p = boot(f"rootflags={root}", "con1=pty", "init=/lineinit", "tty1", stderr=subprocess.PIPE)
    fd = -1
    try:
        log = b""
        deadline = time.monotonic() + 30
        while (m := re.search(rb"Virtual console 1 assigned device (/dev/pts/\d+)", log)) is None:
            assert time.monotonic() < deadline, log
            r, _, _ = select.select([p.stderr], [], [], 1)
            if r:
                log += os.read(p.stderr.fileno(), 4096)
        fd = os.open(m.group(1).decode(), os.O_RDWR | os.O_NOCTTY)
        buf = b""

        def read_until(pat: bytes) -> bytes:
            nonlocal buf
            end = time.monotonic() + 20
            while pat not in buf:
                assert time.monotonic() < end, buf
                r, _, _ = select.select([fd], [], [], 1)
                if r:
                    buf += os.read(fd, 4096)
            i = buf.index(pat) + len(pat)
            out, buf = buf[:i], buf[i:]
            return out

        read_until(b"# ")
        os.write(fd, b"echo hel''lo; tty\r")
        assert b"\r\nhello\r\n/dev/tty1\r\n" in read_until(b"# ")
    finally:
        if fd >= 0:
            os.close(fd)
        stop(p)


def _with_inittab(root: str):
    path = os.path.join(root, "etc/inittab")
    with open(path) as f:
        saved = f.read()
    with open(path, "w") as f:
        f.write(INITTAB)
    return lambda: open(path, "w").write(saved)


def _two_clients(port: int):
    a = Telnet(port)
    a.read_until(b"$ ")
    b = Telnet(port)
    b.read_until(b"$ ")
    a.send(b"tty\r\n")
    ta = re.search(rb"/dev/tty\d", a.read_until(b"$ ")).group(0)
    b.send(b"tty\r\n")
    tb = re.search(rb"/dev/tty\d", b.read_until(b"$ ")).group(0)
    assert {ta, tb} == {b"/dev/tty1", b"/dev/tty2"}
    return a, b, ta


def test_busybox_init_gettys_share_one_port(root: str) -> None:
    """con=port:N for every console: inittab starts shells on tty1 and tty2; each telnet
    connection gets the next free console; a client that leaves hangs its shell up and
    the other line goes on."""
    restore = _with_inittab(root)
    port = free_port()
    p = boot("quiet", f"rootflags={root}", f"con=port:{port}")
    try:
        a, b, ta = _two_clients(port)
        a.send(b"echo $$\r\n")
        pid_a = re.search(rb"\n(\d+)\r\n", a.read_until(b"$ ")).group(1).decode()
        a.close()                                    # hang up: that shell ends
        deadline = time.monotonic() + 10
        while True:
            b.send(b"ps -o pid,stat | grep -w %s | grep -v Z || echo gone\r\n" % pid_a.encode())
            if b"\r\ngone\r\n" in b.read_until(b"$ "):
                break
            assert time.monotonic() < deadline, "the hung-up shell is still running"
            time.sleep(0.5)
        b.send(b"echo still here\r\n")
        assert b"still here\r\n" in b.read_until(b"$ ")
    finally:
        stop(p)
        restore()


def test_busybox_init_respawns_after_hangup(root: str) -> None:
    restore = _with_inittab(root)
    port = free_port()
    p = boot("quiet", f"rootflags={root}", f"con=port:{port}")
    try:
        a, b, ta = _two_clients(port)
        a.close()
        c = Telnet(port)
        c.read_until(b"$ ", timeout=10)
        c.send(b"tty\r\n")
        assert ta in c.read_until(b"$ ")
    finally:
        stop(p)
        restore()


def test_unconfigured_line_is_enodev(root: str) -> None:
    # tty2 and ttyS0 have no channel; tty1 (null) opens
    script = ("echo x >/dev/tty1 && echo tty1-ok; echo x >/dev/tty2 || echo tty2-failed; "
              "echo x >/dev/ttyS0 || echo ttyS0-failed")
    with open(os.path.join(root, "chk"), "w") as f:
        f.write(script + "\n")
    r = subprocess.run([USERMODE, "quiet", f"rootflags={root}", "con1=null", "init=/bin/sh",
                        "/chk"], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert b"tty1-ok" in out and b"tty2-failed" in out and b"ttyS0-failed" in out, out
    assert b"No such device" in out


BAD = [
    (["con1=bogus"], "con1=bogus: unknown channel type 'bogus'"),
    (["ssl0=port:abc"], "port channel needs a port number"),
    (["con1=port:70000"], "port channel needs a port number"),
    (["con=pty,fd:1"], "only fd and null channels"),
    (["con1=tty:/dev/tty5"], "tty channel is not supported"),
    (["con64=pty"], "numbered 0-63"),
    (["con1=xterm"], "needs an X display"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_channels_are_one_line(args: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    p = subprocess.run([USERMODE, "quiet", *args, "init=/bin/true"], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], p.stderr


def test_port_in_use_is_one_line(root: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = subprocess.run([USERMODE, "quiet", f"rootflags={root}", f"con1=port:{port}",
                            "init=/bin/true"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], p.stderr
