"""eventfd(2): a 64-bit counter file for event notification."""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from usermode.fs.file import O_RDWR, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM, File
from usermode.kernel.errors import Block, Errno

if TYPE_CHECKING:
    from usermode.kernel.task import Task

EFD_SEMAPHORE = 1
MAX = (1 << 64) - 2


class EventFd(File):
    def __init__(self, initval: int, flags: int) -> None:
        super().__init__(O_RDWR | (flags & ~EFD_SEMAPHORE & 0o4000))
        self.count = initval
        self.semaphore = bool(flags & EFD_SEMAPHORE)

    def _wait(self) -> None:
        if self.nonblocking:
            raise Errno(errno.EAGAIN)
        raise Block(self.waitq)

    def read(self, t: "Task", n: int) -> bytes:
        if n < 8:
            raise Errno(errno.EINVAL)
        if self.count == 0:
            self._wait()
        v = 1 if self.semaphore else self.count
        self.count -= v
        self.waitq.notify()
        return struct.pack("<Q", v)

    def write(self, t: "Task", data: bytes) -> int:
        if len(data) < 8:
            raise Errno(errno.EINVAL)
        (v,) = struct.unpack_from("<Q", data)
        if v == (1 << 64) - 1:
            raise Errno(errno.EINVAL)
        if self.count + v > MAX:
            self._wait()
        self.count += v
        self.waitq.notify()
        return 8

    def poll(self) -> int:
        mask = 0
        if self.count > 0:
            mask |= POLLIN | POLLRDNORM
        if self.count < MAX:
            mask |= POLLOUT | POLLWRNORM
        return mask

    def name(self) -> bytes:
        return b"anon_inode:[eventfd]"
