"""The console on host fds (UML's `con0=fd:0,fd:1` channel).

Bytes typed on the host fd are queued for guest readers; guest writes go to the host fd.
Whether the guest sees a terminal follows the host side: on a host tty the console answers
termios ioctls; on pipes or files it is a plain character device (so a program's output
under `usermode run` matches the same program run natively with the same redirections).
"""
from __future__ import annotations

import errno
import weakref
from typing import TYPE_CHECKING

from usermode.drivers.tty import SIGWINCH, Tty, TtyFile
from usermode.fs.file import O_NOCTTY, POLLHUP, POLLIN, POLLOUT, File
from usermode.host import channels
from usermode.kernel.errors import Block, Errno
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.kernel.kernel import Kernel
    from usermode.kernel.task import Task


class Console:
    """One console line: a host channel (fds by default), the guest-side input queue, and
    a Tty when the channel is terminal-like."""

    def __init__(self, kernel: "Kernel", in_fd: int = -1, out_fd: int = -1,
                 channel: "channels.Channel | None" = None, name: str = "console",
                 path: str = "/dev/console") -> None:
        self.kernel = kernel
        self.channel = channel if channel is not None else channels.FdChannel(in_fd, out_fd)
        self.in_fd = getattr(self.channel, "in_fd", -1)
        self.out_fd = getattr(self.channel, "out_fd", -1)
        self.name = name
        self.path = path
        self.input = bytearray()
        self.eof = self.channel.fileno() < 0 and not isinstance(self.channel,
                                                                channels.PortChannel)
        self.waitq = WaitQueue()
        self.files: weakref.WeakSet[File] = weakref.WeakSet()    # opens, for hot-removal
        self.is_tty = self.channel.is_tty
        self.tty: Tty | None = None
        self.log = None                 # a terminal logs in its Tty; a plain console here
        if self.is_tty:
            self.tty = Tty(name, self.write, kernel)
            self.tty.rows, self.tty.cols = self.channel.winsize()
        elif getattr(kernel, "ttylog", None) is not None:
            self.log = kernel.ttylog.open(name)
        self.channel.on_resize = self._resize
        self.channel.start(kernel.loop, self._input, self._hangup, self._connect)

    @property
    def polled(self) -> bool:
        return self.channel.polled     # input can't be waited on (a regular file)

    def _input(self, data: bytes) -> None:
        if self.tty is not None:
            self.tty.receive(data)
            return
        if self.log is not None:
            self.log.read(data)
        self.input += data
        self.waitq.notify()

    def _hangup(self) -> None:
        """The host side went away (end of input, telnet client gone)."""
        self.eof = True
        tty = self.tty
        if tty is None:
            self.waitq.notify()
            return
        tty.hangup()
        if isinstance(self.channel, channels.PortChannel):
            # the session loses its terminal, as on a modem hangup; the line waits for
            # the next connection
            procs = getattr(self.kernel, "procs", None) or {}
            for proc in procs.values():
                if getattr(proc, "ctty", None) is tty:
                    proc.ctty = None
            tty.session = None
            tty.pgrp = 0
        tty.waitq.notify()

    def _connect(self) -> None:
        """A new client on a port line: the line is up again."""
        self.eof = False
        if self.tty is not None:
            self.tty.reopen()
            self.tty.rows, self.tty.cols = self.channel.winsize()

    def _resize(self, rows: int, cols: int) -> None:
        tty = self.tty
        if tty is not None and (rows, cols) != (tty.rows, tty.cols):
            tty.rows, tty.cols = rows, cols
            if tty.pgrp:
                self.kernel.signal_pgrp(tty.pgrp, SIGWINCH)

    def fill(self) -> None:
        if self.polled and not self.input and not self.eof:
            data = self.channel.read()
            if data:
                if self.log is not None:
                    self.log.read(data)
                self.input += data
            else:
                self.eof = True

    def open(self, t, flags: int) -> File:
        if self.tty is not None and self.tty.hung_up and isinstance(
                self.channel, channels.PortChannel):
            # a hangup ends the files open at the time; a new open (init respawning the
            # getty) waits for the next client on a fresh line
            self._connect()
        if self.tty is not None:
            f: File = TtyFile(self.tty, flags, self.path)
            if t is not None and hasattr(t, "process") and not flags & O_NOCTTY:
                f.attach_ctty(t)
        else:
            f = ConsoleFile(self, flags)
        self.files.add(f)
        return f

    @property
    def in_use(self) -> bool:
        """Open in some fd table (UML's line->port.count)."""
        return any(f.refs > 0 for f in self.files)

    def restore(self) -> None:
        """Give the host terminal back as we found it."""
        self.channel.restore()

    def close(self) -> None:
        if self.tty is not None:
            self.tty.close_log()
        elif self.log is not None:
            self.log.close()
        self.channel.restore()
        if not isinstance(self.channel, channels.FdChannel):
            self.channel.close()
        else:
            self.channel._stop_reading()

    def write(self, data: bytes) -> int:
        if self.log is not None:
            self.log.write(data)
        return self.channel.write(data)


