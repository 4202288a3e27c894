"""File descriptor and file I/O system calls: read/write and friends, dup, fcntl, ioctl,
pipes, sendfile, truncate/sync, getdents, flock."""
from __future__ import annotations

import errno
import struct

from usermode.fs import locks
from usermode.fs.fdtable import put_file
from usermode.fs.file import (O_APPEND, O_CLOEXEC, O_DIRECT, O_NOATIME, O_NONBLOCK, O_PATH,
                              POLLOUT, File)
from usermode.fs.files import DirFile
from usermode.fs.pipe import PipeFile, make_pipe
from usermode.fs.uapi import MAX_RW_COUNT, gather, read_iovec, scatter
from usermode.kernel.errors import Block, Errno, s32, s64
from usermode.kernel.task import Task

O_ASYNC = 0o20000
SETFL_MASK = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME
FD_CLOEXEC = 1
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW, F_SETOWN, F_GETOWN, F_SETSIG, F_GETSIG = 5, 6, 7, 8, 9, 10, 11
F_SETOWN_EX, F_GETOWN_EX = 15, 16
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
F_SETLEASE, F_GETLEASE, F_NOTIFY, F_DUPFD_CLOEXEC = 1024, 1025, 1026, 1030
F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS = 1031, 1032, 1033, 1034
FIONREAD, FIONBIO, FIONCLEX, FIOCLEX, FIOASYNC = 0x541B, 0x5421, 0x5450, 0x5451, 0x5452
CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4
RWF_VALID = 0x1F
SENDFILE_CHUNK = 1 << 20
_FLOCK = struct.Struct("<hh4xqqi4x")


def _file(t: Task, fd: int) -> File:
    return t.files.get(s32(fd))


def _readable(t: Task, fd: int) -> File:
    f = _file(t, fd)
    if not f.readable:
        raise Errno(errno.EBADF)
    return f


def _writable(t: Task, fd: int) -> File:
    f = _file(t, fd)
    if not f.writable:
        raise Errno(errno.EBADF)
    return f


def _count(n: int) -> int:
    if n >> 63:
        raise Errno(errno.EINVAL)
    return min(n, MAX_RW_COUNT)


# -- read / write
def sys_read(t: Task, fd: int, buf: int, count: int) -> int:
    """read(2)"""
    f = _readable(t, fd)
    n = _count(count)
    if n and buf == 0:
        raise Errno(errno.EFAULT)
    data = f.read(t, n)
    t.mm.copy_out(buf, data)
    return len(data)


def sys_write(t: Task, fd: int, buf: int, count: int) -> int:
    """write(2)"""
    f = _writable(t, fd)
    return f.write(t, t.mm.copy_in(buf, _count(count)))


def sys_readv(t: Task, fd: int, iov: int, iovcnt: int) -> int:
    """readv(2)"""
    f = _readable(t, fd)
    iovs = read_iovec(t, iov, s32(iovcnt))
    data = f.read(t, sum(n for _, n in iovs))
    scatter(t, iovs, data)
    return len(data)


def sys_writev(t: Task, fd: int, iov: int, iovcnt: int) -> int:
    """writev(2)"""
    f = _writable(t, fd)
    return f.write(t, gather(t, read_iovec(t, iov, s32(iovcnt))))


def _offset(off: int) -> int:
    off = s64(off)
    if off < 0:
        raise Errno(errno.EINVAL)
    return off


def sys_pread64(t: Task, fd: int, buf: int, count: int, off: int) -> int:
    """pread64(2)"""
    f = _readable(t, fd)
    o = _offset(off)
    data = f.pread(t, _count(count), o)
    t.mm.copy_out(buf, data)
    return len(data)


def sys_pwrite64(t: Task, fd: int, buf: int, count: int, off: int) -> int:
    """pwrite64(2)"""
    f = _writable(t, fd)
    o = _offset(off)
    return f.pwrite(t, t.mm.copy_in(buf, _count(count)), o)


def sys_preadv(t: Task, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int = 0) -> int:
    """preadv(2)"""
    f = _readable(t, fd)
    o = _offset(pos_l)
    iovs = read_iovec(t, iov, s32(iovcnt))
    data = f.pread(t, sum(n for _, n in iovs), o)
    scatter(t, iovs, data)
    return len(data)


