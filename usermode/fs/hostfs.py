"""hostfs: a host directory exported into the guest, confined to that directory.

Directory inodes pin the host directory with an O_PATH fd; every operation is one
*at() call relative to such an fd (usermode/host/hostfs_ops.py), so `..` and symlinks
are resolved by our VFS inside the guest namespace, never by the host. Attributes are
re-read from the host on every lookup and stat, so guest and host agree; only directories
that a path walk passes through are trusted for a second (FUSE's default entry_timeout).
Host device nodes become guest device inodes (opened through the device registry), host
FIFOs become guest FIFOs; neither is ever opened on the host.
"""
from __future__ import annotations

import collections
import errno
import weakref
from typing import TYPE_CHECKING

from usermode.fs.file import O_ACCMODE, O_APPEND, O_RDONLY, O_RDWR, O_WRONLY, SEEK_END
from usermode.fs.files import InodeFile
from usermode.fs.inode import Epoch, FileSystem, Inode, Path
from usermode.fs.stat import S_IFDIR, S_IFMT, S_IFREG, Stat
from usermode.host import hostfs_ops as ops
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.kernel.task import Task

HOSTFS_SUPER_MAGIC = 0x00C0FFEE
DIR_CACHE = 512          # directories kept open (O_PATH) after their last dentry is gone


