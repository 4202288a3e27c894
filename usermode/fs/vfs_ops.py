"""The namespace operations behind mkdir/unlink/rename/link/symlink/chmod/... : the generic
checks Linux's fs/namei.c and fs/attr.c make, then one call into the filesystem."""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from usermode.fs.inode import Dentry, Path, now_ns
from usermode.fs.perm import MAY_EXEC, MAY_WRITE, check, check_owner, check_sticky, is_privileged
from usermode.fs.stat import (S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK,
                              S_ISGID, S_ISUID)
from usermode.fs.vfs_open import add_child, new_owner
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.fs.vfs import VFS
    from usermode.kernel.task import Task

RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
NOCHANGE = 0xFFFFFFFF        # chown's (uid_t)-1


def _raw_child(parent: Path, name: bytes) -> Dentry | None:
    """The entry itself (not what is mounted on it); None if absent."""
    try:
        return parent.dentry.child(name)
    except Errno as e:
        if e.errno == errno.ENOENT:
            return None
        raise


def _writable_dir(t: "Task", parent: Path) -> None:
    if parent.dentry.dead:
        raise Errno(errno.ENOENT)
    if parent.mount.readonly:
        raise Errno(errno.EROFS)
    check(t.creds, parent.dentry.inode, MAY_WRITE | MAY_EXEC)


