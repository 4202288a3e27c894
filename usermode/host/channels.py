"""Host channels behind consoles and serial lines (UML's con=/ssl= back-ends).

A channel is where the bytes of one guest line (console or serial line) go on the host:

    fd:N / fd:IN,fd:OUT   host file descriptors (the default con0=fd:0,fd:1)
    null                  nothing: reads see end of file, writes are discarded
    pty                   a new host pseudo-terminal; attach with `screen /dev/pts/N`
    port:N                a telnet server on 127.0.0.1:N; lines sharing a port take the
                          connections in turn (the next free line gets the next client)
    xterm                 a pty shown in a new xterm window (needs $DISPLAY and xterm)

Every channel has the same small interface: fileno() for the loop, read(), write(data),
close(), a description, is_tty (whether the guest sees a terminal), and start(), which
registers it with the kernel loop and calls back on input and hangup. This module is the
only place this feature touches host fds, ptys and sockets.
"""
from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
from typing import Callable

from usermode.host import events


class ChannelError(Exception):
    """A channel could not be set up (bad spec, port in use, no display): one line."""


class _Again(Exception):
    """A read found nothing after all (not end of file)."""


Input = Callable[[bytes], None]
Hangup = Callable[[], None]


def write_within(fd: int, data: bytes, timeout: float) -> int:
    """Write what the fd takes within timeout seconds (a reader that stopped reading must
    not stall the kernel loop); returns the count written."""
    import select
    import time
    total, deadline = 0, time.monotonic() + timeout
    while total < len(data):
        try:
            total += os.write(fd, data[total:])
            continue
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            break
        select.select([], [fd], [], left)
    return total


class Channel:
    kind = "?"
    is_tty = False
    on_resize: Callable[[int, int], None] | None = None

    def __init__(self) -> None:
        self.loop = None
        self.on_input: Input | None = None
        self.on_hangup: Hangup | None = None
        self.on_connect: Hangup | None = None
        self.polled = False            # input fd can't be waited on (a regular file)
        self._reading = -1

    @property
    def description(self) -> str:
        return self.kind

    # -- the small interface
    def fileno(self) -> int:
        return -1

    def read(self) -> bytes:
        fd = self.fileno()
        return events.read_fd(fd) if fd >= 0 else b""

    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        self._stop_reading()

    def winsize(self) -> tuple[int, int]:
        return 24, 80

    def restore(self) -> None:
        """Give host terminals back in the mode we found them."""

    # -- loop registration
    def start(self, loop, on_input: Input, on_hangup: Hangup,
              on_connect: Hangup | None = None) -> None:
        self.loop, self.on_input, self.on_hangup = loop, on_input, on_hangup
        self.on_connect = on_connect
        self._start_reading()

    def _start_reading(self) -> None:
        fd = self.fileno()
        if fd < 0 or self.loop is None:
            return
        try:
            self.loop.add_reader(fd, self._readable)
            self._reading = fd
        except OSError:
            self.polled = True

    def _stop_reading(self) -> None:
        if self._reading >= 0 and self.loop is not None:
            self.loop.remove_reader(self._reading)
        self._reading = -1

    def _readable(self, fd: int) -> None:
        try:
            data = self.read()
        except _Again:                 # nothing after all (spurious wakeup)
            return
        if data:
            if self.on_input:
                self.on_input(data)
        else:
            self._eof()

    def _eof(self) -> None:
        self._stop_reading()
        if self.on_hangup:
            self.on_hangup()


class NullChannel(Channel):
    kind = "null"


