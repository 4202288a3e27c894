"""Extended attributes and file-advice calls. No filesystem of ours stores xattrs yet, so
reads find none (ENODATA / empty lists, as on a filesystem without any set) and writes
are refused with EOPNOTSUPP, after the same path and fd checks Linux makes."""
from __future__ import annotations

import errno

from usermode.kernel.errors import Errno, s32, s64
from usermode.kernel.syscalls.sys_fs import _path, _vfs
from usermode.kernel.task import Task

XATTR_NAME_MAX, XATTR_SIZE_MAX = 255, 65536


def _name(t: Task, name: int) -> bytes:
    n = t.mm.read_cstr(name, XATTR_NAME_MAX + 1)
    if not n or len(n) > XATTR_NAME_MAX:
        raise Errno(errno.ERANGE)
    return n


def _at_path(t: Task, path: int, follow: bool) -> None:
    _vfs(t).lookup(t, -100, _path(t, path), follow)


def _get(t: Task, name: int) -> int:
    _name(t, name)
    raise Errno(errno.ENODATA)


def sys_getxattr(t: Task, path: int, name: int, value: int, size: int) -> int:
    """getxattr(2)"""
    _at_path(t, path, True)
    return _get(t, name)


def sys_lgetxattr(t: Task, path: int, name: int, value: int, size: int) -> int:
    """lgetxattr(2)"""
    _at_path(t, path, False)
    return _get(t, name)


def sys_fgetxattr(t: Task, fd: int, name: int, value: int, size: int) -> int:
    """fgetxattr(2)"""
    t.files.get(s32(fd))
    return _get(t, name)


def sys_listxattr(t: Task, path: int, lst: int, size: int) -> int:
    """listxattr(2)"""
    _at_path(t, path, True)
    return 0


def sys_llistxattr(t: Task, path: int, lst: int, size: int) -> int:
    """llistxattr(2)"""
    _at_path(t, path, False)
    return 0


def sys_flistxattr(t: Task, fd: int, lst: int, size: int) -> int:
    """flistxattr(2)"""
    t.files.get(s32(fd))
    return 0


def _set(t: Task, name: int, size: int, flags: int) -> int:
    if s32(flags) & ~3 or size > XATTR_SIZE_MAX:
        raise Errno(errno.EINVAL if s32(flags) & ~3 else errno.E2BIG)
    _name(t, name)
    raise Errno(errno.EOPNOTSUPP)


def sys_setxattr(t: Task, path: int, name: int, value: int, size: int, flags: int) -> int:
    """setxattr(2)"""
    _at_path(t, path, True)
    return _set(t, name, size, flags)


def sys_lsetxattr(t: Task, path: int, name: int, value: int, size: int, flags: int) -> int:
    """lsetxattr(2)"""
    _at_path(t, path, False)
    return _set(t, name, size, flags)


def sys_fsetxattr(t: Task, fd: int, name: int, value: int, size: int, flags: int) -> int:
    """fsetxattr(2)"""
    t.files.get(s32(fd))
    return _set(t, name, size, flags)


def sys_removexattr(t: Task, path: int, name: int) -> int:
    """removexattr(2)"""
    _at_path(t, path, True)
    return _get(t, name)


def sys_lremovexattr(t: Task, path: int, name: int) -> int:
    """lremovexattr(2)"""
    _at_path(t, path, False)
    return _get(t, name)


def sys_fremovexattr(t: Task, fd: int, name: int) -> int:
    """fremovexattr(2)"""
    t.files.get(s32(fd))
    return _get(t, name)


def _regular(t: Task, fd: int):
    f = t.files.get(s32(fd))
    vpath = getattr(f, "vpath", None)
    if vpath is None:
        raise Errno(errno.ESPIPE)
    return f, vpath.dentry.inode


def sys_fadvise64(t: Task, fd: int, offset: int, length: int, advice: int) -> int:
    """fadvise64(2): advice is accepted (there is no page cache to steer yet)."""
    _regular(t, fd)
    if not 0 <= s32(advice) <= 5 or s64(length) < 0:
        raise Errno(errno.EINVAL)
    return 0


def sys_readahead(t: Task, fd: int, offset: int, count: int) -> int:
    """readahead(2)"""
    f, inode = _regular(t, fd)
    if not inode.is_reg or not f.readable:
        raise Errno(errno.EINVAL)
    return 0


def sys_fallocate(t: Task, fd: int, mode: int, offset: int, length: int) -> int:
    """fallocate(2): mode 0 and FALLOC_FL_KEEP_SIZE; other modes EOPNOTSUPP."""
    f, inode = _regular(t, fd)
    mode, off, ln = s32(mode), s64(offset), s64(length)
    if off < 0 or ln <= 0:
        raise Errno(errno.EINVAL)
    if not f.writable:
        raise Errno(errno.EBADF)
    if inode.is_dir:
        raise Errno(errno.EISDIR)
    if not inode.is_reg:
        raise Errno(errno.ENODEV)
    if mode & ~1:
        raise Errno(errno.EOPNOTSUPP)
    inode.refresh()
    if not mode & 1 and off + ln > inode.size:
        f.truncate(off + ln)
    return 0


def sys_sync_file_range(t: Task, fd: int, offset: int, nbytes: int, flags: int) -> int:
    """sync_file_range(2)"""
    f, _ = _regular(t, fd)
    if s32(flags) & ~7 or s64(offset) < 0 or s64(nbytes) < 0:
        raise Errno(errno.EINVAL)
    f.fsync()
    return 0


SYSCALLS = [
    ("getxattr", sys_getxattr, "partial", "no xattrs stored: ENODATA"),
    ("lgetxattr", sys_lgetxattr, "partial", "no xattrs stored: ENODATA"),
    ("fgetxattr", sys_fgetxattr, "partial", "no xattrs stored: ENODATA"),
    ("listxattr", sys_listxattr, "partial", "empty list"),
    ("llistxattr", sys_llistxattr, "partial", "empty list"),
    ("flistxattr", sys_flistxattr, "partial", "empty list"),
    ("setxattr", sys_setxattr, "partial", "EOPNOTSUPP"),
    ("lsetxattr", sys_lsetxattr, "partial", "EOPNOTSUPP"),
    ("fsetxattr", sys_fsetxattr, "partial", "EOPNOTSUPP"),
    ("removexattr", sys_removexattr, "partial", "ENODATA"),
    ("lremovexattr", sys_lremovexattr, "partial", "ENODATA"),
    ("fremovexattr", sys_fremovexattr, "partial", "ENODATA"),
    ("fadvise64", sys_fadvise64, "supported", "accepted"),
    ("readahead", sys_readahead, "supported", "accepted"),
    ("fallocate", sys_fallocate, "partial", "mode 0 and KEEP_SIZE only"),
    ("sync_file_range", sys_sync_file_range, "supported", ""),
]
