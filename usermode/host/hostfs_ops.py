"""The host side of hostfs: every host file operation the guest can cause, confined.

All access is relative to directory fds we hold (O_PATH), one name component at a time,
never following a symlink on the host (O_NOFOLLOW / AT_SYMLINK_NOFOLLOW), so neither
`..`, symlinks nor races with host processes can reach outside the export. Device nodes
are never opened; attribute changes act on an O_PATH fd of the exact inode through
/proc/self/fd. OSError becomes Errno; EINTR is retried by Python (PEP 475).
"""
from __future__ import annotations

import ctypes
import errno
import os
import stat as st
from typing import Callable, TypeVar

from usermode.kernel.errors import Errno

R = TypeVar("R")
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
SAFE_MODE_BITS = 0o1777      # never create setuid/setgid files on the host
_libc = ctypes.CDLL(None, use_errno=True)
_UMASK = os.umask(0o022)     # read once (single-threaded here): creations that it would
os.umask(_UMASK)             # not change need no chmod afterwards


def _host(fn: Callable[..., R], *args, **kw) -> R:
    try:
        return fn(*args, **kw)
    except OSError as e:
        raise Errno(e.errno or errno.EIO) from None


def _name(name: bytes) -> bytes:
    """Defence in depth: a single, real component."""
    if not name or b"/" in name or b"\0" in name or name in (b".", b".."):
        raise Errno(errno.ENOENT)
    return name


