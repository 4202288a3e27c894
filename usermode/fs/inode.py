"""Inodes, filesystems (superblocks), dentries, mounts and paths: the VFS object model.

A filesystem implements Inode subclasses. The VFS layer (namei/vfs) does the generic
checks (permissions, types, EEXIST/ENOTEMPTY/EXDEV...) so that an Inode method only
performs the operation. Dentries cache the name tree: they are what cwd, open files and
mount points hold, so getcwd and `..` work; a filesystem whose tree can change behind our
back (hostfs) is revalidated by calling lookup() again, except for directories a walk only
passes through, which are trusted for the filesystem's dir_entry_ttl.
"""
from __future__ import annotations

import collections
import errno
import time
import weakref
from typing import TYPE_CHECKING, NamedTuple

from usermode.fs.stat import S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Stat
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.fs.file import File
    from usermode.kernel.task import Task

NAME_MAX = 255
PATH_MAX = 4096


def now_ns() -> int:
    return time.time_ns()


class Epoch:
    """Counts the system calls the kernel serves (run_handler). Attributes a filesystem
    read from the host during the current call need not be read again in it: a second
    read could only tell of the same moment (hostfs's lookup, then stat)."""
    now = 0


class Inode:
    """One file of some filesystem. Default methods refuse the way Linux does."""

    def __init__(self, sb: "FileSystem", ino: int, mode: int, uid: int = 0, gid: int = 0,
                 rdev: int = 0) -> None:
        self.sb = sb
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.nlink = 2 if mode & S_IFMT == S_IFDIR else 1
        self.size = 0
        t = now_ns()
        self.atime_ns = self.mtime_ns = self.ctime_ns = self.btime_ns = t
        self.pipe = None       # the pipe behind a FIFO, made on first open
        self.locks = None      # advisory lock state (locks.py)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ino={self.ino} mode={self.mode:o}>"

    @property
    def is_dir(self) -> bool:
        return self.mode & S_IFMT == S_IFDIR

    @property
    def is_symlink(self) -> bool:
        return self.mode & S_IFMT == S_IFLNK

    @property
    def is_reg(self) -> bool:
        return self.mode & S_IFMT == S_IFREG

    @property
    def ftype(self) -> int:
        return self.mode & S_IFMT

    # -- attributes
    def refresh(self) -> None:
        """Bring cached attributes up to date (hostfs re-reads the host)."""

    def getattr(self) -> Stat:
        self.refresh()
        return Stat(dev=self.sb.dev, ino=self.ino, mode=self.mode, nlink=self.nlink,
                    uid=self.uid, gid=self.gid, rdev=self.rdev, size=self.size,
                    blksize=4096, blocks=(self.size + 511) // 512,
                    atime_ns=self.atime_ns, mtime_ns=self.mtime_ns, ctime_ns=self.ctime_ns,
                    btime_ns=self.btime_ns)

    def setattr(self, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                atime_ns: int | None = None, mtime_ns: int | None = None) -> None:
        """chmod/chown/utimes; permission checks were done by the caller."""
        if mode is not None:
            self.mode = (self.mode & S_IFMT) | (mode & 0o7777)
        if uid is not None:
            self.uid = uid
        if gid is not None:
            self.gid = gid
        if atime_ns is not None:
            self.atime_ns = atime_ns
        if mtime_ns is not None:
            self.mtime_ns = mtime_ns
        self.ctime_ns = now_ns()

    # -- directory operations (self is the directory)
    def lookup(self, name: bytes) -> "Inode":
        raise Errno(errno.ENOTDIR if not self.is_dir else errno.ENOENT)

    def create(self, name: bytes, mode: int, uid: int, gid: int) -> "Inode":
        raise Errno(errno.EPERM)

    def mkdir(self, name: bytes, mode: int, uid: int, gid: int) -> "Inode":
        raise Errno(errno.EPERM)

    def mknod(self, name: bytes, mode: int, rdev: int, uid: int, gid: int) -> "Inode":
        raise Errno(errno.EPERM)

    def symlink(self, name: bytes, target: bytes, uid: int, gid: int) -> "Inode":
        raise Errno(errno.EPERM)

    def link(self, name: bytes, inode: "Inode") -> None:
        raise Errno(errno.EPERM)

    def unlink(self, name: bytes) -> None:
        raise Errno(errno.EPERM)

    def rmdir(self, name: bytes) -> None:
        """Remove an empty directory (ENOTEMPTY otherwise)."""
        raise Errno(errno.EPERM)

    def rename(self, old: bytes, newdir: "Inode", new: bytes, exchange: bool = False) -> None:
        """Move old to newdir/new, replacing it (checks done by the VFS)."""
        raise Errno(errno.EPERM)

    def listdir(self) -> list[tuple[bytes, int, int]]:
        """(name, ino, d_type) of the entries, without . and .."""
        raise Errno(errno.ENOTDIR)

    # -- other types
    def readlink(self) -> bytes:
        raise Errno(errno.EINVAL)

    def follow_link(self) -> "Path | None":
        """A magic link's target object (procfs), or None to resolve readlink()'s text."""
        return None

    def read_at(self, off: int, n: int) -> bytes:
        raise Errno(errno.EINVAL)

    def write_at(self, off: int, data: bytes) -> int:
        raise Errno(errno.EINVAL)

    def truncate(self, size: int) -> None:
        raise Errno(errno.EINVAL if not self.is_dir else errno.EISDIR)

    def fsync(self) -> None:
        return None

    def open_file(self, t: "Task", flags: int, path: "Path") -> "File | None":
        """A filesystem's own File for this inode (hostfs, procfs), or None for the
        generic one built on read_at/write_at/listdir."""
        return None