class OpsMixin:
    """Part of VFS."""

    def is_mountpoint(self: "VFS", mount, dentry: Dentry) -> bool:
        return (mount, dentry.inode) in self.mounted or dentry is mount.root

    def _new_entry(self: "VFS", t: "Task", dirfd: int, path: bytes) -> tuple[Path, bytes, bool]:
        """Parent and name for creating path: EEXIST if it exists (or is . or ..)."""
        parent, name, slash = self.lookup_parent(t, dirfd, path)
        if name in (b"", b".", b".."):
            raise Errno(errno.EEXIST)
        check(t.creds, parent.dentry.inode, MAY_EXEC)
        if _raw_child(parent, name) is not None:
            raise Errno(errno.EEXIST)
        _writable_dir(t, parent)
        return parent, name, slash

    def mkdir(self: "VFS", t: "Task", dirfd: int, path: bytes, mode: int) -> None:
        parent, name, _ = self._new_entry(t, dirfd, path)
        uid, gid, m = new_owner(t, parent.dentry.inode, S_IFDIR | (mode & 0o1777 & ~t.fs.umask))
        add_child(parent, name, parent.dentry.inode.mkdir(name, m & 0o7777, uid, gid))

    def mknod(self: "VFS", t: "Task", dirfd: int, path: bytes, mode: int, rdev: int) -> None:
        ftype = mode & S_IFMT or S_IFREG
        if ftype in (S_IFCHR, S_IFBLK):
            if not is_privileged(t.creds):
                raise Errno(errno.EPERM)
        elif ftype == S_IFDIR:
            raise Errno(errno.EPERM)
        elif ftype not in (S_IFREG, S_IFIFO, S_IFSOCK):
            raise Errno(errno.EINVAL)
        parent, name, slash = self._new_entry(t, dirfd, path)
        if slash:
            raise Errno(errno.ENOENT)
        uid, gid, m = new_owner(t, parent.dentry.inode, mode & 0o7777 & ~t.fs.umask)
        dir = parent.dentry.inode
        if ftype == S_IFREG:
            inode = dir.create(name, S_IFREG | m, uid, gid)
        else:
            inode = dir.mknod(name, ftype | m, rdev if ftype in (S_IFCHR, S_IFBLK) else 0,
                              uid, gid)
        add_child(parent, name, inode)

    def symlink(self: "VFS", t: "Task", target: bytes, dirfd: int, path: bytes) -> None:
        if not target:
            raise Errno(errno.ENOENT)
        parent, name, slash = self._new_entry(t, dirfd, path)
        if slash:
            raise Errno(errno.ENOENT)
        c = t.creds
        add_child(parent, name, parent.dentry.inode.symlink(name, target, c.fsuid, c.fsgid))

    def link(self: "VFS", t: "Task", olddirfd: int, oldpath: bytes, newdirfd: int,
             newpath: bytes, follow: bool, empty_path: bool = False) -> None:
        old = self.lookup(t, olddirfd, oldpath, follow, empty_path)
        if old.dentry.inode.is_dir:
            raise Errno(errno.EPERM)
        parent, name, slash = self._new_entry(t, newdirfd, newpath)
        if slash:
            raise Errno(errno.ENOENT)
        if parent.mount is not old.mount:
            raise Errno(errno.EXDEV)
        parent.dentry.inode.link(name, old.dentry.inode)
        add_child(parent, name, old.dentry.inode)

    def _victim(self: "VFS", t: "Task", dirfd: int, path: bytes) -> tuple[Path, bytes, Dentry, bool]:
        parent, name, slash = self.lookup_parent(t, dirfd, path)
        check(t.creds, parent.dentry.inode, MAY_EXEC)
        if name in (b"", b".", b".."):
            return parent, name, parent.dentry, slash
        d = _raw_child(parent, name)
        if d is None:
            raise Errno(errno.ENOENT)
        return parent, name, d, slash

    def unlink(self: "VFS", t: "Task", dirfd: int, path: bytes) -> None:
        parent, name, d, slash = self._victim(t, dirfd, path)
        if name in (b"", b".", b"..") or d.inode.is_dir:
            raise Errno(errno.EISDIR)
        if slash:
            raise Errno(errno.ENOTDIR)
        _writable_dir(t, parent)
        check_sticky(t.creds, parent.dentry.inode, d.inode)
        if self.is_mountpoint(parent.mount, d):
            raise Errno(errno.EBUSY)
        parent.dentry.inode.unlink(name)
        parent.dentry.forget(name)

    def rmdir(self: "VFS", t: "Task", dirfd: int, path: bytes) -> None:
        parent, name, d, _ = self._victim(t, dirfd, path)
        if name == b".":
            raise Errno(errno.EINVAL)
        if name == b"..":
            raise Errno(errno.ENOTEMPTY)
        if name == b"":
            raise Errno(errno.EBUSY)
        if not d.inode.is_dir:
            raise Errno(errno.ENOTDIR)
        _writable_dir(t, parent)
        check_sticky(t.creds, parent.dentry.inode, d.inode)
        if self.is_mountpoint(parent.mount, d) or d is t.fs.root.dentry:
            raise Errno(errno.EBUSY)
        parent.dentry.inode.rmdir(name)
        parent.dentry.forget(name)

    def rename(self: "VFS", t: "Task", olddirfd: int, oldpath: bytes, newdirfd: int,
               newpath: bytes, flags: int = 0) -> None:
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) or \
                (flags & RENAME_EXCHANGE and flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)):
            raise Errno(errno.EINVAL)
        if flags & RENAME_WHITEOUT:
            raise Errno(errno.EINVAL)
        op, oname, oslash = self.lookup_parent(t, olddirfd, oldpath)
        np, nname, nslash = self.lookup_parent(t, newdirfd, newpath)
        if oname in (b"", b".", b"..") or nname in (b"", b".", b".."):
            raise Errno(errno.EBUSY)
        if op.mount is not np.mount:
            raise Errno(errno.EXDEV)
        check(t.creds, op.dentry.inode, MAY_EXEC)
        check(t.creds, np.dentry.inode, MAY_EXEC)
        src = _raw_child(op, oname)
        if src is None:
            raise Errno(errno.ENOENT)
        dst = _raw_child(np, nname)
        exchange = bool(flags & RENAME_EXCHANGE)
        sdir = src.inode.is_dir
        if (oslash or nslash) and not sdir and not (exchange and dst and dst.inode.is_dir):
            raise Errno(errno.ENOTDIR)
        if dst is not None:
            if flags & RENAME_NOREPLACE:
                raise Errno(errno.EEXIST)
            if dst.inode is src.inode:
                return
            if not exchange:
                if sdir and not dst.inode.is_dir:
                    raise Errno(errno.ENOTDIR)
                if not sdir and dst.inode.is_dir:
                    raise Errno(errno.EISDIR)
        elif exchange:
            raise Errno(errno.ENOENT)
        # a directory may not move into its own subtree
        for moved, into in ((src, np.dentry), (dst, op.dentry)):
            if moved is None or not moved.inode.is_dir or not (moved is src or exchange):
                continue
            a: Dentry | None = into
            while a is not None:
                if a is moved:
                    raise Errno(errno.EINVAL if moved is src else errno.ENOTEMPTY)
                a = a.parent
        _writable_dir(t, op)
        _writable_dir(t, np)
        check_sticky(t.creds, op.dentry.inode, src.inode)
        if dst is not None:
            check_sticky(t.creds, np.dentry.inode, dst.inode)
        if op.dentry is not np.dentry:
            if sdir:
                check(t.creds, src.inode, MAY_WRITE)
            if exchange and dst is not None and dst.inode.is_dir:
                check(t.creds, dst.inode, MAY_WRITE)
        for d, p in ((src, op), (dst, np)):
            if d is not None and self.is_mountpoint(p.mount, d):
                raise Errno(errno.EBUSY)
        op.dentry.inode.rename(oname, np.dentry.inode, nname, exchange)
        # keep the dentry tree in step (cwd, open dirs and getcwd see the new names)
        op.dentry.children.pop(oname, None)
        np.dentry.children.pop(nname, None)
        if dst is not None and not exchange:
            dst.dead = True
        src.name, src.parent = nname, np.dentry
        np.dentry.children[nname] = src
        if exchange and dst is not None:
            dst.name, dst.parent = oname, op.dentry
            op.dentry.children[oname] = dst

    def readlink(self: "VFS", t: "Task", dirfd: int, path: bytes) -> bytes:
        p = self.lookup(t, dirfd, path, follow=False, empty_path=True)
        if not p.dentry.inode.is_symlink:
            raise Errno(errno.EINVAL)
        p.dentry.inode.atime_ns = now_ns()
        return p.dentry.inode.readlink()

    # -- attributes (on resolved paths)
    def _attr_ok(self: "VFS", p: Path) -> None:
        if p.mount.readonly:
            raise Errno(errno.EROFS)

    def chmod(self: "VFS", t: "Task", p: Path, mode: int) -> None:
        inode = p.dentry.inode
        self._attr_ok(p)
        check_owner(t.creds, inode)
        mode &= 0o7777
        if not is_privileged(t.creds) and not t.creds.in_group(inode.gid):
            mode &= ~S_ISGID
        inode.setattr(mode=mode)

    def chown(self: "VFS", t: "Task", p: Path, uid: int, gid: int) -> None:
        inode = p.dentry.inode
        self._attr_ok(p)
        c = t.creds
        uid = None if uid == NOCHANGE else uid
        gid = None if gid == NOCHANGE else gid
        inode.refresh()
        if not is_privileged(c):
            if uid is not None and uid != inode.uid:
                raise Errno(errno.EPERM)
            if gid is not None and gid != inode.gid and \
                    (c.fsuid != inode.uid or not c.in_group(gid)):
                raise Errno(errno.EPERM)
            if (uid is not None or gid is not None) and c.fsuid != inode.uid:
                raise Errno(errno.EPERM)
        mode = None
        if not inode.is_dir and (uid is not None or gid is not None):
            m = inode.mode & 0o7777
            # Linux drops setuid, and setgid when group-executable, on ownership change
            m &= ~S_ISUID
            if m & 0o010:
                m &= ~S_ISGID
            if m != inode.mode & 0o7777:
                mode = m
        inode.setattr(mode=mode, uid=uid, gid=gid)

    def utimes(self: "VFS", t: "Task", p: Path, atime_ns: int | None, mtime_ns: int | None,
               explicit: bool) -> None:
        """explicit: times given by the caller (owner only) rather than "now"
        (owner or write permission)."""
        inode = p.dentry.inode
        self._attr_ok(p)
        if explicit:
            check_owner(t.creds, inode)
        elif t.creds.fsuid != inode.uid and not is_privileged(t.creds):
            check(t.creds, inode, MAY_WRITE)
        inode.setattr(atime_ns=atime_ns, mtime_ns=mtime_ns)

    def truncate(self: "VFS", t: "Task", p: Path, length: int) -> None:
        inode = p.dentry.inode
        if length < 0:
            raise Errno(errno.EINVAL)
        if inode.is_dir:
            raise Errno(errno.EISDIR)
        if not inode.is_reg:
            raise Errno(errno.EINVAL)
        check(t.creds, inode, MAY_WRITE)
        self._attr_ok(p)
        inode.truncate(length)

    def chdir(self: "VFS", t: "Task", p: Path) -> None:
        if not p.dentry.inode.is_dir:
            raise Errno(errno.ENOTDIR)
        check(t.creds, p.dentry.inode, MAY_EXEC)
        t.fs.cwd = p

    def chroot(self: "VFS", t: "Task", p: Path) -> None:
        if not p.dentry.inode.is_dir:
            raise Errno(errno.ENOTDIR)
        check(t.creds, p.dentry.inode, MAY_EXEC)
        if not is_privileged(t.creds):
            raise Errno(errno.EPERM)
        t.fs.root = p

    def getcwd(self: "VFS", t: "Task") -> bytes:
        cwd = t.fs.cwd
        d: Dentry | None = cwd.dentry
        while d is not None:
            if d.dead:
                raise Errno(errno.ENOENT)
            d = d.parent
        return self.d_path(cwd, t.fs.root)
