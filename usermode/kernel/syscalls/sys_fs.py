"""Path and metadata system calls: open, stat, access, mkdir/unlink/rename/link/symlink,
chmod/chown/utimes, truncate, chdir/chroot/getcwd, umask, mknod, statfs, mount."""
from __future__ import annotations

import errno
import struct

from usermode.fs.file import (O_CLOEXEC, O_CREAT, O_EXCL, O_LARGEFILE, O_NOCTTY, O_PATH,
                              O_TMPFILE, O_TRUNC, O_WRONLY, File)
from usermode.fs.inode import MNT_DETACH, MNT_EXPIRE, MNT_FORCE, UMOUNT_NOFOLLOW, Path, now_ns
from usermode.fs.namei import RESOLVE_BENEATH, RESOLVE_CACHED, RESOLVE_IN_ROOT
from usermode.fs.perm import MAY_WRITE, check, is_privileged
from usermode.fs.stat import Stat, decode_user_dev
from usermode.fs.vfs import (AT_EACCESS, AT_EMPTY_PATH, AT_FDCWD, AT_NO_AUTOMOUNT,
                             AT_REMOVEDIR, AT_SYMLINK_FOLLOW, AT_SYMLINK_NOFOLLOW, VFS)
from usermode.kernel.errors import Errno, s32, s64
from usermode.kernel.task import Task

PATH_MAX = 4096
AT_STATX_SYNC_TYPE = 0x6000
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
VALID_OPEN = 0o37777777 & ~0o20000000 | O_TMPFILE   # every O_* Linux knows
MS_MGC_MSK = 0xFFFF0000
MS_PROPAGATION = (1 << 17) | (1 << 18) | (1 << 19) | (1 << 20)
MS_MOVE = 8192
_STATFS = struct.Struct("<qqQQQQQiiqqq32x")
ANON_MAGICS = {"PipeFile": 0x50495045}
ANON_INODE_MAGIC = 0x09041934


def _vfs(t: Task) -> VFS:
    return t.fs.vfs


def _path(t: Task, addr: int) -> bytes:
    if addr == 0:
        raise Errno(errno.EFAULT)
    return t.mm.read_cstr(addr, PATH_MAX - 1)


def _stat_of(f: File) -> Stat:
    """fstat: a driver's own stat(), else the inode it was opened through."""
    if f.vpath is not None and type(f).stat is File.stat:
        st = f.vpath.dentry.inode.getattr()
        st.mnt_id = f.vpath.mount.id
        return st
    return f.stat()


def _lookup_at(t: Task, dirfd: int, pathp: int, flags: int, allow_null: bool = False,
               want_file: bool = False) -> Path | File:
    """Resolve for the *at calls: a Path, or the File itself for AT_EMPTY_PATH on an fd
    that has no path (a pipe, a socket), or on any fd when want_file (stat: an unlinked
    file has no name left to look up, its open file still knows its size)."""
    dfd = s32(dirfd)
    path = b"" if (pathp == 0 and allow_null and flags & AT_EMPTY_PATH) else _path(t, pathp)
    if not path and flags & AT_EMPTY_PATH and dfd != AT_FDCWD:
        f = t.files.get(dfd)
        if f.vpath is None or want_file:
            return f
    return _vfs(t).lookup(t, dfd, path, not flags & AT_SYMLINK_NOFOLLOW,
                          bool(flags & AT_EMPTY_PATH))


# -- open
def _open(t: Task, dirfd: int, pathp: int, flags: int, mode: int, resolve: int = 0) -> int:
    path = _path(t, pathp)
    t.files.lowest_free()                 # EMFILE before anything is created
    f = _vfs(t).open(t, dirfd, path, flags, mode & 0o7777, resolve)
    f.flags = (flags | (0 if flags & O_PATH else O_LARGEFILE)) & \
        ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)
    try:
        return t.files.install(f, bool(flags & O_CLOEXEC))
    except Errno:
        f.release()
        raise


def sys_open(t: Task, path: int, flags: int, mode: int) -> int:
    """open(2)"""
    return _open(t, AT_FDCWD, path, s32(flags), mode)


def sys_openat(t: Task, dirfd: int, path: int, flags: int, mode: int) -> int:
    """openat(2)"""
    return _open(t, s32(dirfd), path, s32(flags), mode)


def sys_creat(t: Task, path: int, mode: int) -> int:
    """creat(2)"""
    return _open(t, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode)


