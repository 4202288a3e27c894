"""open(2) and execve's open: O_CREAT/O_EXCL/O_NOFOLLOW/O_TRUNC/O_DIRECTORY/O_PATH,
FIFOs and device nodes (opened through the device registry by rdev)."""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from usermode.fs.file import (O_ACCMODE, O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_PATH,
                              O_RDONLY, O_RDWR, O_TMPFILE, O_TRUNC, O_WRONLY, File)
from usermode.fs.files import DirFile, InodeFile, PathFile
from usermode.fs.inode import MS_NODEV, MS_NOEXEC, Dentry, Inode, Path
from usermode.fs.namei import MAXSYMLINKS, RESOLVE_BENEATH, RESOLVE_IN_ROOT, Walker
from usermode.fs.perm import MAY_EXEC, MAY_READ, MAY_WRITE, check
from usermode.fs.pipe import open_fifo
from usermode.fs.stat import S_IFBLK, S_IFCHR, S_IFIFO, S_IFREG, S_IFSOCK, S_ISGID
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.fs.vfs import VFS
    from usermode.kernel.task import Task

READ_CHUNK = 1 << 20


def new_owner(t: "Task", dir: Inode, mode: int) -> tuple[int, int, int]:
    """(uid, gid, mode) of a new inode: a setgid directory passes on its group
    (and, to subdirectories, the setgid bit)."""
    c = t.creds
    if dir.mode & S_ISGID:
        return c.fsuid, dir.gid, mode | (S_ISGID if mode & 0o170000 == 0o040000 else 0)
    return c.fsuid, c.fsgid, mode


def add_child(parent: Path, name: bytes, inode: Inode) -> Path:
    d = Dentry(name, parent.dentry, inode)
    parent.dentry.children[name] = d
    return Path(parent.mount, d)