LINE_KINDS = {"con": ("Virtual console", "tty", 0), "ssl": ("Serial line", "ttyS", 64)}
NR_CONSOLES = 64          # tty0 (the current console) .. tty63, as in Linux/UML
NR_SERIALS = 64


class Lines:
    """Consoles con1..con63 (/dev/ttyN, 4:N) and serial lines ssl0.. (/dev/ttySN, 4:64+N).

    Lines configured by number (con1=pty) get their channel at boot, so a bad one fails
    the boot; lines that only have the default (con=CHANNEL, ssl=CHANNEL) get theirs on
    first open, as UML's do. Lines with no channel at all answer ENODEV.
    """

    def __init__(self, kernel: "Kernel", specs: dict[tuple[str, int], str],
                 defaults: dict[str, str]) -> None:
        self.kernel = kernel
        self.specs = dict(specs)
        self.defaults = dict(defaults)
        self.lines: dict[tuple[str, int], Console] = {}
        for key in sorted(self.specs):
            self.activate(key)

    def spec(self, key: tuple[str, int]) -> str | None:
        spec = self.specs.get(key)
        if spec is None:
            spec = self.defaults.get(key[0])
        if spec is None or spec in ("none", ""):
            return None
        return spec

    def activate(self, key: tuple[str, int]) -> Console | None:
        line = self.lines.get(key)
        if line is not None:
            return line
        spec = self.spec(key)
        if spec is None:
            return None
        kind, n = key
        label, dev, _ = LINE_KINDS[kind]
        chan = channels.make(spec, f"usermode {label.lower()} {n}")
        line = Console(self.kernel, channel=chan, name=f"{dev}{n}", path=f"/dev/{dev}{n}")
        self.lines[key] = line
        if chan.kind in ("pty", "xterm"):
            self.kernel.printk(f"{label} {n} assigned device {chan.description}")
        elif chan.kind == "port":
            self.kernel.printk(f"{label} {n} waiting for a telnet connection on "
                               f"127.0.0.1:{chan.port}")
        return line

    def opener(self, kind: str, n: int):
        def open_line(t, flags: int) -> File:
            try:
                line = self.activate((kind, n))
            except channels.ChannelError as e:
                self.kernel.printk(f"{LINE_KINDS[kind][0]} {n}: {e}")
                raise Errno(errno.EIO) from None
            if line is None:
                raise Errno(errno.ENODEV)
            return line.open(t, flags)
        return open_line

    def register(self, vfs) -> None:
        self.vfs = vfs
        for n in range(1, NR_CONSOLES):
            self.register_node(("con", n))
        nserial = max([4] + [n + 1 for k, n in self.specs if k == "ssl"])
        for n in range(min(nserial, NR_SERIALS)):
            self.register_node(("ssl", n))

    def register_node(self, key: tuple[str, int]) -> None:
        kind, n = key
        _, dev, base = LINE_KINDS[kind]
        self.vfs.register_chrdev(4, base + n, self.opener(kind, n), f"{dev}{n}",
                                 0o620 if kind == "con" else 0o660)

    def deactivate(self, key: tuple[str, int]) -> None:
        line = self.lines.pop(key, None)
        if line is not None:
            line.close()

    def close(self) -> None:
        for line in self.lines.values():
            line.close()
        self.lines.clear()


class ConsoleFile(File):
    def __init__(self, console: Console, flags: int) -> None:
        super().__init__(flags)
        self.console = console
        self.waitq = console.waitq
        self.path = console.path

    def name(self) -> bytes:
        return self.path.encode()

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