def sys_openat2(t: Task, dirfd: int, path: int, how: int, size: int) -> int:
    """openat2(2)"""
    if size < 24:
        raise Errno(errno.EINVAL)
    if size > 4096:
        raise Errno(errno.E2BIG)
    raw = t.mm.copy_in(how, size)
    if any(raw[24:]):
        raise Errno(errno.E2BIG)
    flags, mode, resolve = struct.unpack_from("<QQQ", raw)
    if flags & ~(VALID_OPEN | O_CLOEXEC) or flags >> 32 or resolve & ~0x3F:
        raise Errno(errno.EINVAL)
    if mode & ~0o7777 or (mode and not flags & (O_CREAT | O_TMPFILE)):
        raise Errno(errno.EINVAL)
    if resolve & RESOLVE_BENEATH and resolve & RESOLVE_IN_ROOT:
        raise Errno(errno.EINVAL)
    return _open(t, s32(dirfd), path, flags, mode, resolve & ~RESOLVE_CACHED)


# -- stat
def _put_stat(t: Task, buf: int, st: Stat) -> int:
    t.mm.copy_out(buf, st.pack())
    return 0


def _stat_target(t: Task, target: Path | File) -> Stat:
    if isinstance(target, File):
        return _stat_of(target)
    st = target.dentry.inode.getattr()
    st.mnt_id = target.mount.id
    return st


def sys_stat(t: Task, path: int, buf: int) -> int:
    """stat(2)"""
    return _put_stat(t, buf, _stat_target(t, _lookup_at(t, AT_FDCWD, path, 0)))


def sys_lstat(t: Task, path: int, buf: int) -> int:
    """lstat(2)"""
    return _put_stat(t, buf, _stat_target(t, _lookup_at(t, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW)))


def sys_fstat(t: Task, fd: int, buf: int) -> int:
    """fstat(2)"""
    return _put_stat(t, buf, _stat_of(t.files.get(s32(fd))))


def sys_newfstatat(t: Task, dirfd: int, path: int, buf: int, flags: int) -> int:
    """newfstatat(2)"""
    fl = s32(flags)
    if fl & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT):
        raise Errno(errno.EINVAL)
    return _put_stat(t, buf, _stat_target(t, _lookup_at(t, dirfd, path, fl, want_file=True)))


def sys_statx(t: Task, dirfd: int, path: int, flags: int, mask: int, buf: int) -> int:
    """statx(2)"""
    fl = s32(flags)
    if fl & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE) or \
            fl & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE or mask & 0x80000000:
        raise Errno(errno.EINVAL)
    st = _stat_target(t, _lookup_at(t, dirfd, path, fl, allow_null=True, want_file=True))
    t.mm.copy_out(buf, st.pack_statx(mask & 0xFFFFFFFF))
    return 0


# -- access
def sys_faccessat2(t: Task, dirfd: int, path: int, mode: int, flags: int) -> int:
    """faccessat2(2)"""
    m, fl = s32(mode), s32(flags)
    if m & ~7 or fl & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    c = t.creds
    if not fl & AT_EACCESS:
        c = c.copy()
        c.fsuid, c.fsgid = c.uid, c.gid
    p = _path(t, path)
    target = _vfs(t).lookup(t, s32(dirfd), p, not fl & AT_SYMLINK_NOFOLLOW,
                            bool(fl & AT_EMPTY_PATH), creds=c)
    if m:
        inode = target.dentry.inode
        if m & MAY_WRITE and target.mount.readonly and \
                (inode.is_reg or inode.is_dir or inode.is_symlink):
            raise Errno(errno.EROFS)
        check(c, inode, m)
    return 0


def sys_faccessat(t: Task, dirfd: int, path: int, mode: int) -> int:
    """faccessat(2)"""
    return sys_faccessat2(t, dirfd, path, mode, 0)


def sys_access(t: Task, path: int, mode: int) -> int:
    """access(2)"""
    return sys_faccessat2(t, AT_FDCWD, path, mode, 0)


# -- namespace changes
def sys_mkdirat(t: Task, dirfd: int, path: int, mode: int) -> int:
    """mkdirat(2)"""
    _vfs(t).mkdir(t, s32(dirfd), _path(t, path), mode & 0o7777)
    return 0