class OpenMixin:
    """Part of VFS."""

    def open(self: "VFS", t: "Task", dirfd: int, path: bytes, flags: int,
             mode: int = 0, resolve: int = 0) -> File:
        """openat2 semantics; resolve holds RESOLVE_* flags (0 for open/openat)."""
        if flags & O_TMPFILE == O_TMPFILE:
            raise Errno(errno.EOPNOTSUPP)
        if flags & O_CREAT and flags & O_DIRECTORY:
            raise Errno(errno.EINVAL)
        if not path:
            raise Errno(errno.ENOENT)
        if resolve & (RESOLVE_IN_ROOT | RESOLVE_BENEATH):
            # dirfd is the root the whole resolution stays under
            base = self.start(t, dirfd, b".")
            w = Walker(self, t.creds, base, resolve)
            start = base
        else:
            w = Walker(self, t.creds, t.fs.root, resolve)
            start = self.start(t, dirfd, path)
        if flags & O_PATH:
            p = w.walk(start, path, not flags & O_NOFOLLOW)
            if flags & O_DIRECTORY and not p.dentry.inode.is_dir:
                raise Errno(errno.ENOTDIR)
            return PathFile(p, flags & (O_PATH | O_DIRECTORY | O_NOFOLLOW))
        created = False
        if flags & O_CREAT:
            p, created = self._open_create(t, w, start, path, flags, mode)
        else:
            p = w.walk(start, path, not flags & O_NOFOLLOW)
        return self.open_path(t, p, flags, created)

    def _open_create(self: "VFS", t: "Task", w: Walker, start: Path, path: bytes,
                     flags: int, mode: int) -> tuple[Path, bool]:
        while True:
            parent, name, slash = w.walk_parent(start, path)
            if slash or name in (b"", b".", b".."):
                raise Errno(errno.EISDIR)
            try:
                p = w.step(parent, name)
            except Errno as e:
                if e.errno != errno.ENOENT:
                    raise
                if parent.dentry.dead:
                    raise
                if parent.mount.readonly:
                    raise Errno(errno.EROFS)
                check(t.creds, parent.dentry.inode, MAY_WRITE | MAY_EXEC)
                uid, gid, m = new_owner(t, parent.dentry.inode, mode & ~t.fs.umask & 0o7777)
                inode = parent.dentry.inode.create(name, S_IFREG | m, uid, gid)
                return add_child(parent, name, inode), True
            if flags & O_EXCL:
                raise Errno(errno.EEXIST)
            inode = p.dentry.inode
            if inode.is_symlink:
                if flags & O_NOFOLLOW:
                    raise Errno(errno.ELOOP)
                # create the target of a dangling link, as Linux does
                w.links += 1
                if w.links > MAXSYMLINKS:
                    raise Errno(errno.ELOOP)
                path = inode.readlink()
                if not path:
                    raise Errno(errno.ENOENT)
                start = w.root if path[:1] == b"/" else parent
                continue
            if inode.is_dir:
                raise Errno(errno.EISDIR)
            return p, False

    def open_path(self: "VFS", t: "Task", p: Path, flags: int, created: bool = False) -> File:
        """Open an already resolved path (also the /proc/<pid>/fd/N magic links)."""
        inode = p.dentry.inode
        if flags & O_DIRECTORY and not inode.is_dir:
            raise Errno(errno.ENOTDIR)
        if inode.is_symlink:
            raise Errno(errno.ELOOP)
        acc = flags & O_ACCMODE
        mask = 0
        if acc in (O_RDONLY, O_RDWR) or acc == O_ACCMODE:
            mask |= MAY_READ
        if acc in (O_WRONLY, O_RDWR) or acc == O_ACCMODE or flags & O_TRUNC:
            mask |= MAY_WRITE
        if inode.is_dir and (acc != O_RDONLY or flags & O_TRUNC):
            raise Errno(errno.EISDIR)
        if not created:
            check(t.creds, inode, mask)
        ftype = inode.ftype
        if mask & MAY_WRITE and p.mount.readonly and ftype == S_IFREG:
            raise Errno(errno.EROFS)
        if ftype == S_IFIFO:
            return open_fifo(t, inode, flags & ~(O_CREAT | O_EXCL | O_TRUNC), p)
        if ftype in (S_IFCHR, S_IFBLK):
            if p.mount.flags & MS_NODEV:
                raise Errno(errno.EACCES)
            opener = self.devices.opener(ftype == S_IFBLK, inode.rdev)
            if opener is None:
                raise Errno(errno.ENXIO)
            f = opener(t, flags & ~(O_CREAT | O_EXCL))
            if f.vpath is None:
                f.vpath = p
            return f
        if ftype == S_IFSOCK:
            raise Errno(errno.ENXIO)
        if inode.is_dir:
            return DirFile(p, flags)
        f = inode.open_file(t, flags, p) or InodeFile(p, flags)
        if flags & O_TRUNC and not created and mask & MAY_WRITE:
            inode.truncate(0)
        return f

    def open_exec(self: "VFS", t: "Task", path: "bytes | str", dirfd: int = -100,
                  flags: int = 0) -> tuple[File, Inode, bytes]:
        """execve/execveat's open: (File for reading the image, its inode, the resolved
        path). EACCES for directories, non-regular files, noexec mounts and missing x
        bits; flags AT_EMPTY_PATH (0x1000) and AT_SYMLINK_NOFOLLOW (0x100, then ELOOP)."""
        if isinstance(path, str):
            path = path.encode()
        if flags & ~0x1100:
            raise Errno(errno.EINVAL)
        p = self.lookup(t, dirfd, path, follow=not flags & 0x100,
                        empty_path=bool(flags & 0x1000))
        if p.dentry.inode.is_symlink:
            raise Errno(errno.ELOOP)
        inode = p.dentry.inode
        if not inode.is_reg or p.mount.flags & MS_NOEXEC:
            raise Errno(errno.EACCES)
        check(t.creds, inode, MAY_EXEC)
        f = inode.open_file(t, O_RDONLY, p) or InodeFile(p, O_RDONLY)
        return f, inode, self.d_path(p, t.fs.root)

    def read_all(self: "VFS", t: "Task", f: File) -> bytes:
        """The whole content of a file opened by open_exec (or any seekable file)."""
        chunks: list[bytes] = []
        off = 0
        while True:
            data = f.pread(t, READ_CHUNK, off)
            if not data:
                break
            chunks.append(data)
            off += len(data)
        return b"".join(chunks)
