"""The mount namespace: mounts, filesystem types, devices, FsContext, path lookup.

The namespace operations (mkdir, unlink, rename, ...) are in vfs_ops.py and open/exec in
vfs_open.py; both are mixed into VFS so callers see one object: `t.fs.vfs`.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Callable

from usermode.fs.devfs import register_mem_devices
from usermode.fs.devices import DeviceRegistry
from usermode.fs.inode import (MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY,
                               MS_REMOUNT, Dentry, FileSystem, Inode, Mount, Path)
from usermode.fs.namei import Walker
from usermode.fs.stat import makedev
from usermode.fs.vfs_open import OpenMixin
from usermode.fs.vfs_ops import OpsMixin
from usermode.kernel.creds import Creds
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.fs.file import File
    from usermode.kernel.task import Task

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_SYMLINK_FOLLOW = 0x100, 0x200, 0x400
AT_NO_AUTOMOUNT, AT_EMPTY_PATH, AT_EACCESS = 0x800, 0x1000, 0x200

# factory(source, flags, data, task) -> FileSystem; raise Errno to refuse
FsFactory = Callable[[bytes, int, bytes, "Task | None"], FileSystem]

MNT_FLAG_MASK = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC


def _call(sb: FileSystem, method: str) -> None:
    fn = getattr(sb, method, None)
    if fn is not None:
        try:
            fn()
        except Errno:
            pass                # the filesystem logged the I/O error itself


class FsContext:
    """fs_struct: root, cwd and umask of a task, shared under CLONE_FS."""

    __slots__ = ("vfs", "root", "cwd", "umask")

    def __init__(self, vfs: "VFS", root: Path, cwd: Path, umask: int = 0o022) -> None:
        self.vfs = vfs
        self.root = root
        self.cwd = cwd
        self.umask = umask

    def fork(self) -> "FsContext":
        return FsContext(self.vfs, self.root, self.cwd, self.umask)

    copy = fork


class VFS(OpenMixin, OpsMixin):
    def __init__(self, rootfs: FileSystem, flags: int = 0, source: str = "rootfs") -> None:
        self._anon_minor = 30
        self.fstypes: dict[str, FsFactory] = {}
        self.devices = DeviceRegistry()
        register_mem_devices(self.devices)
        self.mounted: dict[tuple[Mount, Inode], list[Mount]] = {}
        self.add_sb(rootfs)
        assert rootfs.root is not None
        self.root_mount = Mount(rootfs, Dentry(b"/", None, rootfs.root), None, None,
                                flags, source)
        self.mounts: list[Mount] = [self.root_mount]
        self.register_builtin_fstypes()

    # -- setup
    def add_sb(self, fs: FileSystem) -> FileSystem:
        """Give a new filesystem its st_dev (an anonymous 0:N unless it has one)."""
        if not fs.dev:
            self._anon_minor += 1
            fs.dev = makedev(0, self._anon_minor)
        return fs

    def register_fstype(self, name: str, factory: FsFactory) -> None:
        """mount -t NAME; procfs, ext2 ... register here."""
        self.fstypes[name] = factory

    def register_builtin_fstypes(self) -> None:
        from usermode.fs.devfs import DevFS
        from usermode.fs.tmpfs import TmpFS, parse_mode_option

        def tmpfs(source: bytes, flags: int, data: bytes, t: "Task | None") -> FileSystem:
            return TmpFS(mode=parse_mode_option(data, 0o1777))

        def devtmpfs(source: bytes, flags: int, data: bytes, t: "Task | None") -> FileSystem:
            return DevFS(self.devices)

        self.register_fstype("tmpfs", tmpfs)
        self.register_fstype("devtmpfs", devtmpfs)
        from usermode.fs import ext2
        ext2.register(self)

    def register_chrdev(self, major: int, minor: int, opener, name: str | None = None,
                        mode: int = 0o666) -> None:
        """A character device: opener(t, flags) -> File. With a name, every devfs
        shows /dev/<name> for it."""
        self.devices.register_chrdev(major, minor, opener, name, mode)

    def register_blkdev(self, major: int, minor: int, opener, name: str | None = None,
                        mode: int = 0o660) -> None:
        self.devices.register_blkdev(major, minor, opener, name, mode)

    def root_path(self) -> Path:
        return Path(self.root_mount, self.root_mount.root)

    def new_context(self) -> FsContext:
        """The FsContext of init: root and cwd at the namespace root."""
        r = self.root_path()
        return FsContext(self, r, r)

    # -- mounts
    def cross_mounts(self, p: Path) -> Path:
        while True:
            stack = self.mounted.get((p.mount, p.dentry.inode))
            if not stack:
                return p
            m = stack[-1]
            p = Path(m, m.root)

    def mount(self, fs: FileSystem, target: "Path | str", flags: int = 0,
              source: str = "none", root: Dentry | None = None) -> Mount:
        """Attach fs (or the subtree `root` of it, for bind mounts) at target."""
        if isinstance(target, str):
            target = self.lookup_kernel(target)
        if not target.dentry.inode.is_dir and root is None:
            raise Errno(errno.ENOTDIR)
        if root is None:
            self.add_sb(fs)
            assert fs.root is not None
            root = Dentry(b"/", None, fs.root)
        m = Mount(fs, root, target.mount, target.dentry, flags & MNT_FLAG_MASK, source)
        self.mounted.setdefault((target.mount, target.dentry.inode), []).append(m)
        self.mounts.append(m)
        return m

    def bind(self, src: Path, target: Path, flags: int = 0) -> Mount:
        if src.dentry.inode.is_dir != target.dentry.inode.is_dir:
            raise Errno(errno.ENOTDIR if src.dentry.inode.is_dir else errno.EISDIR)
        return self.mount(src.mount.sb, target, flags, src.mount.source, root=src.dentry)

    def remount(self, target: Path, flags: int) -> None:
        if target.dentry is not target.mount.root:
            raise Errno(errno.EINVAL)
        remount = getattr(target.mount.sb, "remount", None)
        if remount is not None:
            remount(flags)              # ext2 switches between ro and rw (or refuses)
        target.mount.flags = flags & MNT_FLAG_MASK

    def umount(self, target: Path, flags: int = 0) -> None:
        m = target.mount
        if target.dentry is not m.root:
            raise Errno(errno.EINVAL)
        if m.parent is None or m.mountpoint is None:
            raise Errno(errno.EBUSY)
        children = [c for c in self.mounts if c.parent is m]
        if children and not flags & MNT_DETACH:
            raise Errno(errno.EBUSY)
        for c in children:
            self.umount(Path(c, c.root), flags)
        key = (m.parent, m.mountpoint.inode)
        stack = self.mounted.get(key, [])
        if m in stack:
            stack.remove(m)
        if not stack:
            self.mounted.pop(key, None)
        self.mounts.remove(m)
        if not any(x.sb is m.sb for x in self.mounts):
            _call(m.sb, "release")         # last mount gone: write back, mark clean

    def sync_all(self) -> None:
        """sync(2): every filesystem that keeps state to write back (ext2)."""
        for sb in {id(m.sb): m.sb for m in self.mounts}.values():
            _call(sb, "sync")

    def release_all(self) -> None:
        """Shutdown: as if every filesystem were unmounted."""
        for sb in {id(m.sb): m.sb for m in self.mounts}.values():
            _call(sb, "release")

    def mount_path(self, m: Mount) -> bytes:
        """Where m is mounted, from the namespace root (for /proc/mounts)."""
        if m.mountpoint is None or m.parent is None:
            return b"/"
        return self.d_path(Path(m.parent, m.mountpoint), self.root_path())

    def do_mount(self, t: "Task", source: bytes, target: Path, fstype: str, flags: int,
                 data: bytes) -> None:
        """mount(2) after argument decoding: bind, remount or a new filesystem."""
        if flags & MS_REMOUNT:
            self.remount(target, flags)
            return
        if flags & MS_BIND:
            src = self.lookup(t, AT_FDCWD, source)
            self.bind(src, target, flags)
            return
        factory = self.fstypes.get(fstype)
        if factory is None:
            raise Errno(errno.ENODEV)
        fs = factory(source, flags, data, t)
        self.mount(fs, target, flags, source.decode(errors="replace") or fstype)

    # -- lookup
    def walker(self, t: "Task", creds: Creds | None = None) -> Walker:
        return Walker(self, creds or t.creds, t.fs.root)

    def start(self, t: "Task", dirfd: int, path: bytes) -> Path:
        """Where a relative path starts: cwd, or the directory open at dirfd."""
        if path[:1] == b"/":
            return t.fs.root
        if dirfd == AT_FDCWD:
            return t.fs.cwd
        f = t.files.get(dirfd)
        if f.vpath is None:
            raise Errno(errno.ENOTDIR)
        if path and not f.vpath.dentry.inode.is_dir:
            raise Errno(errno.ENOTDIR)
        return f.vpath

    def lookup(self, t: "Task", dirfd: int, path: bytes, follow: bool = True,
               empty_path: bool = False, creds: Creds | None = None) -> Path:
        """Resolve path as the task sees it. With empty_path (AT_EMPTY_PATH), "" means
        the file open at dirfd itself."""
        if not path:
            if not empty_path:
                raise Errno(errno.ENOENT)
            if dirfd == AT_FDCWD:
                return t.fs.cwd
            f = t.files.get(dirfd)
            if f.vpath is None:
                raise Errno(errno.EBADF)
            return f.vpath
        start = self.start(t, dirfd, path)
        return self.walker(t, creds).walk(start, path, follow)

    def lookup_parent(self, t: "Task", dirfd: int, path: bytes) -> tuple[Path, bytes, bool]:
        if not path:
            raise Errno(errno.ENOENT)
        return self.walker(t).walk_parent(self.start(t, dirfd, path), path)

    def lookup_kernel(self, path: str, follow: bool = True) -> Path:
        """Resolve an absolute path as root from the namespace root (boot-time setup)."""
        r = self.root_path()
        return Walker(self, Creds(), r).walk(r, path.encode(), follow)

    def d_path(self, p: Path, root: Path) -> bytes:
        """The path of p seen from root; outside root it is prefixed "(unreachable)"."""
        parts: list[bytes] = []
        m, d = p.mount, p.dentry
        while not (m is root.mount and d is root.dentry):
            if d is m.root:
                if m.parent is None or m.mountpoint is None:
                    return b"(unreachable)/" + b"/".join(reversed(parts))
                m, d = m.parent, m.mountpoint
                continue
            parts.append(d.name)
            if d.parent is None:
                break
            d = d.parent
        return b"/" + b"/".join(reversed(parts))

    def file_name(self, f: "File", root: Path) -> bytes:
        """What readlink(/proc/<pid>/fd/N) shows."""
        if f.vpath is not None:
            name = self.d_path(f.vpath, root)
            return name + b" (deleted)" if f.vpath.dentry.dead else name
        return f.name()

    def statfs(self, p: Path) -> dict[str, int]:
        st = dict(p.mount.sb.statfs())
        st["type"] = p.mount.sb.magic
        st["fsid"] = p.mount.sb.dev
        st["flags"] = st.get("flags", 0) | p.mount.flags | 0x20   # ST_VALID-ish (0x20)
        return st
