"""The console on host fds (UML's `con0=fd:0,fd:1` channel).

Bytes typed on the host fd are queued for guest readers; guest writes go to the host fd.
Whether the guest sees a terminal follows the host side: on a host tty the console answers
termios ioctls; on pipes or files it is a plain character device (so a program's output
under `usermode run` matches the same program run natively with the same redirections).
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from usermode.drivers.tty import Tty, TtyFile
from usermode.fs.file import O_NOCTTY, POLLHUP, POLLIN, POLLOUT, File
from usermode.host import events
from usermode.kernel.errors import Block, Errno
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.kernel.kernel import Kernel
    from usermode.kernel.task import Task


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
        self.tty: Tty | None = None
        self.saved_mode = None
        if self.is_tty:
            self.tty = Tty("console", self.write, kernel)
            self.tty.rows, self.tty.cols = events.terminal_size(out_fd)
            self.saved_mode = events.set_raw(in_fd)
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
            if self.tty is not None:
                self.tty.hangup()
        if self.tty is not None:
            self.tty.receive(data)
            return
        self.input += data
        self.waitq.notify()

    def fill(self) -> None:
        if self.polled and not self.input and not self.eof:
            data = events.read_fd(self.in_fd)
            if data:
                self.input += data
            else:
                self.eof = True

    def open(self, t, flags: int) -> File:
        if self.tty is not None:
            f = TtyFile(self.tty, flags, "/dev/console")
            if t is not None and hasattr(t, "process") and not flags & O_NOCTTY:
                f.attach_ctty(t)
            return f
        return ConsoleFile(self, flags)

    def restore(self) -> None:
        """Give the host terminal back as we found it."""
        if self.saved_mode is not None:
            events.restore_mode(self.in_fd, self.saved_mode)
            self.saved_mode = None

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

    def name(self) -> bytes:
        return b"/dev/console"

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