def _proc(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def open_root(path: str) -> int:
    """The export itself (the only path resolved by the host, chosen by the admin)."""
    return _host(os.open, path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def lstat_at(dirfd: int, name: bytes) -> os.stat_result:
    return _host(os.stat, _name(name), dir_fd=dirfd, follow_symlinks=False)


def fstat(fd: int) -> os.stat_result:
    return _host(os.fstat, fd)


def open_dir_at(dirfd: int, name: bytes) -> int:
    return _host(os.open, _name(name), _PATH | os.O_DIRECTORY, dir_fd=dirfd)


def open_file_at(dirfd: int, name: bytes, flags: int) -> int:
    """Open a regular file for I/O; anything else that raced into its place is refused.
    O_NONBLOCK keeps a FIFO swapped in from blocking us."""
    keep = os.O_ACCMODE | os.O_APPEND | os.O_SYNC | os.O_DSYNC
    fd = _host(os.open, _name(name), (flags & keep) | os.O_NOFOLLOW | os.O_CLOEXEC |
               os.O_NOCTTY | os.O_NONBLOCK, dir_fd=dirfd)
    if not st.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Errno(errno.ENXIO)
    return fd


def _own(fd: int, uid: int, gid: int) -> None:
    if uid == os.geteuid() and gid == os.getegid():
        return   # what the host gave it already
    try:
        os.chown(_proc(fd), uid, gid)
    except OSError:
        pass     # not host root: files stay the kernel's (best effort, like hostfs)


def create_at(dirfd: int, name: bytes, mode: int, uid: int, gid: int) -> None:
    fd = _host(os.open, _name(name), os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW |
               os.O_CLOEXEC, mode & SAFE_MODE_BITS, dir_fd=dirfd)
    try:
        _own(fd, uid, gid)
        if mode & SAFE_MODE_BITS & _UMASK:
            os.fchmod(fd, mode & SAFE_MODE_BITS)
    finally:
        os.close(fd)


def _after_create(dirfd: int, name: bytes, mode: int | None, uid: int, gid: int) -> None:
    fd = _host(os.open, name, _PATH, dir_fd=dirfd)
    try:
        _own(fd, uid, gid)
        if mode is not None:
            os.chmod(_proc(fd), mode & SAFE_MODE_BITS)
    finally:
        os.close(fd)


def mkdir_at(dirfd: int, name: bytes, mode: int, uid: int, gid: int) -> None:
    _host(os.mkdir, _name(name), mode & 0o777, dir_fd=dirfd)
    _after_create(dirfd, name, mode, uid, gid)


def mknod_at(dirfd: int, name: bytes, mode: int, uid: int, gid: int) -> None:
    """FIFOs and sockets only: device nodes are never created on the host."""
    if st.S_IFMT(mode) == st.S_IFIFO:
        _host(os.mkfifo, _name(name), mode & 0o777, dir_fd=dirfd)
    elif st.S_IFMT(mode) == st.S_IFSOCK:
        _host(os.mknod, _name(name), st.S_IFSOCK | (mode & 0o777), dir_fd=dirfd)
    else:
        raise Errno(errno.EPERM)
    _after_create(dirfd, name, mode, uid, gid)


def symlink_at(dirfd: int, name: bytes, target: bytes, uid: int, gid: int) -> None:
    _host(os.symlink, target, _name(name), dir_fd=dirfd)
    try:
        os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
    except OSError:
        pass


def link_at(olddirfd: int, old: bytes, newdirfd: int, new: bytes) -> None:
    _host(os.link, _name(old), _name(new), src_dir_fd=olddirfd, dst_dir_fd=newdirfd,
          follow_symlinks=False)


def unlink_at(dirfd: int, name: bytes) -> None:
    _host(os.unlink, _name(name), dir_fd=dirfd)


def rmdir_at(dirfd: int, name: bytes) -> None:
    _host(os.rmdir, _name(name), dir_fd=dirfd)


def rename_at(olddirfd: int, old: bytes, newdirfd: int, new: bytes, flags: int = 0) -> None:
    """renameat2 (flags RENAME_NOREPLACE=1 / RENAME_EXCHANGE=2)."""
    if not flags:
        _host(os.rename, _name(old), _name(new), src_dir_fd=olddirfd, dst_dir_fd=newdirfd)
        return
    r = _libc.renameat2(olddirfd, _name(old), newdirfd, _name(new), ctypes.c_uint(flags))
    if r != 0:
        raise Errno(ctypes.get_errno() or errno.EIO)


def readlink_at(dirfd: int, name: bytes) -> bytes:
    return _host(os.readlink, _name(name), dir_fd=dirfd)


def listdir(dirfd: int) -> list[tuple[bytes, int, int]]:
    """(name, ino, d_type) of a directory held as an O_PATH fd."""
    fd = _host(os.open, ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dirfd)
    out = []
    try:
        with os.scandir(fd) as it:
            for e in it:
                try:
                    if e.is_symlink():
                        dt = 10
                    elif e.is_dir(follow_symlinks=False):
                        dt = 4
                    elif e.is_file(follow_symlinks=False):
                        dt = 8
                    else:
                        dt = st.S_IFMT(e.stat(follow_symlinks=False).st_mode) >> 12
                    out.append((os.fsencode(e.name), e.inode(), dt))
                except OSError:
                    continue         # vanished while listing
    except OSError as e:
        raise Errno(e.errno or errno.EIO) from None
    finally:
        os.close(fd)
    return out


def _with_path_fd(dirfd: int, name: bytes | None, fn: Callable[[int], None]) -> None:
    """Apply fn to an O_PATH fd of dirfd/name (or dirfd itself when name is None)."""
    if name is None:
        fn(dirfd)
        return
    fd = _host(os.open, _name(name), _PATH, dir_fd=dirfd)
    try:
        fn(fd)
    finally:
        os.close(fd)


def chmod(dirfd: int, name: bytes | None, mode: int) -> None:
    def do(fd: int) -> None:
        s = os.fstat(fd)
        if st.S_ISLNK(s.st_mode):
            raise Errno(errno.EOPNOTSUPP)
        bits = mode & (0o7777 if st.S_ISDIR(s.st_mode) else SAFE_MODE_BITS)
        _host(os.chmod, _proc(fd), bits)
    _with_path_fd(dirfd, name, do)


def chown(dirfd: int, name: bytes | None, uid: int, gid: int) -> None:
    """uid/gid -1 leave that id alone. Symlinks themselves are changed (lchown)."""
    if name is not None:
        _host(os.chown, _name(name), uid, gid, dir_fd=dirfd, follow_symlinks=False)
    else:
        _host(os.chown, _proc(dirfd), uid, gid)


def utimens(dirfd: int, name: bytes | None, atime_ns: int | None, mtime_ns: int | None) -> None:
    def do(fd: int) -> None:
        s = os.fstat(fd)
        if st.S_ISLNK(s.st_mode):
            _host(os.utime, name, ns=(atime_ns if atime_ns is not None else s.st_atime_ns,
                                      mtime_ns if mtime_ns is not None else s.st_mtime_ns),
                  dir_fd=dirfd, follow_symlinks=False)
            return
        _host(os.utime, _proc(fd), ns=(atime_ns if atime_ns is not None else s.st_atime_ns,
                                      mtime_ns if mtime_ns is not None else s.st_mtime_ns))
    _with_path_fd(dirfd, name, do)


def truncate_at(dirfd: int, name: bytes, size: int) -> None:
    fd = open_file_at(dirfd, name, os.O_WRONLY)
    try:
        _host(os.ftruncate, fd, size)
    finally:
        os.close(fd)


def pread(fd: int, n: int, off: int) -> bytes:
    return _host(os.pread, fd, n, off)


def pwrite(fd: int, data: bytes, off: int) -> int:
    return _host(os.pwrite, fd, data, off)


def ftruncate(fd: int, size: int) -> None:
    _host(os.ftruncate, fd, size)


def fsync(fd: int) -> None:
    _host(os.fsync, fd)


def statvfs(fd: int) -> os.statvfs_result:
    return _host(os.statvfs, fd)
