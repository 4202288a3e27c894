"""The tty layer: termios and the N_TTY line discipline (canonical mode, echo, signals).

A Tty sits between a driver (the console on a host terminal, later pty pairs) and guest
readers. The driver feeds typed bytes with `receive()`; the discipline edits lines, echoes
through `driver_write`, and turns ^C/^\\/^Z into signals for the foreground process group.
"""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Callable

from usermode.fs.file import POLLHUP, POLLIN, POLLOUT, File
from usermode.kernel.errors import Block, Errno
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.kernel.task import Task

# termios bits (asm-generic/termbits.h)
IGNBRK, BRKINT, IGNPAR, PARMRK, INPCK, ISTRIP, INLCR, IGNCR, ICRNL = 1, 2, 4, 8, 16, 32, 64, 128, 256
IXON, IUTF8 = 0o2000, 0o40000
OPOST, ONLCR = 1, 4
ISIG, ICANON, ECHO, ECHOE, ECHOK, ECHONL, NOFLSH, TOSTOP, ECHOCTL, ECHOKE, IEXTEN = (
    1, 2, 8, 0o20, 0o40, 0o100, 0o200, 0o400, 0o1000, 0o4000, 0o100000)
VINTR, VQUIT, VERASE, VKILL, VEOF, VTIME, VMIN = 0, 1, 2, 3, 4, 5, 6
VSTART, VSTOP, VSUSP, VEOL, VREPRINT, VDISCARD, VWERASE, VLNEXT, VEOL2 = 8, 9, 10, 11, 12, 13, 14, 15, 16
NCCS = 19
SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGWINCH, SIGHUP, SIGCONT = 2, 3, 20, 21, 22, 28, 1, 18

TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TCSBRK, TCXONC, TCFLSH, TIOCEXCL, TIOCNXCL, TIOCSCTTY = 0x5409, 0x540A, 0x540B, 0x540C, 0x540D, 0x540E
TIOCGPGRP, TIOCSPGRP, TIOCOUTQ, TIOCGWINSZ, TIOCSWINSZ = 0x540F, 0x5410, 0x5411, 0x5413, 0x5414
FIONREAD, TIOCNOTTY, TIOCGSID, TCSBRKP, TIOCGPTN, TIOCSPTLCK = 0x541B, 0x5422, 0x5429, 0x5425, 0x80045430, 0x40045431
TIOCGDEV, TIOCVHANGUP, TIOCGPTPEER, TCGETS2, TCSETS2 = 0x80045432, 0x5437, 0x5441, 0x802C542A, 0x402C542B
TERMIOS = struct.Struct("<IIIIB19B")


def default_termios() -> list[int]:
    cc = [3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0]
    return [ICRNL | IXON | IUTF8, OPOST | ONLCR, 0o277 | 0o4000 | 0o2000,   # B38400 CS8 CREAD HUPCL
            ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN, 0] + cc