def sys_mkdir(t: Task, path: int, mode: int) -> int:
    """mkdir(2)"""
    return sys_mkdirat(t, AT_FDCWD, path, mode)


def sys_mknodat(t: Task, dirfd: int, path: int, mode: int, dev: int) -> int:
    """mknodat(2)"""
    _vfs(t).mknod(t, s32(dirfd), _path(t, path), mode & 0xFFFFFFFF, decode_user_dev(dev))
    return 0


def sys_mknod(t: Task, path: int, mode: int, dev: int) -> int:
    """mknod(2)"""
    return sys_mknodat(t, AT_FDCWD, path, mode, dev)


def sys_unlinkat(t: Task, dirfd: int, path: int, flags: int) -> int:
    """unlinkat(2)"""
    fl = s32(flags)
    if fl & ~AT_REMOVEDIR:
        raise Errno(errno.EINVAL)
    p = _path(t, path)
    if fl & AT_REMOVEDIR:
        _vfs(t).rmdir(t, s32(dirfd), p)
    else:
        _vfs(t).unlink(t, s32(dirfd), p)
    return 0


def sys_unlink(t: Task, path: int) -> int:
    """unlink(2)"""
    return sys_unlinkat(t, AT_FDCWD, path, 0)


def sys_rmdir(t: Task, path: int) -> int:
    """rmdir(2)"""
    return sys_unlinkat(t, AT_FDCWD, path, AT_REMOVEDIR)


def sys_renameat2(t: Task, olddirfd: int, oldpath: int, newdirfd: int, newpath: int,
                  flags: int) -> int:
    """renameat2(2)"""
    old, new = _path(t, oldpath), _path(t, newpath)
    _vfs(t).rename(t, s32(olddirfd), old, s32(newdirfd), new, flags & 0xFFFFFFFF)
    return 0


def sys_renameat(t: Task, olddirfd: int, oldpath: int, newdirfd: int, newpath: int) -> int:
    """renameat(2)"""
    return sys_renameat2(t, olddirfd, oldpath, newdirfd, newpath, 0)


def sys_rename(t: Task, oldpath: int, newpath: int) -> int:
    """rename(2)"""
    return sys_renameat2(t, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)


def sys_linkat(t: Task, olddirfd: int, oldpath: int, newdirfd: int, newpath: int,
               flags: int) -> int:
    """linkat(2)"""
    fl = s32(flags)
    if fl & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    if fl & AT_EMPTY_PATH and not is_privileged(t.creds):
        raise Errno(errno.ENOENT)
    old, new = _path(t, oldpath), _path(t, newpath)
    _vfs(t).link(t, s32(olddirfd), old, s32(newdirfd), new, bool(fl & AT_SYMLINK_FOLLOW),
                 bool(fl & AT_EMPTY_PATH))
    return 0


def sys_link(t: Task, oldpath: int, newpath: int) -> int:
    """link(2)"""
    return sys_linkat(t, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)


def sys_symlinkat(t: Task, target: int, newdirfd: int, linkpath: int) -> int:
    """symlinkat(2)"""
    tgt, link = _path(t, target), _path(t, linkpath)
    _vfs(t).symlink(t, tgt, s32(newdirfd), link)
    return 0


def sys_symlink(t: Task, target: int, linkpath: int) -> int:
    """symlink(2)"""
    return sys_symlinkat(t, target, AT_FDCWD, linkpath)


def sys_readlinkat(t: Task, dirfd: int, path: int, buf: int, bufsiz: int) -> int:
    """readlinkat(2)"""
    n = s32(bufsiz)
    if n <= 0:
        raise Errno(errno.EINVAL)
    data = _vfs(t).readlink(t, s32(dirfd), _path(t, path))[:n]
    t.mm.copy_out(buf, data)
    return len(data)


def sys_readlink(t: Task, path: int, buf: int, bufsiz: int) -> int:
    """readlink(2)"""
    return sys_readlinkat(t, AT_FDCWD, path, buf, bufsiz)


# -- attributes
def _fd_path(t: Task, fd: int) -> Path | None:
    f = t.files.get(s32(fd))
    if f.flags & O_PATH:
        raise Errno(errno.EBADF)
    return f.vpath


