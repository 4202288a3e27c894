"""The open file description every fd points at (struct file)."""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from usermode.fs.stat import Stat
from usermode.kernel.errors import Errno
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.kernel.task import Task

POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 1, 2, 4, 8, 16, 32
POLLRDNORM, POLLWRNORM, POLLRDHUP = 0x40, 0x100, 0x2000

O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR = 3, 0, 1, 2
O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, O_APPEND, O_NONBLOCK = 0o100, 0o200, 0o400, 0o1000, 0o2000, 0o4000
O_DSYNC, O_DIRECT, O_LARGEFILE, O_DIRECTORY, O_NOFOLLOW = 0o10000, 0o40000, 0o100000, 0o200000, 0o400000
O_NOATIME, O_CLOEXEC, O_SYNC, O_PATH, O_TMPFILE = 0o1000000, 0o2000000, 0o4010000, 0o10000000, 0o20200000


ANON_DEV = 13          # the anon_inodefs st_dev (0:13)
SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE = 0, 1, 2, 3, 4


class File:
    """Base class: every operation the guest may try, refused the way Linux refuses it.

    Subclasses override what they support. Blocking operations raise Block(self.waitq)
    unless O_NONBLOCK is set (then Errno(EAGAIN)); `waitq` is notified on every change of
    readiness, which is what poll/select/epoll and blocked readers wait on.
    """

    mappable = False          # mmap(2) may map it (regular files, /dev/zero); else ENODEV

    def __init__(self, flags: int = O_RDWR) -> None:
        self.flags = flags
        self.pos = 0
        self.waitq = WaitQueue()
        self.refs = 0          # number of fd-table slots pointing here

    # set by the VFS on files opened by path: a usermode.fs.inode.Path
    vpath = None
    # fcntl F_SETOWN / F_SETSIG (recorded for drivers that deliver SIGIO)
    owner_pid = 0
    owner_sig = 0

    # -- access mode helpers
    @property
    def readable(self) -> bool:
        return (self.flags & O_ACCMODE) in (O_RDONLY, O_RDWR) and not self.flags & O_PATH

    @property
    def writable(self) -> bool:
        return (self.flags & O_ACCMODE) in (O_WRONLY, O_RDWR) and not self.flags & O_PATH

    @property
    def nonblocking(self) -> bool:
        return bool(self.flags & O_NONBLOCK)

    # -- operations
    def read(self, t: "Task", n: int) -> bytes:
        raise Errno(errno.EINVAL)

    def write(self, t: "Task", data: bytes) -> int:
        raise Errno(errno.EINVAL)

    def pread(self, t: "Task", n: int, off: int) -> bytes:
        raise Errno(errno.ESPIPE)

    def pwrite(self, t: "Task", data: bytes, off: int) -> int:
        raise Errno(errno.ESPIPE)

    def lseek(self, off: int, whence: int) -> int:
        raise Errno(errno.ESPIPE)

    def ioctl(self, t: "Task", cmd: int, arg: int) -> int:
        raise Errno(errno.ENOTTY)

    def poll(self) -> int:
        """Current readiness mask (POLLIN/POLLOUT/...); never blocks."""
        return POLLIN | POLLOUT

    def getdents(self, t: "Task", n: int) -> bytes:
        raise Errno(errno.ENOTDIR)

    def stat(self):
        """A usermode.fs.stat.Stat. Files without an inode of their own look like Linux's
        anonymous inodes (mode 0600, no type); VFS-opened files report their inode."""
        return Stat(dev=ANON_DEV, ino=id(self) & 0xFFFFFFF, mode=0o600, nlink=1)

    def poll_queues(self) -> list[WaitQueue]:
        """The wait queues a poller of this file must sleep on (epoll adds its watches')."""
        return [self.waitq]

    def setfl(self, flags: int) -> None:
        """fcntl(F_SETFL) / FIONBIO changed O_APPEND/O_NONBLOCK/O_ASYNC...: drivers that
        mirror these on a host fd override this."""
        self.flags = flags

    def name(self) -> bytes:
        """What /proc/<pid>/fd/N shows for a file not opened by path."""
        return b"anon_inode:[" + type(self).__name__.lower().encode() + b"]"

    def truncate(self, length: int) -> None:
        raise Errno(errno.EINVAL)

    def fsync(self) -> None:
        return None

    def release(self) -> None:
        """The last fd referring to this file was closed."""
        return None
