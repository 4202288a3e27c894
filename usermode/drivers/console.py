"""The console on host fds (UML's `con0=fd:0,fd:1` channel).

Bytes typed on the host fd are queued for guest readers; guest writes go to the host fd.
Whether the guest sees a terminal follows the host side: on a host tty the console answers
termios ioctls; on pipes or files it is a plain character device (so a program's output
under `usermode run` matches the same program run natively with the same redirections).
"""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from usermode.fs.file import POLLHUP, POLLIN, POLLOUT, File
from usermode.host import events
from usermode.kernel.errors import Block, Errno
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.kernel.kernel import Kernel
    from usermode.kernel.task import Task

TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TIOCGPGRP, TIOCSPGRP, TIOCGWINSZ, TIOCSWINSZ = 0x540F, 0x5410, 0x5413, 0x5414
TIOCSCTTY, TIOCNOTTY, TIOCGSID, FIONREAD, TIOCNXCL, TIOCEXCL = 0x540E, 0x5422, 0x5429, 0x541B, 0x540D, 0x540C
# a default cooked termios: ICRNL IXON | OPOST ONLCR | B38400 CS8 CREAD HUPCL | ISIG ICANON ECHO...
DEFAULT_TERMIOS = struct.pack("<IIIIB19B", 0o2400 | 0o400, 0o5, 0o277, 0o105073, 0,
                              3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0)


class Console:
    """One console line: host input fd, host output fd, the guest-side input queue."""

    def __init__(self, kernel: "Kernel", in_fd: int, out_fd: int) -> None:
        self.kernel = kernel
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.input = bytearray()
        self.eof = in_fd < 0
        self.waitq = WaitQueue()
        self.is_tty = in_fd >= 0 and events.isatty(in_fd) and events.isatty(out_fd)
        self.termios = bytearray(DEFAULT_TERMIOS)
        self.winsize = events.terminal_size(out_fd) if self.is_tty else (24, 80)
        self.pgrp = 0
        self.polled = False          # input can't be waited on (a regular file): read on demand
        if in_fd >= 0:
            try:
                kernel.loop.add_reader(in_fd, self._readable)
            except OSError:
                self.polled = True

    def _readable(self, fd: int) -> None:
        data = events.read_fd(fd)
        if not data:
            self.eof = True
            self.kernel.loop.remove_reader(fd)
        self.input += data
        self.waitq.notify()

    def fill(self) -> None:
        if self.polled and not self.input and not self.eof:
            data = events.read_fd(self.in_fd)
            if data:
                self.input += data
            else:
                self.eof = True

    def write(self, data: bytes) -> int:
        if self.out_fd < 0:
            return len(data)
        events.write_fd(self.out_fd, data)
        return len(data)


class ConsoleFile(File):
    def __init__(self, console: Console, flags: int) -> None:
        super().__init__(flags)
        self.console = console
        self.waitq = console.waitq
        self.path = "/dev/console"

    def read(self, t: "Task", n: int) -> bytes:
        c = self.console
        c.fill()
        if c.input:
            if c.is_tty:
                nl = c.input.find(b"\n")
                take = min(n, nl + 1 if nl >= 0 else len(c.input))
            else:
                take = min(n, len(c.input))
            data = bytes(c.input[:take])
            del c.input[:take]
            return data
        if c.eof:
            return b""
        if self.nonblocking:
            raise Errno(errno.EAGAIN)
        raise Block(c.waitq)

    def write(self, t: "Task", data: bytes) -> int:
        return self.console.write(data)

    def poll(self) -> int:
        c = self.console
        c.fill()
        mask = POLLOUT
        if c.input or c.eof:
            mask |= POLLIN
        if c.eof and not c.is_tty:
            mask |= POLLHUP
        return mask

    def ioctl(self, t: "Task", cmd: int, arg: int) -> int:
        c = self.console
        if not c.is_tty:
            raise Errno(errno.ENOTTY)
        if cmd == TCGETS:
            t.mm.copy_out(arg, bytes(c.termios))
            return 0
        if cmd in (TCSETS, TCSETSW, TCSETSF):
            c.termios[:] = t.mm.copy_in(arg, len(c.termios))
            if cmd == TCSETSF:
                c.input.clear()
            return 0
        if cmd == TIOCGWINSZ:
            t.mm.copy_out(arg, struct.pack("<HHHH", c.winsize[0], c.winsize[1], 0, 0))
            return 0
        if cmd == TIOCSWINSZ:
            rows, cols, _, _ = struct.unpack("<HHHH", t.mm.copy_in(arg, 8))
            c.winsize = (rows, cols)
            return 0
        if cmd == TIOCGPGRP:
            t.mm.write_i32(arg, c.pgrp or t.process.pgid)
            return 0
        if cmd == TIOCSPGRP:
            c.pgrp = t.mm.read_i32(arg)
            return 0
        if cmd == TIOCGSID:
            t.mm.write_i32(arg, t.process.sid)
            return 0
        if cmd in (TIOCSCTTY, TIOCNOTTY, TIOCNXCL, TIOCEXCL):
            return 0
        if cmd == FIONREAD:
            t.mm.write_i32(arg, len(c.input))
            return 0
        raise Errno(errno.EINVAL)

    def stat(self):
        return None