def sys_fchmodat2(t: Task, dirfd: int, path: int, mode: int, flags: int) -> int:
    """fchmodat2(2)"""
    fl = s32(flags)
    if fl & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    target = _lookup_at(t, dirfd, path, fl)
    if isinstance(target, File):
        return 0
    if target.dentry.inode.is_symlink:
        raise Errno(errno.EOPNOTSUPP)
    _vfs(t).chmod(t, target, mode & 0o7777)
    return 0


def sys_fchmodat(t: Task, dirfd: int, path: int, mode: int) -> int:
    """fchmodat(2)"""
    return sys_fchmodat2(t, dirfd, path, mode, 0)


def sys_chmod(t: Task, path: int, mode: int) -> int:
    """chmod(2)"""
    return sys_fchmodat2(t, AT_FDCWD, path, mode, 0)


def sys_fchmod(t: Task, fd: int, mode: int) -> int:
    """fchmod(2)"""
    p = _fd_path(t, fd)
    if p is not None:
        _vfs(t).chmod(t, p, mode & 0o7777)
    return 0


def sys_fchownat(t: Task, dirfd: int, path: int, uid: int, gid: int, flags: int) -> int:
    """fchownat(2)"""
    fl = s32(flags)
    if fl & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    target = _lookup_at(t, dirfd, path, fl)
    if not isinstance(target, File):
        _vfs(t).chown(t, target, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF)
    return 0


def sys_chown(t: Task, path: int, uid: int, gid: int) -> int:
    """chown(2)"""
    return sys_fchownat(t, AT_FDCWD, path, uid, gid, 0)


def sys_lchown(t: Task, path: int, uid: int, gid: int) -> int:
    """lchown(2)"""
    return sys_fchownat(t, AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW)


def sys_fchown(t: Task, fd: int, uid: int, gid: int) -> int:
    """fchown(2)"""
    p = _fd_path(t, fd)
    if p is not None:
        _vfs(t).chown(t, p, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF)
    return 0


def _set_times(t: Task, target: Path | File, times: list[tuple[int, int]] | None) -> int:
    """times: [(sec, nsec)] * 2 with UTIME_NOW/UTIME_OMIT, or None for now/now."""
    if isinstance(target, File):
        return 0
    now = now_ns()
    if times is None:
        _vfs(t).utimes(t, target, now, now, False)
        return 0
    vals: list[int | None] = []
    explicit = False
    for sec, nsec in times:
        if nsec == UTIME_OMIT:
            vals.append(None)
        elif nsec == UTIME_NOW:
            vals.append(now)
        elif 0 <= nsec < 10**9:
            vals.append(sec * 10**9 + nsec)
            explicit = True
        else:
            raise Errno(errno.EINVAL)
    if vals[0] is None and vals[1] is None:
        return 0
    _vfs(t).utimes(t, target, vals[0], vals[1], explicit)
    return 0


def sys_utimensat(t: Task, dirfd: int, path: int, times: int, flags: int) -> int:
    """utimensat(2)"""
    fl = s32(flags)
    if fl & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    ts = None
    if times:
        a = struct.unpack("<qqqq", t.mm.copy_in(times, 32))
        ts = [(a[0], a[1]), (a[2], a[3])]
        for sec, nsec in ts:
            if nsec not in (UTIME_NOW, UTIME_OMIT) and not 0 <= nsec < 10**9:
                raise Errno(errno.EINVAL)
    if path == 0:                  # the futimens form: the file open at dirfd
        if fl & AT_SYMLINK_NOFOLLOW:
            raise Errno(errno.EINVAL)
        f = t.files.get(s32(dirfd))
        return _set_times(t, f.vpath if f.vpath is not None else f, ts)
    return _set_times(t, _lookup_at(t, dirfd, path, fl), ts)


def _timeval_pair(t: Task, addr: int) -> list[tuple[int, int]] | None:
    if not addr:
        return None
    a = struct.unpack("<qqqq", t.mm.copy_in(addr, 32))
    out = []
    for sec, usec in ((a[0], a[1]), (a[2], a[3])):
        if not 0 <= usec < 10**6:
            raise Errno(errno.EINVAL)
        out.append((sec, usec * 1000))
    return out


def sys_futimesat(t: Task, dirfd: int, path: int, times: int) -> int:
    """futimesat(2)"""
    ts = _timeval_pair(t, times)
    return _set_times(t, _lookup_at(t, dirfd, path, 0), ts)


def sys_utimes(t: Task, path: int, times: int) -> int:
    """utimes(2)"""
    return sys_futimesat(t, AT_FDCWD, path, times)