class FdChannel(Channel):
    """Host fds given by number (UML's fd:N); a terminal if both ends are terminals."""

    kind = "fd"

    def __init__(self, in_fd: int, out_fd: int) -> None:
        super().__init__()
        self.in_fd, self.out_fd = in_fd, out_fd
        self.is_tty = in_fd >= 0 and events.isatty(in_fd) and events.isatty(out_fd)
        self.saved_mode = None
        if self.is_tty:
            self.saved_mode = events.set_raw(in_fd)

    @property
    def description(self) -> str:
        return f"fd:{self.in_fd},fd:{self.out_fd}"

    def fileno(self) -> int:
        return self.in_fd

    def read(self) -> bytes:
        return events.read_fd(self.in_fd) if self.in_fd >= 0 else b""

    def write(self, data: bytes) -> int:
        if self.out_fd >= 0:
            events.write_fd(self.out_fd, data)
        return len(data)

    def winsize(self) -> tuple[int, int]:
        return events.terminal_size(self.out_fd)

    def restore(self) -> None:
        if self.saved_mode is not None:
            events.restore_mode(self.in_fd, self.saved_mode)
            self.saved_mode = None


class PtyChannel(Channel):
    """A host pty pair: we hold the master, the user opens the slave (`screen /dev/pts/N`).
    The slave stays open here too, in raw mode, so the guest's line discipline does the
    editing and the pty lives while nobody is attached."""

    kind = "pty"
    is_tty = True

    def __init__(self) -> None:
        super().__init__()
        try:
            self.master, self.slave = os.openpty()
        except OSError as e:
            raise ChannelError(f"cannot allocate a host pty: {e.strerror}") from None
        self.path = os.ttyname(self.slave)
        events.set_raw(self.slave)
        os.set_blocking(self.master, False)

    @property
    def description(self) -> str:
        return self.path

    def fileno(self) -> int:
        return self.master

    def read(self) -> bytes:
        try:
            return os.read(self.master, 65536)
        except BlockingIOError:
            raise _Again from None
        except OSError:
            return b""

    def write(self, data: bytes) -> int:
        import termios
        n = write_within(self.master, data, 0.2)
        if n < len(data):
            # nobody is reading the pty: drop the oldest unread output, keep the newest
            try:
                termios.tcflush(self.slave, termios.TCIFLUSH)
            except termios.error:
                pass
            write_within(self.master, data[n:], 0.2)
        return len(data)

    def close(self) -> None:
        super().close()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master = self.slave = -1


# telnet (RFC 854/857/858)
IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
OPT_ECHO, OPT_SGA, OPT_NAWS = 1, 3, 31
NEGOTIATION = bytes((IAC, WILL, OPT_ECHO, IAC, WILL, OPT_SGA, IAC, DO, OPT_NAWS))


class PortServer:
    """One listening socket on 127.0.0.1:PORT shared by every line configured on it."""

    servers: dict[int, "PortServer"] = {}

    def __init__(self, port: int) -> None:
        self.port = port
        self.lines: list[PortChannel] = []
        self.loop = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError as e:
            self.sock.close()
            raise ChannelError(f"port:{port}: cannot listen on 127.0.0.1:{port}: "
                               f"{e.strerror}") from None
        self.sock.listen(8)
        self.sock.setblocking(False)

    @classmethod
    def get(cls, port: int) -> "PortServer":
        s = cls.servers.get(port)
        if s is None or s.sock.fileno() < 0:
            s = cls.servers[port] = PortServer(port)
        return s

    def start(self, loop) -> None:
        if self.loop is None:
            self.loop = loop
            loop.add_reader(self.sock.fileno(), self._accept)

    def _accept(self, fd: int) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            free = next((ln for ln in self.lines if ln.started and ln.conn is None), None)
            if free is None:
                try:
                    conn.sendall(b"No free line on this port\r\n")
                except OSError:
                    pass
                conn.close()
                continue
            free.attach(conn)

    def remove(self, line: "PortChannel") -> None:
        if line in self.lines:
            self.lines.remove(line)
        if not any(ln.started for ln in self.lines):
            if self.loop is not None:
                self.loop.remove_reader(self.sock.fileno())
                self.loop = None
            self.sock.close()
            PortServer.servers.pop(self.port, None)