class HostInode(Inode):
    def __init__(self, sb: "HostFS", s, dirfd: int | None = None) -> None:
        super().__init__(sb, s.st_ino, s.st_mode, s.st_uid, s.st_gid, s.st_rdev)
        self.hsb = sb
        self.fd = dirfd                                  # directories: O_PATH fd
        self.loc: tuple[HostInode, bytes] | None = None  # others: where last found
        if dirfd is not None:
            weakref.finalize(self, ops.close, dirfd)
        self._apply(s)

    def _apply(self, s) -> None:
        self.mode, self.uid, self.gid, self.rdev = s.st_mode, s.st_uid, s.st_gid, s.st_rdev
        self.nlink, self.size = s.st_nlink, s.st_size
        self.atime_ns, self.mtime_ns, self.ctime_ns = s.st_atime_ns, s.st_mtime_ns, s.st_ctime_ns
        self.blocks = s.st_blocks
        self.read_epoch = Epoch.now

    def _where(self) -> tuple[int, bytes | None]:
        """(dirfd, name) naming this inode on the host; name None: the fd itself."""
        if self.fd is not None:
            return self.fd, None
        if self.loc is None:
            raise Errno(errno.ESTALE)
        parent, name = self.loc
        assert parent.fd is not None
        return parent.fd, name

    def refresh(self) -> None:
        if self.read_epoch == Epoch.now:
            return                 # read from the host already in this system call
        self.reread()

    def reread(self) -> None:
        try:
            fd, name = self._where()
            self._apply(ops.fstat(fd) if name is None else ops.lstat_at(fd, name))
        except Errno:
            pass                   # gone on the host: keep what we knew

    def getattr(self) -> Stat:
        s = super().getattr()
        s.blocks = self.blocks
        return s

    # -- directory operations
    def lookup(self, name: bytes) -> Inode:
        if self.fd is None:
            raise Errno(errno.ENOTDIR)
        return self.hsb.inode_at(self, name)

    def create(self, name: bytes, mode: int, uid: int, gid: int) -> Inode:
        ops.create_at(self._dfd(), name, mode, uid, gid)
        return self.hsb.inode_at(self, name)

    def mkdir(self, name: bytes, mode: int, uid: int, gid: int) -> Inode:
        ops.mkdir_at(self._dfd(), name, mode, uid, gid)
        return self.hsb.inode_at(self, name)

    def mknod(self, name: bytes, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        ops.mknod_at(self._dfd(), name, mode, uid, gid)
        return self.hsb.inode_at(self, name)

    def symlink(self, name: bytes, target: bytes, uid: int, gid: int) -> Inode:
        ops.symlink_at(self._dfd(), name, target, uid, gid)
        return self.hsb.inode_at(self, name)

    def link(self, name: bytes, inode: Inode) -> None:
        assert isinstance(inode, HostInode)
        fd, old = inode._where()
        if old is None:
            raise Errno(errno.EPERM)
        ops.link_at(fd, old, self._dfd(), name)

    def unlink(self, name: bytes) -> None:
        ops.unlink_at(self._dfd(), name)

    def rmdir(self, name: bytes) -> None:
        ops.rmdir_at(self._dfd(), name)

    def rename(self, old: bytes, newdir: Inode, new: bytes, exchange: bool = False) -> None:
        assert isinstance(newdir, HostInode)
        ops.rename_at(self._dfd(), old, newdir._dfd(), new, 2 if exchange else 0)

    def listdir(self) -> list[tuple[bytes, int, int]]:
        return ops.listdir(self._dfd())

    def _dfd(self) -> int:
        if self.fd is None:
            raise Errno(errno.ENOTDIR)
        return self.fd

    # -- attributes and data
    def setattr(self, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                atime_ns: int | None = None, mtime_ns: int | None = None) -> None:
        fd, name = self._where()
        if mode is not None:
            ops.chmod(fd, name, mode & 0o7777)
        if uid is not None or gid is not None:
            ops.chown(fd, name, -1 if uid is None else uid, -1 if gid is None else gid)
        if atime_ns is not None or mtime_ns is not None:
            ops.utimens(fd, name, atime_ns, mtime_ns)
        self.reread()

    def readlink(self) -> bytes:
        fd, name = self._where()
        if name is None or not self.is_symlink:
            raise Errno(errno.EINVAL)
        return ops.readlink_at(fd, name)

    def truncate(self, size: int) -> None:
        fd, name = self._where()
        if name is None:
            raise Errno(errno.EISDIR)
        ops.truncate_at(fd, name, size)
        self.reread()

    def open_file(self, t: "Task", flags: int, path: Path) -> "HostFile | None":
        if self.mode & S_IFMT != S_IFREG:
            return None
        fd, name = self._where()
        if name is None:
            return None
        acc = flags & O_ACCMODE
        hflags = {O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2}.get(acc, 2) | (flags & O_APPEND)
        return HostFile(path, flags, ops.open_file_at(fd, name, hflags))

    def read_at(self, off: int, n: int) -> bytes:
        fd, name = self._where()
        if name is None:
            raise Errno(errno.EISDIR)
        hfd = ops.open_file_at(fd, name, 0)
        try:
            return ops.pread(hfd, n, off)
        finally:
            ops.close(hfd)


class HostFile(InodeFile):
    """An open host regular file: I/O on the host fd the kernel holds for it."""

    def __init__(self, path: Path, flags: int, hfd: int) -> None:
        super().__init__(path, flags)
        self.hfd = hfd

    def _size(self) -> int:
        return ops.fstat(self.hfd).st_size

    def read(self, t: "Task", n: int) -> bytes:
        data = ops.pread(self.hfd, n, self.pos)
        self.pos += len(data)
        return data

    def pread(self, t: "Task", n: int, off: int) -> bytes:
        return ops.pread(self.hfd, n, off)

    def write(self, t: "Task", data: bytes) -> int:
        if self.flags & O_APPEND:
            self.pos = self._size()
        n = ops.pwrite(self.hfd, data, self.pos)
        self.pos += n
        return n

    def pwrite(self, t: "Task", data: bytes, off: int) -> int:
        return ops.pwrite(self.hfd, data, off)     # O_APPEND on the host fd appends

    def lseek(self, off: int, whence: int) -> int:
        if whence == SEEK_END:
            self.inode.size = self._size()
        return super().lseek(off, whence)

    def stat(self) -> Stat:
        assert isinstance(self.inode, HostInode)
        self.inode._apply(ops.fstat(self.hfd))
        s = Inode.getattr(self.inode)
        s.blocks = self.inode.blocks
        s.mnt_id = self.vpath.mount.id
        return s

    def truncate(self, length: int) -> None:
        ops.ftruncate(self.hfd, length)

    def fsync(self) -> None:
        ops.fsync(self.hfd)

    def release(self) -> None:
        ops.close(self.hfd)
        self.hfd = -1


class HostFS(FileSystem):
    fstype = "hostfs"
    magic = HOSTFS_SUPER_MAGIC
    trusted_dcache = False        # the host may change the tree behind our back
    dir_entry_ttl = 1.0           # but directories walked through are trusted for 1 s

    def __init__(self, host_path: str) -> None:
        super().__init__()
        self.host_path = host_path
        self.inodes: weakref.WeakValueDictionary[tuple[int, int], HostInode] = \
            weakref.WeakValueDictionary()
        self.recent: collections.OrderedDict[tuple[int, int], HostInode] = \
            collections.OrderedDict()
        fd = ops.open_root(host_path)
        s = ops.fstat(fd)
        root = HostInode(self, s, fd)
        self.inodes[(s.st_dev, s.st_ino)] = root
        self.root = root

    def inode_at(self, dir: HostInode, name: bytes) -> HostInode:
        """The inode named name in dir, from a fresh host lstat (never following)."""
        assert dir.fd is not None
        s = ops.lstat_at(dir.fd, name)
        key = (s.st_dev, s.st_ino)
        node = self.inodes.get(key)
        if node is None or (node.mode & S_IFMT) != (s.st_mode & S_IFMT):
            fd = ops.open_dir_at(dir.fd, name) if s.st_mode & S_IFMT == S_IFDIR else None
            node = HostInode(self, s, fd)
            self.inodes[key] = node
        else:
            node._apply(s)
        if node.fd is None:
            node.loc = (dir, name)
        else:
            self.recent[key] = node
            self.recent.move_to_end(key)
            if len(self.recent) > DIR_CACHE:
                self.recent.popitem(last=False)
        return node

    def statfs(self) -> dict[str, int]:
        assert isinstance(self.root, HostInode) and self.root.fd is not None
        v = ops.statvfs(self.root.fd)
        return dict(bsize=v.f_bsize, blocks=v.f_blocks, bfree=v.f_bfree, bavail=v.f_bavail,
                    files=v.f_files, ffree=v.f_ffree, namelen=v.f_namemax,
                    frsize=v.f_frsize, flags=0)


def hostfs_factory(allowed_root: str | None):
    """mount -t hostfs none DIR -o HOSTPATH, confined to allowed_root (UML's hostfs=).
    With no allowed root the guest may not mount host directories at all."""
    def factory(source: bytes, flags: int, data: bytes, t) -> FileSystem:
        if allowed_root is None:
            raise Errno(errno.EPERM)
        rel = (data.split(b",")[0] if data else b"").decode(errors="surrogateescape")
        fs = HostFS(allowed_root)
        if rel.strip("/"):
            # walk the sub-path inside the allowed root without the host following links
            node: HostInode = fs.root           # type: ignore[assignment]
            for comp in [c for c in rel.split("/") if c and c != "."]:
                if comp == "..":
                    raise Errno(errno.EPERM)
                node = fs.inode_at(node, comp.encode(errors="surrogateescape"))
                if node.fd is None:
                    raise Errno(errno.ENOTDIR)
            fs.root = node
        return fs
    return factory