def sys_pwritev(t: Task, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int = 0) -> int:
    """pwritev(2)"""
    f = _writable(t, fd)
    o = _offset(pos_l)
    return f.pwrite(t, gather(t, read_iovec(t, iov, s32(iovcnt))), o)


def sys_preadv2(t: Task, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int,
                flags: int) -> int:
    """preadv2(2)"""
    if s32(flags) & ~RWF_VALID:
        raise Errno(errno.EOPNOTSUPP)
    if s64(pos_l) == -1:
        return sys_readv(t, fd, iov, iovcnt)
    return sys_preadv(t, fd, iov, iovcnt, pos_l)


def sys_pwritev2(t: Task, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int,
                 flags: int) -> int:
    """pwritev2(2)"""
    if s32(flags) & ~RWF_VALID:
        raise Errno(errno.EOPNOTSUPP)
    if s64(pos_l) == -1:
        return sys_writev(t, fd, iov, iovcnt)
    return sys_pwritev(t, fd, iov, iovcnt, pos_l)


def sys_lseek(t: Task, fd: int, offset: int, whence: int) -> int:
    """lseek(2)"""
    f = _file(t, fd)
    w = s32(whence)
    if w < 0 or w > 4:
        raise Errno(errno.EINVAL)
    return f.lseek(s64(offset), w)


# -- descriptors
def _drop_posix_locks(t: Task, f: File) -> None:
    if f.vpath is not None and f.vpath.dentry.inode.locks is not None:
        locks.release_owner(f.vpath.dentry.inode, t.process)


def sys_close(t: Task, fd: int) -> int:
    """close(2)"""
    f = t.files.remove(s32(fd))
    _drop_posix_locks(t, f)
    put_file(f)
    return 0


def sys_close_range(t: Task, first: int, last: int, flags: int) -> int:
    """close_range(2)"""
    first &= 0xFFFFFFFF
    last &= 0xFFFFFFFF
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        raise Errno(errno.EINVAL)
    if flags & CLOSE_RANGE_UNSHARE:
        t.files = t.files.fork()          # this thread only gets a private copy
    if not flags & CLOSE_RANGE_CLOEXEC:
        for fd, f in list(t.files):
            if first <= fd <= last:
                _drop_posix_locks(t, f)
    t.files.close_range(first, last, bool(flags & CLOSE_RANGE_CLOEXEC))
    return 0


def sys_dup(t: Task, oldfd: int) -> int:
    """dup(2)"""
    return t.files.install(_file(t, oldfd))


def sys_dup2(t: Task, oldfd: int, newfd: int) -> int:
    """dup2(2)"""
    f = _file(t, oldfd)
    if s32(oldfd) == s32(newfd):
        return s32(newfd)
    return t.files.install_at(s32(newfd), f)


def sys_dup3(t: Task, oldfd: int, newfd: int, flags: int) -> int:
    """dup3(2)"""
    if s32(flags) & ~O_CLOEXEC:
        raise Errno(errno.EINVAL)
    if s32(oldfd) == s32(newfd):
        raise Errno(errno.EINVAL)
    f = _file(t, oldfd)
    return t.files.install_at(s32(newfd), f, bool(s32(flags) & O_CLOEXEC))


def _lock_range(f: File, whence: int, start: int, length: int) -> tuple[int, int]:
    if whence == 0:
        base = 0
    elif whence == 1:
        base = f.pos
    elif whence == 2:
        base = f.stat().size
    else:
        raise Errno(errno.EINVAL)
    s = base + start
    if length > 0:
        e = s + length
    elif length == 0:
        e = locks.INF
    else:
        s, e = s + length, s
    if s < 0:
        raise Errno(errno.EINVAL)
    return s, e