def sys_utime(t: Task, path: int, times: int) -> int:
    """utime(2)"""
    ts = None
    if times:
        a, m = struct.unpack("<qq", t.mm.copy_in(times, 16))
        ts = [(a, 0), (m, 0)]
    return _set_times(t, _lookup_at(t, AT_FDCWD, path, 0), ts)


def sys_truncate(t: Task, path: int, length: int) -> int:
    """truncate(2)"""
    p = _lookup_at(t, AT_FDCWD, path, 0)
    assert isinstance(p, Path)
    _vfs(t).truncate(t, p, s64(length))
    return 0


# -- cwd, root, umask
def sys_chdir(t: Task, path: int) -> int:
    """chdir(2)"""
    p = _lookup_at(t, AT_FDCWD, path, 0)
    assert isinstance(p, Path)
    _vfs(t).chdir(t, p)
    return 0


def sys_fchdir(t: Task, fd: int) -> int:
    """fchdir(2)"""
    f = t.files.get(s32(fd))
    if f.vpath is None:
        raise Errno(errno.ENOTDIR)
    _vfs(t).chdir(t, f.vpath)
    return 0


def sys_getcwd(t: Task, buf: int, size: int) -> int:
    """getcwd(2)"""
    cwd = _vfs(t).getcwd(t) + b"\0"
    if size < len(cwd):
        raise Errno(errno.ERANGE)
    t.mm.copy_out(buf, cwd)
    return len(cwd)


def sys_chroot(t: Task, path: int) -> int:
    """chroot(2)"""
    p = _lookup_at(t, AT_FDCWD, path, 0)
    assert isinstance(p, Path)
    _vfs(t).chroot(t, p)
    return 0


def sys_umask(t: Task, mask: int) -> int:
    """umask(2)"""
    old = t.fs.umask
    t.fs.umask = mask & 0o777
    return old


# -- filesystems
def _put_statfs(t: Task, buf: int, st: dict[str, int]) -> int:
    fsid = st.get("fsid", 0)
    t.mm.copy_out(buf, _STATFS.pack(st["type"], st["bsize"], st["blocks"], st["bfree"],
                                    st["bavail"], st["files"], st["ffree"],
                                    fsid & 0x7FFFFFFF, (fsid >> 32) & 0x7FFFFFFF,
                                    st["namelen"], st["frsize"], st["flags"]))
    return 0


def sys_statfs(t: Task, path: int, buf: int) -> int:
    """statfs(2)"""
    p = _lookup_at(t, AT_FDCWD, path, 0)
    assert isinstance(p, Path)
    return _put_statfs(t, buf, _vfs(t).statfs(p))


def sys_fstatfs(t: Task, fd: int, buf: int) -> int:
    """fstatfs(2)"""
    f = t.files.get(s32(fd))
    if f.vpath is not None:
        return _put_statfs(t, buf, _vfs(t).statfs(f.vpath))
    magic = ANON_MAGICS.get(type(f).__name__, ANON_INODE_MAGIC)
    return _put_statfs(t, buf, dict(type=magic, bsize=4096, blocks=0, bfree=0, bavail=0,
                                    files=0, ffree=0, namelen=255, frsize=4096, flags=0x20))


def sys_sync(t: Task) -> int:
    """sync(2)"""
    _vfs(t).sync_all()
    return 0


def sys_syncfs(t: Task, fd: int) -> int:
    """syncfs(2)"""
    f = t.files.get(s32(fd))
    sync = getattr(f.vpath.mount.sb, "sync", None) if f.vpath is not None else None
    if sync is not None:
        sync()
    return 0


def _opt_str(t: Task, addr: int, maxlen: int = 4095) -> bytes:
    return t.mm.read_cstr(addr, maxlen) if addr else b""


def sys_mount(t: Task, source: int, target: int, fstype: int, flags: int, data: int) -> int:
    """mount(2)"""
    if not is_privileged(t.creds) or t.creds.euid != 0:
        raise Errno(errno.EPERM)
    fl = flags & 0xFFFFFFFF
    if fl & MS_MGC_MSK == 0xC0ED0000:
        fl &= ~MS_MGC_MSK
    tgt = _lookup_at(t, AT_FDCWD, target, 0)
    assert isinstance(tgt, Path)
    if fl & MS_PROPAGATION and not fl & ~(MS_PROPAGATION | (1 << 14)):
        return 0                            # --make-private & co: one namespace, no peers
    if fl & MS_MOVE:
        raise Errno(errno.EINVAL)
    src = _opt_str(t, source)
    kind = _opt_str(t, fstype, 255).decode(errors="replace")
    opts = _opt_str(t, data)
    _vfs(t).do_mount(t, src, tgt, kind, fl, opts)
    return 0


