"""The generic File objects of inodes opened by path: regular data, directories, O_PATH."""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from usermode.fs.file import (O_APPEND, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM, SEEK_CUR,
                              SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_SET, File)
from usermode.fs.inode import Inode, Path
from usermode.fs.stat import DT_DIR, Stat
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.kernel.task import Task

MAX_LFS = (1 << 63) - 1


class VfsFile(File):
    """Common part: the path it was opened by, stat from the inode."""

    def __init__(self, path: Path, flags: int) -> None:
        super().__init__(flags)
        self.vpath = path
        self.inode: Inode = path.dentry.inode

    def stat(self) -> Stat:
        st = self.inode.getattr()
        st.mnt_id = self.vpath.mount.id
        return st

    def truncate(self, length: int) -> None:
        self.inode.truncate(length)

    def fsync(self) -> None:
        self.inode.fsync()


class InodeFile(VfsFile):
    """A regular file (or anything with read_at/write_at) of a filesystem."""

    mappable = True

    def read(self, t: "Task", n: int) -> bytes:
        data = self.inode.read_at(self.pos, n)
        self.pos += len(data)
        return data

    def write(self, t: "Task", data: bytes) -> int:
        if self.flags & O_APPEND:
            self.inode.refresh()
            self.pos = self.inode.size
        n = self.inode.write_at(self.pos, data)
        self.pos += n
        return n

    def pread(self, t: "Task", n: int, off: int) -> bytes:
        return self.inode.read_at(off, n)

    def pwrite(self, t: "Task", data: bytes, off: int) -> int:
        if self.flags & O_APPEND:        # Linux appends even for pwrite
            self.inode.refresh()
            off = self.inode.size
        return self.inode.write_at(off, data)

    def lseek(self, off: int, whence: int) -> int:
        if whence == SEEK_SET:
            new = off
        elif whence == SEEK_CUR:
            new = self.pos + off
        elif whence in (SEEK_END, SEEK_DATA, SEEK_HOLE):
            self.inode.refresh()
            size = self.inode.size
            if whence == SEEK_END:
                new = size + off
            elif off >= size or off < 0:
                raise Errno(errno.ENXIO)
            else:                        # no holes tracked: data everywhere, hole at EOF
                new = off if whence == SEEK_DATA else size
        else:
            raise Errno(errno.EINVAL)
        if new < 0 or new > MAX_LFS:
            raise Errno(errno.EINVAL)
        self.pos = new
        return new

    def poll(self) -> int:
        return POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM


_D64 = struct.Struct("<QqHB")
_D = struct.Struct("<QqH")


def pack_dirent64(ino: int, off: int, dtype: int, name: bytes) -> bytes:
    reclen = (_D64.size + len(name) + 1 + 7) & ~7
    return _D64.pack(ino, off, reclen, dtype) + name + bytes(reclen - _D64.size - len(name))


def pack_dirent(ino: int, off: int, dtype: int, name: bytes) -> bytes:
    """The old linux_dirent of getdents(2): d_type is the last byte of the record."""
    reclen = (_D.size + len(name) + 2 + 7) & ~7
    return _D.pack(ino, off, reclen) + name + bytes(reclen - _D.size - len(name) - 1) + \
        bytes([dtype])


class DirFile(VfsFile):
    """An open directory. pos counts entries; the listing is taken when reading starts
    at position 0 (rewinddir), so one pass sees a consistent snapshot."""

    def __init__(self, path: Path, flags: int) -> None:
        super().__init__(path, flags)
        self._entries: list[tuple[bytes, int, int]] | None = None

    def read(self, t: "Task", n: int) -> bytes:
        raise Errno(errno.EISDIR)

    def pread(self, t: "Task", n: int, off: int) -> bytes:
        raise Errno(errno.EISDIR)

    def write(self, t: "Task", data: bytes) -> int:
        raise Errno(errno.EISDIR)

    def entries(self) -> list[tuple[bytes, int, int]]:
        if self._entries is None or self.pos == 0:
            d = self.vpath.dentry
            parent = d.parent.inode if d.parent is not None else d.inode
            if d is self.vpath.mount.root and self.vpath.mount.mountpoint is not None:
                parent = self.vpath.mount.mountpoint.inode
            self._entries = [(b".", d.inode.ino, DT_DIR), (b"..", parent.ino, DT_DIR)] + \
                list(self.inode.listdir())
        return self._entries

    def getdents(self, t: "Task", n: int, old: bool = False) -> bytes:
        ents = self.entries()
        pack = pack_dirent if old else pack_dirent64
        out = bytearray()
        i = self.pos
        while i < len(ents):
            name, ino, dtype = ents[i]
            rec = pack(ino, i + 1, dtype, name)
            if len(out) + len(rec) > n:
                if not out:
                    raise Errno(errno.EINVAL)
                break
            out += rec
            i += 1
        self.pos = i
        return bytes(out)

    def lseek(self, off: int, whence: int) -> int:
        if whence == SEEK_SET:
            new = off
        elif whence == SEEK_CUR:
            new = self.pos + off
        else:
            raise Errno(errno.EINVAL)
        if new < 0:
            raise Errno(errno.EINVAL)
        self.pos = new
        return new

    def poll(self) -> int:
        return POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM


class PathFile(VfsFile):
    """O_PATH: a position in the tree only (fstat, fchdir, *at dirfd, dup, close)."""

    def read(self, t: "Task", n: int) -> bytes:
        raise Errno(errno.EBADF)

    def write(self, t: "Task", data: bytes) -> int:
        raise Errno(errno.EBADF)

    def pread(self, t: "Task", n: int, off: int) -> bytes:
        raise Errno(errno.EBADF)

    def pwrite(self, t: "Task", data: bytes, off: int) -> int:
        raise Errno(errno.EBADF)

    def lseek(self, off: int, whence: int) -> int:
        raise Errno(errno.EBADF)

    def ioctl(self, t: "Task", cmd: int, arg: int) -> int:
        raise Errno(errno.EBADF)

    def getdents(self, t: "Task", n: int) -> bytes:
        raise Errno(errno.EBADF)

    def truncate(self, length: int) -> None:
        raise Errno(errno.EBADF)

    def poll(self) -> int:
        return 0x20        # POLLNVAL, as Linux reports for O_PATH fds