def _fcntl_lock(t: Task, f: File, cmd: int, arg: int) -> int:
    if f.vpath is None:
        raise Errno(errno.EINVAL)
    inode = f.vpath.dentry.inode
    ltype, whence, start, length, pid = _FLOCK.unpack(t.mm.copy_in(arg, _FLOCK.size))
    ofd = cmd in (F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW)
    if ofd and pid != 0:
        raise Errno(errno.EINVAL)
    if ltype not in (locks.F_RDLCK, locks.F_WRLCK, locks.F_UNLCK):
        raise Errno(errno.EINVAL)
    s, e = _lock_range(f, whence, start, length)
    owner = f if ofd else t.process
    if cmd in (F_GETLK, F_OFD_GETLK):
        if ltype == locks.F_UNLCK:
            raise Errno(errno.EINVAL)
        c = locks.conflict(inode, owner, ltype, s, e)
        if c is None:
            out = _FLOCK.pack(locks.F_UNLCK, whence, start, length, pid)
        else:
            cpid = -1 if isinstance(c.owner, File) else c.pid
            clen = 0 if c.end == locks.INF else c.end - c.start
            out = _FLOCK.pack(c.type, 0, c.start, clen, cpid)
        t.mm.copy_out(arg, out)
        return 0
    if ltype == locks.F_RDLCK and not f.readable or ltype == locks.F_WRLCK and not f.writable:
        raise Errno(errno.EBADF)
    locks.set_record(inode, owner, t.pid, ltype, s, e, cmd in (F_SETLKW, F_OFD_SETLKW))
    return 0


def sys_fcntl(t: Task, fd: int, cmd: int, arg: int) -> int:
    """fcntl(2)"""
    n = s32(fd)
    f = t.files.get(n)
    cmd = s32(cmd)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        low = s32(arg)
        if low < 0 or low >= t.files.limit:
            raise Errno(errno.EINVAL)
        return t.files.install(f, cmd == F_DUPFD_CLOEXEC, low)
    if cmd == F_GETFD:
        return FD_CLOEXEC if t.files.get_cloexec(n) else 0
    if cmd == F_SETFD:
        t.files.set_cloexec(n, bool(arg & FD_CLOEXEC))
        return 0
    if cmd == F_GETFL:
        return f.flags & ~O_CLOEXEC
    if cmd == F_SETFL:
        if f.flags & O_PATH:
            raise Errno(errno.EBADF)
        f.setfl((f.flags & ~SETFL_MASK) | (s32(arg) & SETFL_MASK))
        return 0
    if cmd in (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW):
        return _fcntl_lock(t, f, cmd, arg)
    if cmd == F_GETOWN:
        return f.owner_pid
    if cmd == F_SETOWN:
        f.owner_pid = s32(arg)      # recorded; no SIGIO delivery yet
        return 0
    if cmd == F_GETSIG:
        return f.owner_sig
    if cmd == F_SETSIG:
        if not 0 <= arg <= 64:
            raise Errno(errno.EINVAL)
        f.owner_sig = arg
        return 0
    if cmd in (F_SETPIPE_SZ, F_GETPIPE_SZ):
        if not isinstance(f, PipeFile):
            raise Errno(errno.EBADF)
        if cmd == F_GETPIPE_SZ:
            return f.pipe.capacity
        return f.pipe.set_capacity(s32(arg))
    if cmd == F_GETLEASE:
        return locks.F_UNLCK
    raise Errno(errno.EINVAL)


def sys_ioctl(t: Task, fd: int, cmd: int, arg: int) -> int:
    """ioctl(2)"""
    n = s32(fd)
    f = t.files.get(n)
    if f.flags & O_PATH:
        raise Errno(errno.EBADF)
    cmd &= 0xFFFFFFFF
    if cmd == FIOCLEX or cmd == FIONCLEX:
        t.files.set_cloexec(n, cmd == FIOCLEX)
        return 0
    if cmd == FIONBIO or cmd == FIOASYNC:
        on = t.mm.read_i32(arg) != 0
        bit = O_NONBLOCK if cmd == FIONBIO else O_ASYNC
        f.setfl(f.flags | bit if on else f.flags & ~bit)
        return 0
    if cmd == FIONREAD and f.vpath is not None and f.vpath.dentry.inode.is_reg:
        t.mm.write_i32(arg, max(0, f.stat().size - f.pos))
        return 0
    return f.ioctl(t, cmd, arg)