class Tty:
    def __init__(self, name: str, driver_write: Callable[[bytes], None], kernel) -> None:
        self.name = name
        self.kernel = kernel
        self.driver_write = driver_write
        self.t = default_termios()
        self.line = bytearray()          # the line being edited (canonical mode)
        self.ready = bytearray()         # bytes readers may take
        self.eof_pending = 0             # ^D seen on an empty line: reads return 0 once each
        self.waitq = WaitQueue()
        self.rows, self.cols = 24, 80
        self.pgrp = 0                    # foreground process group
        self.session = None              # the session (sid) this is the controlling tty of
        self.hung_up = False
        self.generation = 0              # bumped when a hung-up line is reopened
        self.lnext = False
        logger = getattr(kernel, "ttylog", None)     # tty_log_dir= / tty_log_fd=
        self.log = logger.open(name) if logger is not None else None

    def close_log(self) -> None:
        if self.log is not None:
            self.log.close()

    # -- termios accessors
    @property
    def iflag(self) -> int:
        return self.t[0]

    @property
    def oflag(self) -> int:
        return self.t[1]

    @property
    def lflag(self) -> int:
        return self.t[3]

    def cc(self, i: int) -> int:
        return self.t[5 + i]

    # -- output
    def output(self, data: bytes) -> None:
        if self.oflag & OPOST and self.oflag & ONLCR and b"\n" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self.log is not None:
            self.log.write(data)
        self.driver_write(data)

    def _echo(self, data: bytes) -> None:
        lfl = self.lflag
        if lfl & ECHO:
            out = bytearray()
            for b in data:
                if lfl & ECHOCTL and b < 32 and b not in (9, 10):
                    out += bytes((94, b + 64))          # ^X
                else:
                    out.append(b)
            self.output(bytes(out))
        elif lfl & ECHONL and data == b"\n":
            self.output(b"\n")

    # -- input
    def receive(self, data: bytes) -> None:
        """Bytes typed on the terminal."""
        if self.log is not None:
            self.log.read(data)
        for b in data:
            self._receive_byte(b)
        self.waitq.notify()

    def _signal(self, sig: int) -> None:
        if not self.lflag & NOFLSH:
            self.line.clear()
            self.ready.clear()
        if self.pgrp:
            self.kernel.signal_pgrp(self.pgrp, sig)

    def _receive_byte(self, b: int) -> None:
        ifl, lfl = self.iflag, self.lflag
        if self.lnext:
            self.lnext = False
            self._put(b)
            return
        if ifl & ISTRIP:
            b &= 0x7F
        if b == 13:
            if ifl & IGNCR:
                return
            if ifl & ICRNL:
                b = 10
        elif b == 10 and ifl & INLCR:
            b = 13
        if lfl & ISIG:
            for idx, sig in ((VINTR, SIGINT), (VQUIT, SIGQUIT), (VSUSP, SIGTSTP)):
                if b == self.cc(idx) and b != 0:
                    if lfl & ECHO:
                        self.output(b"^" + bytes([b + 64]) if b < 32 else bytes([b]))
                    self._signal(sig)
                    return
        if lfl & ICANON:
            if lfl & IEXTEN and b == self.cc(VLNEXT) and b:
                self.lnext = True
                return
            if b == self.cc(VERASE) and b or b == 8 and self.cc(VERASE) == 127:
                if self.line:
                    ch = self.line.pop()
                    if lfl & ECHO and lfl & ECHOE:
                        self.output(b"\b \b" * (2 if ch < 32 and lfl & ECHOCTL else 1))
                return
            if b == self.cc(VWERASE) and b and lfl & IEXTEN:
                while self.line and self.line[-1] in b" \t":
                    self.line.pop()
                    if lfl & ECHO:
                        self.output(b"\b \b")
                while self.line and self.line[-1] not in b" \t":
                    self.line.pop()
                    if lfl & ECHO:
                        self.output(b"\b \b")
                return
            if b == self.cc(VKILL) and b:
                if lfl & ECHO and lfl & ECHOK:
                    self.output(b"\b \b" * len(self.line))
                self.line.clear()
                return
            if b == self.cc(VEOF) and b:
                if self.line:
                    self.ready += self.line
                    self.line.clear()
                else:
                    self.eof_pending += 1
                return
            if b == 10 or (b == self.cc(VEOL) and b) or (b == self.cc(VEOL2) and b):
                self.line.append(b)
                self._echo(b"\n" if b == 10 else bytes([b]))
                self.ready += self.line
                self.line.clear()
                return
            self.line.append(b)
            self._echo(bytes([b]))
            return
        self._put(b)

    def _put(self, b: int) -> None:
        if self.lflag & ICANON:
            self.line.append(b)
        else:
            self.ready.append(b)
        self._echo(bytes([b]))

    def hangup(self) -> None:
        self.hung_up = True
        self.waitq.notify()
        if self.pgrp:
            self.kernel.signal_pgrp(self.pgrp, SIGHUP)

    def reopen(self) -> None:
        """The line comes back after a hangup (a port line's next open or client): new
        opens get a fresh line, while files open at the hangup stay hung up, as after
        Linux's tty_hangup."""
        if self.hung_up:
            self.generation += 1
            self.hung_up = False
        self.line.clear()
        self.ready.clear()
        self.eof_pending = 0
        self.lnext = False

    # -- guest side
    def readable(self) -> bool:
        if self.lflag & ICANON:
            return bool(self.ready) or self.eof_pending > 0 or self.hung_up
        return len(self.ready) >= max(self.cc(VMIN), 1) or self.hung_up or (
            self.cc(VMIN) == 0)

    def check_background(self, t: "Task", sig: int) -> None:
        """Job control: a background process touching its terminal gets SIGTTIN/SIGTTOU."""
        p = t.process
        if self.session is None or p.sid != self.session or not self.pgrp or p.pgid == self.pgrp:
            return
        if sig == SIGTTOU and not self.lflag & TOSTOP:
            return
        k = t.kernel
        if k.is_ignored(p, sig) or k.is_blocked(t, sig):
            if sig == SIGTTIN:
                raise Errno(errno.EIO)
            return
        k.signal_pgrp(p.pgid, sig)
        raise Errno(errno.EINTR)

    def read(self, t: "Task", n: int, nonblock: bool) -> bytes:
        self.check_background(t, SIGTTIN)
        if self.lflag & ICANON:
            if self.ready:
                nl = self.ready.find(b"\n")
                take = min(n, nl + 1 if nl >= 0 else len(self.ready))
                data = bytes(self.ready[:take])
                del self.ready[:take]
                return data
            if self.eof_pending:
                self.eof_pending -= 1
                return b""
        else:
            vmin, vtime = self.cc(VMIN), self.cc(VTIME)
            if self.ready and len(self.ready) >= max(vmin, 1):
                data = bytes(self.ready[:n])
                del self.ready[:n]
                return data
            if vmin == 0 and (vtime == 0 or t.timed_out):
                data = bytes(self.ready[:n])
                del self.ready[:n]
                return data
            if self.ready and t.timed_out:
                data = bytes(self.ready[:n])
                del self.ready[:n]
                return data
            if self.hung_up:
                return b""
            if nonblock:
                raise Errno(errno.EAGAIN)
            raise Block(self.waitq, timeout=vtime / 10 if vtime else None)
        if self.hung_up:
            return b""
        if nonblock:
            raise Errno(errno.EAGAIN)
        raise Block(self.waitq)

    def write(self, t: "Task", data: bytes) -> int:
        self.check_background(t, SIGTTOU)
        self.output(data)
        return len(data)

    def ioctl(self, t: "Task", cmd: int, arg: int) -> int:
        mm = t.mm
        if cmd == TCGETS:
            mm.copy_out(arg, TERMIOS.pack(*self.t))
            return 0
        if cmd in (TCSETS, TCSETSW, TCSETSF):
            if cmd != TCSETS:
                self.check_background(t, SIGTTOU)
            vals = list(TERMIOS.unpack(mm.copy_in(arg, TERMIOS.size)))
            was_canon = self.lflag & ICANON
            self.t = vals
            if cmd == TCSETSF:
                self.ready.clear()
                self.line.clear()
            if was_canon and not self.lflag & ICANON and self.line:
                self.ready += self.line
                self.line.clear()
            self.waitq.notify()
            return 0
        if cmd == TIOCGWINSZ:
            mm.copy_out(arg, struct.pack("<HHHH", self.rows, self.cols, 0, 0))
            return 0
        if cmd == TIOCSWINSZ:
            rows, cols, _, _ = struct.unpack("<HHHH", mm.copy_in(arg, 8))
            if (rows, cols) != (self.rows, self.cols):
                self.rows, self.cols = rows, cols
                if self.pgrp:
                    self.kernel.signal_pgrp(self.pgrp, SIGWINCH)
            return 0
        if cmd == TIOCGPGRP:
            mm.write_i32(arg, self.pgrp)
            return 0
        if cmd == TIOCSPGRP:
            pgrp = mm.read_i32(arg)
            if self.session is not None and t.process.sid != self.session:
                raise Errno(errno.ENOTTY)
            self.check_background(t, SIGTTOU)
            if pgrp < 0:
                raise Errno(errno.EINVAL)
            if not any(p.pgid == pgrp and p.sid == t.process.sid     # zombies are members
                       for p in t.kernel.procs.values() if not p.reaped):
                raise Errno(errno.EPERM)
            self.pgrp = pgrp
            return 0
        if cmd == TIOCGSID:
            if self.session is None:
                raise Errno(errno.ENOTTY)
            mm.write_i32(arg, self.session)
            return 0
        if cmd == TIOCSCTTY:
            p = t.process
            if p.sid != p.pid:
                raise Errno(errno.EPERM)
            self.session = p.sid
            self.pgrp = p.pgid
            p.ctty = self
            return 0
        if cmd == TIOCNOTTY:
            if t.process.ctty is self:
                t.process.ctty = None
            return 0
        if cmd in (FIONREAD, TIOCOUTQ):
            mm.write_i32(arg, len(self.ready) if cmd == FIONREAD else 0)
            return 0
        if cmd in (TCSBRK, TCSBRKP, TCXONC, TIOCEXCL, TIOCNXCL):
            return 0
        if cmd == TCFLSH:
            if arg in (0, 2):
                self.ready.clear()
                self.line.clear()
            return 0
        raise Errno(errno.ENOTTY)


