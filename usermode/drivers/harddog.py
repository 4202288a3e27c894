"""UML's harddog: /dev/watchdog (misc char device 10,130) backed by a host process.

Opening the device starts the host helper (uml_watchdog, usermode/tools/uml_watchdog.py):
`-mconsole SOCKET` when the instance has an mconsole=notify: socket (a missed ping then
sends a "hang" notification there), else `-pid PID` of the kernel process (a missed ping
kills the instance). Every write() and WDIOC_KEEPALIVE pings it; the helper expects a
ping every 60 s (see its docstring for the test knob). $USERMODE_WATCHDOG_HELPER names
another helper, e.g. uml-utilities' /usr/bin/uml_watchdog (Machine.watchdog_helper).

As in UML, a second open is EBUSY and closing the device stops the watchdog. With
`harddog.nowayout=1` (Linux's WATCHDOG_NOWAYOUT) closing does not stop it, whatever was
written: once started, the guest must keep pinging (reopening the device) or be declared
hung. A magic close ('V' before close) is accepted and, as in UML, not needed.
"""
from __future__ import annotations

import errno
import struct
import sys
from typing import TYPE_CHECKING

from usermode.fs.file import File, POLLOUT
from usermode.host.helper import Helper
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.kernel.task import Task

MISC_MAJOR, WATCHDOG_MINOR = 10, 130
WDIOC_GETSUPPORT, WDIOC_GETSTATUS, WDIOC_GETBOOTSTATUS = 0x80285700, 0x80045701, 0x80045702
WDIOC_KEEPALIVE = 0x80045705
WDIOF_KEEPALIVEPING, WDIOF_MAGICCLOSE = 0x8000, 0x0100
IDENTITY = b"UML Hardware Watchdog"
START_TIMEOUT = 10.0        # seconds the helper has to say it is ready


def default_helper() -> list[str]:
    return [sys.executable, "-m", "usermode.tools.uml_watchdog"]


class Harddog:
    """The device: at most one open file, one helper while the watchdog runs."""

    def __init__(self, kernel, notify_socket: str | None, nowayout: bool = False,
                 helper: list[str] | None = None) -> None:
        self.kernel = kernel
        self.notify_socket = notify_socket
        self.nowayout = nowayout
        self.helper_argv = helper or default_helper()
        self.helper: Helper | None = None
        self.opened = False

    def register(self, vfs) -> None:
        vfs.register_chrdev(MISC_MAJOR, WATCHDOG_MINOR, self.open, "watchdog", 0o600)

    def _start(self) -> None:
        target = (["-mconsole", self.notify_socket] if self.notify_socket
                  else ["-pid", str(self.kernel.host_pid)])
        try:
            helper = Helper(self.helper_argv + target)
        except OSError as e:
            self.kernel.printk(f"harddog: cannot start {self.helper_argv[0]}: {e.strerror}")
            raise Errno(errno.EIO) from None
        if helper.read_byte(START_TIMEOUT) == b"":
            self.kernel.printk("harddog_open - EOF on watchdog pipe")
            helper.close()
            raise Errno(errno.EIO)
        self.helper = helper

    def open(self, t: "Task | None", flags: int) -> "WatchdogFile":
        if self.opened:
            raise Errno(errno.EBUSY)
        if self.helper is None:
            self._start()
        self.opened = True
        return WatchdogFile(self, flags)

    def ping(self) -> None:
        if self.helper is not None and not self.helper.write(b"\n"):
            self.kernel.printk("harddog: the watchdog helper is gone")

    def release(self) -> None:
        self.opened = False
        if self.nowayout:
            self.kernel.printk("watchdog: nowayout prevents watchdog being stopped!")
            return
        self.stop()

    def stop(self) -> None:
        if self.helper is not None:
            self.helper.close()
            self.helper = None


class WatchdogFile(File):
    def __init__(self, dog: Harddog, flags: int) -> None:
        super().__init__(flags)
        self.dog = dog
        self.released = False

    def name(self) -> bytes:
        return b"/dev/watchdog"

    def poll(self) -> int:
        return POLLOUT

    def write(self, t: "Task", data: bytes) -> int:
        if data:
            self.dog.ping()
        return len(data)

    def ioctl(self, t: "Task", cmd: int, arg: int) -> int:
        mm = t.mm
        if cmd == WDIOC_GETSUPPORT:
            mm.copy_out(arg, struct.pack("<II32s", WDIOF_KEEPALIVEPING | WDIOF_MAGICCLOSE, 0,
                                         IDENTITY))
        elif cmd in (WDIOC_GETSTATUS, WDIOC_GETBOOTSTATUS):
            mm.write_i32(arg, 0)
        elif cmd == WDIOC_KEEPALIVE:
            self.dog.ping()
        else:
            raise Errno(errno.ENOTTY)
        return 0

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.dog.release()
