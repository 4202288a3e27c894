"""tmpfs: an in-memory filesystem with full POSIX semantics (also the base of devfs)."""
from __future__ import annotations

import errno

from usermode.fs.inode import FileSystem, Inode, now_ns
from usermode.fs.stat import S_IFDIR, S_IFLNK, S_IFREG, dtype_of
from usermode.host.pagecache import SharedMemory
from usermode.kernel.errors import Errno

TMPFS_MAGIC = 0x01021994
MAX_FILE = 1 << 33        # refuse absurd sparse sizes: data lives in a bytearray


class TmpInode(Inode):
    def __init__(self, sb: "TmpFS", mode: int, uid: int = 0, gid: int = 0, rdev: int = 0) -> None:
        super().__init__(sb, sb.new_ino(), mode, uid, gid, rdev)
        self.entries: dict[bytes, TmpInode] = {}
        self.data = bytearray()
        self.shared: SharedMemory | None = None      # set once mapped MAP_SHARED
        self.target = b""
        self.parent: TmpInode | None = None      # directories only, for nlink bookkeeping

    # -- directories
    def lookup(self, name: bytes) -> Inode:
        if not self.is_dir:
            raise Errno(errno.ENOTDIR)
        try:
            return self.entries[name]
        except KeyError:
            raise Errno(errno.ENOENT) from None

    def _add(self, name: bytes, node: "TmpInode") -> "TmpInode":
        if name in self.entries:
            raise Errno(errno.EEXIST)
        self.sb.charge(node, 0)
        self.entries[name] = node
        if node.is_dir:
            node.parent = self
            self.nlink += 1
        self.mtime_ns = self.ctime_ns = now_ns()
        return node

    def create(self, name: bytes, mode: int, uid: int, gid: int) -> Inode:
        return self._add(name, TmpInode(self.sb, S_IFREG | (mode & 0o7777), uid, gid))

    def mkdir(self, name: bytes, mode: int, uid: int, gid: int) -> Inode:
        return self._add(name, TmpInode(self.sb, S_IFDIR | (mode & 0o7777), uid, gid))

    def mknod(self, name: bytes, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        return self._add(name, TmpInode(self.sb, mode, uid, gid, rdev))

    def symlink(self, name: bytes, target: bytes, uid: int, gid: int) -> Inode:
        node = TmpInode(self.sb, S_IFLNK | 0o777, uid, gid)
        node.target = target
        node.size = len(target)
        return self._add(name, node)

    def link(self, name: bytes, inode: Inode) -> None:
        if name in self.entries:
            raise Errno(errno.EEXIST)
        assert isinstance(inode, TmpInode)
        self.entries[name] = inode
        inode.nlink += 1
        inode.ctime_ns = self.mtime_ns = self.ctime_ns = now_ns()

    def _drop(self, name: bytes) -> "TmpInode":
        node = self.entries.pop(name)
        node.nlink -= 1
        if node.is_dir:
            self.nlink -= 1
            node.nlink -= 1             # its "." entry
            node.parent = None
        node.ctime_ns = self.mtime_ns = self.ctime_ns = now_ns()
        if node.nlink <= 0:
            self.sb.charge(node, -(node.size if node.shared is not None else len(node.data)))
        return node

    def unlink(self, name: bytes) -> None:
        node = self.lookup(name)
        if node.is_dir:
            raise Errno(errno.EISDIR)
        self._drop(name)

    def rmdir(self, name: bytes) -> None:
        node = self.lookup(name)
        if not node.is_dir:
            raise Errno(errno.ENOTDIR)
        if node.entries:
            raise Errno(errno.ENOTEMPTY)
        self._drop(name)

    def rename(self, old: bytes, newdir: Inode, new: bytes, exchange: bool = False) -> None:
        assert isinstance(newdir, TmpInode)
        node = self.lookup(old)
        if exchange:
            other = newdir.lookup(new)
            assert isinstance(other, TmpInode)
            self.entries[old], newdir.entries[new] = other, node
            if newdir is not self:
                for moved, frm, to in ((node, self, newdir), (other, newdir, self)):
                    if moved.is_dir:
                        frm.nlink -= 1
                        to.nlink += 1
                        moved.parent = to
            node.ctime_ns = other.ctime_ns = now_ns()
            return
        target = newdir.entries.get(new)
        if target is node:
            return
        if target is not None:
            if target.is_dir:
                newdir.rmdir(new)
            else:
                newdir.unlink(new)
        del self.entries[old]
        newdir.entries[new] = node
        if node.is_dir and newdir is not self:
            self.nlink -= 1
            newdir.nlink += 1
            node.parent = newdir
        t = now_ns()
        node.ctime_ns = self.mtime_ns = self.ctime_ns = newdir.mtime_ns = newdir.ctime_ns = t

    def listdir(self) -> list[tuple[bytes, int, int]]:
        if not self.is_dir:
            raise Errno(errno.ENOTDIR)
        return [(n, i.ino, dtype_of(i.mode)) for n, i in self.entries.items()]

    # -- symlinks and data
    def readlink(self) -> bytes:
        if not self.is_symlink:
            raise Errno(errno.EINVAL)
        return self.target

    def shared_fd(self) -> int:
        """The kernel-side fd of this file's memory for MAP_SHARED: the data moves into a
        memfd on the first shared mapping and stays there."""
        if self.shared is None:
            self.shared = SharedMemory(bytes(self.data))
            self.data = bytearray()
        return self.shared.fd

    def read_at(self, off: int, n: int) -> bytes:
        if self.is_dir:
            raise Errno(errno.EISDIR)
        self.atime_ns = now_ns()
        if self.shared is not None:
            return self.shared.read(off, n) if off < self.size else b""
        return bytes(self.data[off:off + n])

    def write_at(self, off: int, data: bytes) -> int:
        if self.is_dir:
            raise Errno(errno.EISDIR)
        end = off + len(data)
        if end > MAX_FILE:
            raise Errno(errno.EFBIG)
        if self.shared is not None:
            if end > self.size:
                self.sb.charge(self, end - self.size)
            n = self.shared.write(off, data)
            self.size = max(self.size, end)
            self.mtime_ns = self.ctime_ns = now_ns()
            return n
        grow = end - len(self.data)
        if grow > 0:
            self.sb.charge(self, grow)
            if off > len(self.data):
                self.data.extend(bytes(off - len(self.data)))
        self.data[off:end] = data
        self.size = len(self.data)
        self.mtime_ns = self.ctime_ns = now_ns()
        return len(data)

    def truncate(self, size: int) -> None:
        if self.is_dir:
            raise Errno(errno.EISDIR)
        if size > MAX_FILE:
            raise Errno(errno.EFBIG)
        if self.shared is not None:
            self.sb.charge(self, size - self.size)
            self.shared.resize(size)
            self.size = size
            self.mtime_ns = self.ctime_ns = now_ns()
            return
        delta = size - len(self.data)
        self.sb.charge(self, delta)
        if delta < 0:
            del self.data[size:]
        else:
            self.data.extend(bytes(delta))
        self.size = size
        self.mtime_ns = self.ctime_ns = now_ns()


class TmpFS(FileSystem):
    fstype = "tmpfs"
    magic = TMPFS_MAGIC

    def __init__(self, size_limit: int = 1 << 30, mode: int = 0o1777, uid: int = 0,
                 gid: int = 0) -> None:
        super().__init__()
        self.size_limit = size_limit
        self.used = 0
        self.inodes = 0
        self.root = TmpInode(self, S_IFDIR | mode, uid, gid)

    def charge(self, node: Inode, nbytes: int) -> None:
        """Account data (ENOSPC past the size limit); nbytes == 0 charges a new inode."""
        if nbytes > 0 and self.used + nbytes > self.size_limit:
            raise Errno(errno.ENOSPC)
        self.used += nbytes
        if nbytes == 0:
            self.inodes += 1

    def statfs(self) -> dict[str, int]:
        blocks = self.size_limit // 4096
        free = max(0, blocks - (self.used + 4095) // 4096)
        return dict(bsize=4096, blocks=blocks, bfree=free, bavail=free, files=1 << 20,
                    ffree=(1 << 20) - self.inodes, namelen=255, frsize=4096, flags=0)


def parse_mode_option(data: bytes, default: int) -> int:
    for opt in data.split(b","):
        if opt.startswith(b"mode="):
            try:
                return int(opt[5:], 8) & 0o7777
            except ValueError:
                raise Errno(errno.EINVAL) from None
    return default