class FileSystem:
    """A mounted filesystem instance (super_block). `dev` is the st_dev the guest sees."""

    fstype = "none"
    magic = 0
    # True when every change goes through us, so cached dentries stay valid
    trusted_dcache = True
    # Otherwise: seconds a directory found by a lookup is trusted for walks *through* it
    # (FUSE's entry_timeout); the last component of a path is always looked up again.
    dir_entry_ttl = 0.0
    KEEP_DENTRIES = 1024

    def __init__(self) -> None:
        self.dev = 0
        self.root: Inode | None = None
        self.flags = 0
        self._next_ino = 1
        # recently looked-up dentries kept alive (a path walk holds none of them)
        self.recent_dentries: collections.OrderedDict[Dentry, None] = collections.OrderedDict()

    def keep(self, d: "Dentry") -> None:
        """Hold recently looked-up dentries (and their inodes) of a revalidated tree."""
        self.recent_dentries[d] = None
        self.recent_dentries.move_to_end(d)
        if len(self.recent_dentries) > self.KEEP_DENTRIES:
            self.recent_dentries.popitem(last=False)

    def new_ino(self) -> int:
        self._next_ino += 1
        return self._next_ino

    def statfs(self) -> dict[str, int]:
        return dict(bsize=4096, blocks=0, bfree=0, bavail=0, files=0, ffree=0,
                    namelen=NAME_MAX, frsize=4096, flags=0)


class Dentry:
    """A name in the tree: what cwd, open files and mounts point at."""

    __slots__ = ("name", "parent", "inode", "children", "dead", "checked", "__weakref__")

    def __init__(self, name: bytes, parent: "Dentry | None", inode: Inode) -> None:
        self.name = name
        self.parent = parent
        self.inode = inode
        self.children: weakref.WeakValueDictionary[bytes, Dentry] = weakref.WeakValueDictionary()
        self.dead = False
        self.checked = 0.0

    def child(self, name: bytes, passing: bool = False) -> "Dentry":
        """Look name up in this directory, reusing a cached dentry when still valid.
        passing: the walk only goes through this name (a directory it will not stat)."""
        d = self.children.get(name)
        sb = self.inode.sb
        if d is not None:
            if sb.trusted_dcache:
                return d
            if passing and sb.dir_entry_ttl and d.inode.is_dir and \
                    time.monotonic() - d.checked < sb.dir_entry_ttl:
                return d
        inode = self.inode.lookup(name)
        if d is None or d.inode is not inode:
            d = Dentry(name, self, inode)
            self.children[name] = d
        if sb.dir_entry_ttl:
            if inode.is_dir:
                d.checked = time.monotonic()
            sb.keep(d)             # files too: their dentry and inode are reused next time
        return d

    def forget(self, name: bytes) -> None:
        d = self.children.pop(name, None)
        if d is not None:
            d.dead = True

    def __repr__(self) -> str:
        return f"<Dentry {self.name!r} {self.inode!r}>"


MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC = 32, 4096, 8192, 16384
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_FORCE, MNT_DETACH, MNT_EXPIRE, UMOUNT_NOFOLLOW = 1, 2, 4, 8


class Mount:
    """A filesystem (or a subtree of one, for bind mounts) attached at a mount point."""

    _ids = 20

    def __init__(self, sb: FileSystem, root: Dentry, parent: "Mount | None",
                 mountpoint: Dentry | None, flags: int = 0, source: str = "none") -> None:
        self.sb = sb
        self.root = root
        self.parent = parent
        self.mountpoint = mountpoint
        self.flags = flags
        self.source = source
        Mount._ids += 1
        self.id = Mount._ids

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MS_RDONLY)

    def __repr__(self) -> str:
        return f"<Mount {self.sb.fstype} id={self.id}>"


class Path(NamedTuple):
    """A (mount, dentry) pair: a position in the guest's tree (gVisor's VirtualDentry)."""
    mount: Mount
    dentry: Dentry

    @property
    def inode(self) -> Inode:
        return self.dentry.inode