def sys_pipe2(t: Task, fds: int, flags: int) -> int:
    """pipe2(2)"""
    fl = s32(flags)
    if fl & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT):
        raise Errno(errno.EINVAL)
    if fds == 0:
        raise Errno(errno.EFAULT)
    cloexec = bool(fl & O_CLOEXEC)
    r, w = make_pipe(fl)
    rfd = t.files.install(r, cloexec)
    try:
        wfd = t.files.install(w, cloexec)
    except Errno:
        t.files.close(rfd)
        w.release()
        raise
    try:
        t.mm.copy_out(fds, struct.pack("<ii", rfd, wfd))
    except Errno:
        t.files.close(rfd)
        t.files.close(wfd)
        raise
    return 0


def sys_pipe(t: Task, fds: int) -> int:
    """pipe(2)"""
    return sys_pipe2(t, fds, 0)


# -- copying between files
def _transfer(t: Task, fin: File, off_in: int | None, fout: File, off_out: int | None,
              count: int) -> tuple[int, int | None, int | None]:
    """Move up to count bytes; nothing is consumed unless it was written, so a Block
    raised by the writer leaves no trace."""
    count = min(count, SENDFILE_CHUNK)
    seekable = True
    if off_in is None:
        try:
            data = fin.pread(t, count, fin.pos)
        except Errno as e:
            if e.errno != errno.ESPIPE:
                raise
            seekable = False
            if not fout.poll() & POLLOUT:
                if fout.nonblocking:
                    raise Errno(errno.EAGAIN)
                raise Block(fout.waitq)
            data = fin.read(t, min(count, 4096))
    else:
        data = fin.pread(t, count, off_in)
    if not data:
        return 0, off_in, off_out
    if off_out is None:
        n = fout.write(t, data)
    else:
        n = fout.pwrite(t, data, off_out)
        off_out += n
    if off_in is None:
        if seekable:
            fin.pos += n
    else:
        off_in += n
    return n, off_in, off_out


def sys_sendfile(t: Task, out_fd: int, in_fd: int, offset: int, count: int) -> int:
    """sendfile(2)"""
    fin = _readable(t, in_fd)
    fout = _writable(t, out_fd)
    if fout.flags & O_APPEND:
        raise Errno(errno.EINVAL)
    if isinstance(fin, DirFile):
        raise Errno(errno.EINVAL)
    off = None
    if offset:
        off = s64(t.mm.read_u64(offset))
        if off < 0:
            raise Errno(errno.EINVAL)
    n, off, _ = _transfer(t, fin, off, fout, None, _count(count))
    if offset:
        t.mm.write_u64(offset, off or 0)
    return n


def sys_copy_file_range(t: Task, fd_in: int, off_in: int, fd_out: int, off_out: int,
                        length: int, flags: int) -> int:
    """copy_file_range(2)"""
    if flags:
        raise Errno(errno.EINVAL)
    fin = _readable(t, fd_in)
    fout = _writable(t, fd_out)
    for f in (fin, fout):
        if f.vpath is None or not f.vpath.dentry.inode.is_reg:
            raise Errno(errno.EISDIR if f.vpath and f.vpath.dentry.inode.is_dir
                        else errno.EINVAL)
    if fout.flags & O_APPEND:
        raise Errno(errno.EBADF)
    oi = s64(t.mm.read_u64(off_in)) if off_in else None
    oo = s64(t.mm.read_u64(off_out)) if off_out else None
    if (oi is not None and oi < 0) or (oo is not None and oo < 0):
        raise Errno(errno.EINVAL)
    n_req = _count(length)
    if fin.vpath.dentry.inode is fout.vpath.dentry.inode:
        a = oi if oi is not None else fin.pos
        b = oo if oo is not None else fout.pos
        if a < b + n_req and b < a + n_req:
            raise Errno(errno.EINVAL)
    data = fin.pread(t, min(n_req, SENDFILE_CHUNK), oi if oi is not None else fin.pos)
    if not data:
        return 0
    n = fout.pwrite(t, data, oo if oo is not None else fout.pos)
    if oi is None:
        fin.pos += n
    else:
        t.mm.write_u64(off_in, oi + n)
    if oo is None:
        fout.pos += n
    else:
        t.mm.write_u64(off_out, oo + n)
    return n