def sys_umount2(t: Task, target: int, flags: int) -> int:
    """umount2(2)"""
    fl = s32(flags)
    if fl & ~(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW):
        raise Errno(errno.EINVAL)
    if not is_privileged(t.creds) or t.creds.euid != 0:
        raise Errno(errno.EPERM)
    p = _lookup_at(t, AT_FDCWD, target, AT_SYMLINK_NOFOLLOW if fl & UMOUNT_NOFOLLOW else 0)
    assert isinstance(p, Path)
    _vfs(t).umount(p, fl)
    return 0


SYSCALLS = [
    ("open", sys_open, "supported", ""),
    ("openat", sys_openat, "partial", "O_TMPFILE: EOPNOTSUPP"),
    ("openat2", sys_openat2, "partial", "RESOLVE_NO_MAGICLINKS ignored; RESOLVE_BENEATH "
     "approximated"),
    ("creat", sys_creat, "supported", ""),
    ("stat", sys_stat, "supported", ""),
    ("fstat", sys_fstat, "supported", ""),
    ("lstat", sys_lstat, "supported", ""),
    ("newfstatat", sys_newfstatat, "supported", ""),
    ("statx", sys_statx, "supported", "no stx_attributes"),
    ("access", sys_access, "supported", ""),
    ("faccessat", sys_faccessat, "supported", ""),
    ("faccessat2", sys_faccessat2, "supported", ""),
    ("mkdir", sys_mkdir, "supported", ""),
    ("mkdirat", sys_mkdirat, "supported", ""),
    ("rmdir", sys_rmdir, "supported", ""),
    ("unlink", sys_unlink, "supported", ""),
    ("unlinkat", sys_unlinkat, "supported", ""),
    ("rename", sys_rename, "supported", ""),
    ("renameat", sys_renameat, "supported", ""),
    ("renameat2", sys_renameat2, "partial", "RENAME_WHITEOUT: EINVAL"),
    ("link", sys_link, "supported", ""),
    ("linkat", sys_linkat, "supported", ""),
    ("symlink", sys_symlink, "supported", ""),
    ("symlinkat", sys_symlinkat, "supported", ""),
    ("readlink", sys_readlink, "supported", ""),
    ("readlinkat", sys_readlinkat, "supported", ""),
    ("chmod", sys_chmod, "supported", "hostfs never sets setuid/setgid on host files"),
    ("fchmod", sys_fchmod, "supported", ""),
    ("fchmodat", sys_fchmodat, "supported", ""),
    ("fchmodat2", sys_fchmodat2, "supported", ""),
    ("chown", sys_chown, "supported", ""),
    ("fchown", sys_fchown, "supported", ""),
    ("lchown", sys_lchown, "supported", ""),
    ("fchownat", sys_fchownat, "supported", ""),
    ("utimensat", sys_utimensat, "supported", ""),
    ("futimesat", sys_futimesat, "supported", ""),
    ("utime", sys_utime, "supported", ""),
    ("utimes", sys_utimes, "supported", ""),
    ("truncate", sys_truncate, "supported", ""),
    ("chdir", sys_chdir, "supported", ""),
    ("fchdir", sys_fchdir, "supported", ""),
    ("getcwd", sys_getcwd, "supported", ""),
    ("chroot", sys_chroot, "supported", ""),
    ("umask", sys_umask, "supported", ""),
    ("mknod", sys_mknod, "supported", "device nodes open through the device registry"),
    ("mknodat", sys_mknodat, "supported", ""),
    ("statfs", sys_statfs, "supported", ""),
    ("fstatfs", sys_fstatfs, "supported", ""),
    ("sync", sys_sync, "supported", "nothing is cached beyond the host"),
    ("syncfs", sys_syncfs, "supported", ""),
    ("mount", sys_mount, "partial", "by registered fstype; bind and remount; no MS_MOVE, "
     "propagation flags accepted and ignored"),
    ("umount2", sys_umount2, "supported", ""),
]