class TtyFile(File):
    """An open terminal (console, tty, pts): the file side of a Tty."""

    def __init__(self, tty: Tty, flags: int, path: str) -> None:
        super().__init__(flags)
        self.tty = tty
        self.waitq = tty.waitq
        self.path = path
        self.generation = tty.generation

    @property
    def stale(self) -> bool:
        """Open since before the line was hung up and reopened: hung up for good."""
        return self.generation != self.tty.generation

    def name(self) -> bytes:
        return self.path.encode()

    def read(self, t: "Task", n: int) -> bytes:
        if self.stale:
            return b""
        return self.tty.read(t, n, self.nonblocking)

    def write(self, t: "Task", data: bytes) -> int:
        if self.stale:
            raise Errno(errno.EIO)
        return self.tty.write(t, data)

    def poll(self) -> int:
        if self.stale:
            return POLLIN | POLLOUT | POLLHUP
        return (POLLIN if self.tty.readable() else 0) | POLLOUT

    def ioctl(self, t: "Task", cmd: int, arg: int) -> int:
        if self.stale:
            raise Errno(errno.ENOTTY if cmd == TIOCSPGRP else errno.EIO)
        return self.tty.ioctl(t, cmd, arg)

    def attach_ctty(self, t: "Task") -> None:
        """Opening a tty without O_NOCTTY makes it a session leader's controlling tty."""
        p = t.process
        if p.sid == p.pid and p.ctty is None and self.tty.session is None:
            self.tty.session = p.sid
            self.tty.pgrp = p.pgid
            p.ctty = self.tty