# -- size, sync, directories, flock
def sys_ftruncate(t: Task, fd: int, length: int) -> int:
    """ftruncate(2)"""
    n = s64(length)
    if n < 0:
        raise Errno(errno.EINVAL)
    f = _file(t, fd)
    if f.vpath is None or not f.vpath.dentry.inode.is_reg or not f.writable:
        raise Errno(errno.EINVAL)
    if f.vpath.mount.readonly:
        raise Errno(errno.EROFS)
    f.truncate(n)
    return 0


def sys_fsync(t: Task, fd: int) -> int:
    """fsync(2)"""
    f = _file(t, fd)
    if isinstance(f, PipeFile) and f.vpath is None:
        raise Errno(errno.EINVAL)
    f.fsync()
    return 0


def sys_fdatasync(t: Task, fd: int) -> int:
    """fdatasync(2)"""
    return sys_fsync(t, fd)


def _getdents(t: Task, fd: int, dirp: int, count: int, old: bool) -> int:
    f = _file(t, fd)
    if f.flags & O_PATH:
        raise Errno(errno.EBADF)
    n = count & 0xFFFFFFFF
    if isinstance(f, DirFile):
        data = f.getdents(t, n, old)
    elif old:
        raise Errno(errno.ENOTDIR)
    else:
        data = f.getdents(t, n)
    t.mm.copy_out(dirp, data)
    return len(data)


def sys_getdents64(t: Task, fd: int, dirp: int, count: int) -> int:
    """getdents64(2)"""
    return _getdents(t, fd, dirp, count, False)


def sys_getdents(t: Task, fd: int, dirp: int, count: int) -> int:
    """getdents(2)"""
    return _getdents(t, fd, dirp, count, True)


def sys_flock(t: Task, fd: int, op: int) -> int:
    """flock(2)"""
    f = _file(t, fd)
    if f.flags & O_PATH:
        raise Errno(errno.EBADF)
    if f.vpath is None:
        raise Errno(errno.EINVAL)
    locks.flock(f.vpath.dentry.inode, f, s32(op))
    return 0


SYSCALLS = [
    ("read", sys_read, "supported", ""),
    ("write", sys_write, "supported", "blocking pipe writes over PIPE_BUF may be short"),
    ("readv", sys_readv, "supported", ""),
    ("writev", sys_writev, "supported", ""),
    ("pread64", sys_pread64, "supported", ""),
    ("pwrite64", sys_pwrite64, "supported", ""),
    ("preadv", sys_preadv, "supported", ""),
    ("pwritev", sys_pwritev, "supported", ""),
    ("preadv2", sys_preadv2, "partial", "RWF_* flags accepted and ignored"),
    ("pwritev2", sys_pwritev2, "partial", "RWF_* flags accepted and ignored"),
    ("lseek", sys_lseek, "supported", "SEEK_DATA/SEEK_HOLE see no holes"),
    ("close", sys_close, "supported", ""),
    ("close_range", sys_close_range, "supported", ""),
    ("dup", sys_dup, "supported", ""),
    ("dup2", sys_dup2, "supported", ""),
    ("dup3", sys_dup3, "supported", ""),
    ("fcntl", sys_fcntl, "partial", "F_SETOWN/F_SETSIG recorded but no SIGIO; no leases, "
     "seals, F_NOTIFY; no EDEADLK detection"),
    ("ioctl", sys_ioctl, "partial", "FIONBIO/FIOASYNC/FIOCLEX/FIONCLEX/FIONREAD generic; "
     "the rest by the file's driver"),
    ("pipe", sys_pipe, "supported", ""),
    ("pipe2", sys_pipe2, "partial", "O_DIRECT (packet mode) accepted, streams"),
    ("sendfile", sys_sendfile, "supported", "at most 1 MiB per call"),
    ("copy_file_range", sys_copy_file_range, "supported", "at most 1 MiB per call"),
    ("ftruncate", sys_ftruncate, "supported", ""),
    ("fsync", sys_fsync, "supported", ""),
    ("fdatasync", sys_fdatasync, "supported", ""),
    ("getdents64", sys_getdents64, "supported", ""),
    ("getdents", sys_getdents, "supported", ""),
    ("flock", sys_flock, "supported", ""),
]