class PortChannel(Channel):
    """A telnet line on 127.0.0.1:PORT: one client at a time; output written while no
    client is connected is kept (the last few KiB) for the next one."""

    kind = "port"
    is_tty = True
    KEEP = 8192

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.server = PortServer.get(port)
        self.server.lines.append(self)
        self.conn: socket.socket | None = None
        self.started = False
        self.pending = bytearray()
        self.state = 0               # telnet input parser state
        self.sb = bytearray()
        self.after_cr = False
        self.rows, self.cols = 24, 80

    @property
    def description(self) -> str:
        return f"port:{self.port}"

    def start(self, loop, on_input, on_hangup, on_connect=None) -> None:
        self.loop, self.on_input, self.on_hangup = loop, on_input, on_hangup
        self.on_connect = on_connect
        self.started = True
        self.server.start(loop)

    def fileno(self) -> int:
        return self.conn.fileno() if self.conn is not None else -1

    def attach(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        self.conn = conn
        self.state, self.after_cr = 0, False
        self._send(NEGOTIATION)
        if self.on_connect:
            self.on_connect()
        if self.pending:
            data, self.pending = bytes(self.pending), bytearray()
            self._send(data)
        self._start_reading()

    def read(self) -> bytes:
        """Input with telnet commands stripped; b"" when the client went away; raises
        _Again when there was nothing (or only telnet commands)."""
        if self.conn is None:
            return b""
        try:
            raw = self.conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            raise _Again from None
        except OSError:
            raw = b""
        if not raw:
            return b""
        data = self._untelnet(raw)
        if not data:
            raise _Again
        return data

    def _eof(self) -> None:
        self._disconnect()

    def _untelnet(self, raw: bytes) -> bytes:
        out = bytearray()
        for b in raw:
            st = self.state
            if st == 0:
                if b == IAC:
                    self.state = 1
                elif self.after_cr and b in (0, 10):
                    self.after_cr = False          # telnet's CR NUL / CR LF is one Enter
                else:
                    self.after_cr = b == 13
                    out.append(b)
            elif st == 1:                          # after IAC
                if b == IAC:
                    out.append(IAC)
                    self.state = 0
                elif b in (WILL, WONT, DO, DONT):
                    self.state = 2
                elif b == SB:
                    self.sb.clear()
                    self.state = 3
                else:
                    self.state = 0
            elif st == 2:                          # option byte of WILL/WONT/DO/DONT
                self.state = 0
            elif st == 3:                          # subnegotiation
                if b == IAC:
                    self.state = 4
                else:
                    self.sb.append(b)
            elif st == 4:
                if b == SE:
                    self._subneg(bytes(self.sb))
                    self.state = 0
                else:
                    self.sb.append(b)
                    self.state = 3
        return bytes(out)

    def _subneg(self, sb: bytes) -> None:
        if len(sb) >= 5 and sb[0] == OPT_NAWS:
            self.cols = sb[1] << 8 | sb[2]
            self.rows = sb[3] << 8 | sb[4]
            if self.on_resize:
                self.on_resize(self.rows, self.cols)

    def winsize(self) -> tuple[int, int]:
        return self.rows, self.cols

    def _send(self, data: bytes) -> None:
        if self.conn is None:
            return
        if write_within(self.conn.fileno(), data, 5.0) < len(data):
            self._disconnect()          # a client that does not read is dropped

    def write(self, data: bytes) -> int:
        data = data.replace(b"\xff", b"\xff\xff")
        if self.conn is None:
            self.pending += data
            del self.pending[:-self.KEEP]
            return len(data)
        self._send(data)
        return len(data)

    def _disconnect(self) -> None:
        self._stop_reading()
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None
            if self.on_hangup:
                self.on_hangup()

    def close(self) -> None:
        self._stop_reading()
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.started = False
        self.server.remove(self)


class XtermChannel(PtyChannel):
    """A pty shown in an xterm window: the window runs a relay between its own terminal
    and the pty's slave side (UML starts port-helper in the xterm the same way)."""

    kind = "xterm"

    def __init__(self, title: str) -> None:
        if not os.environ.get("DISPLAY"):
            raise ChannelError("the xterm channel needs an X display ($DISPLAY is not set)")
        xterm = shutil.which("xterm")
        if xterm is None:
            raise ChannelError("the xterm channel needs xterm, which is not installed")
        super().__init__()
        try:
            self.proc = subprocess.Popen(
                [xterm, "-T", title, "-e", sys.executable, "-m", "usermode.host.channels",
                 "relay", self.path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            super().close()
            raise ChannelError(f"cannot start xterm: {e.strerror}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        super().close()


def relay(path: str) -> int:
    """Inside the xterm: copy between this terminal (raw) and the pty at path."""
    import select
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    saved = events.set_raw(0)
    try:
        while True:
            r, _, _ = select.select([0, fd], [], [])
            for src, dst in ((0, fd), (fd, 1)):
                if src in r:
                    data = events.read_fd(src)
                    if not data:
                        return 0
                    events.write_fd(dst, data)
    finally:
        if saved is not None:
            events.restore_mode(0, saved)


SPECS = "fd:N, fd:IN,fd:OUT, null, pty, pts, port:N, xterm"


def check_spec(spec: str) -> None:
    """Refuse a malformed channel spec (at boot, before anything is opened)."""
    make(spec, "", dry_run=True)


def make(spec: str, title: str, dry_run: bool = False) -> Channel | None:
    """A channel from its UML spelling. IN,OUT pairs are taken for fd channels (and
    null); other channel types take one spec for both directions."""
    parts = spec.split(",")
    if len(parts) > 2 or not spec:
        raise ChannelError(f"expected CHANNEL or IN,OUT ({SPECS})")
    kinds = []
    for p in parts:
        kind, _, arg = p.partition(":")
        if kind == "fd":
            if not arg.isdigit():
                raise ChannelError(f"fd channel needs a file descriptor number: {p!r}")
        elif kind == "null":
            if arg:
                raise ChannelError(f"null channel takes no argument: {p!r}")
        elif kind == "port":
            if not arg.isdigit() or not 0 < int(arg) < 65536:
                raise ChannelError(f"port channel needs a port number 1-65535: {p!r}")
        elif kind in ("pty", "pts", "xterm"):     # pts: UML's name for a devpts pty
            if arg:
                raise ChannelError(f"{kind} channel takes no argument: {p!r}")
        elif kind in ("tty", "file"):
            raise ChannelError(f"the {kind} channel is not supported (use {SPECS})")
        else:
            raise ChannelError(f"unknown channel type {kind!r} (use {SPECS})")
        kinds.append((kind, arg))
    if len(kinds) == 2 and not all(k in ("fd", "null") for k, _ in kinds):
        raise ChannelError("only fd and null channels can be given as an IN,OUT pair")
    kind, arg = kinds[0]
    if kind == "xterm" and dry_run:
        if not os.environ.get("DISPLAY"):
            raise ChannelError("the xterm channel needs an X display ($DISPLAY is not set)")
        if shutil.which("xterm") is None:
            raise ChannelError("the xterm channel needs xterm, which is not installed")
    if dry_run:
        return None
    if kind in ("fd", "null"):
        fds = [int(a) if k == "fd" else -1 for k, a in kinds]
        if len(fds) == 1:
            fds.append(fds[0])
        for fd in fds:
            if fd >= 0:
                try:
                    os.fstat(fd)
                except OSError:
                    raise ChannelError(f"fd:{fd}: {os.strerror(errno.EBADF)}") from None
        if fds == [-1, -1]:
            return NullChannel()
        return FdChannel(fds[0], fds[1])
    if kind in ("pty", "pts"):
        return PtyChannel()
    if kind == "port":
        return PortChannel(int(arg))
    return XtermChannel(title)


def fd_pair(spec: str) -> tuple[int, int] | None:
    """The (in, out) fds of an fd/null spec, or None for other channel types."""
    parts = spec.split(",")
    if not all(p.split(":")[0] in ("fd", "null") for p in parts):
        return None
    fds = [int(p[3:]) if p.startswith("fd:") else -1 for p in parts]
    if len(fds) == 1:
        fds.append(fds[0])
    return fds[0], fds[1]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "relay":
        sys.exit(relay(sys.argv[2]))
    sys.exit(2)
