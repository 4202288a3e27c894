"""Socket system calls: socket/socketpair, bind/listen/accept/connect, send*/recv*,
shutdown, get/setsockopt, getsockname/getpeername.

Argument decoding and the guest structures follow net/socket.c; the work is done by the
Socket objects of each family (usermode/fs/socket_common.py FAMILIES: AF_UNIX here,
others register there). Unregistered domains give EAFNOSUPPORT.
"""
from __future__ import annotations

import errno
import struct

from usermode.fs import unix_dgram, unix_stream  # noqa: F401  (register SOCK_* classes)
from usermode.fs.file import O_NONBLOCK, O_RDWR
from usermode.fs.socket_common import (AF_UNIX, FAMILIES, INT_MAX, MSG_CMSG_CLOEXEC,
                                       MSG_CTRUNC, MSG_DONTWAIT, MSG_WAITFORONE, NPROTO,
                                       OPTMEM_MAX, SCM_CREDENTIALS, SOCK_CLOEXEC, SOCK_MAX,
                                       SOMAXCONN, PeerGroupsRange,
                                       SOCK_NONBLOCK, SOCK_TYPE_MASK, SOCKADDR_STORAGE,
                                       SOL_SOCKET, CmsgWriter, Payload, Socket,
                                       SocketFamily, pack_ucred, parse_control,
                                       read_msghdr, read_sockaddr, register_family,
                                       write_sockaddr)
from usermode.fs.uapi import MAX_RW_COUNT, UIO_MAXIOV, read_iovec, read_timespec, scatter
from usermode.fs.unix import UNIX_FAMILY
from usermode.kernel.errors import Errno, s32
from usermode.kernel.task import Task

register_family(AF_UNIX, UNIX_FAMILY)

MMSGHDR_SIZE = 64                 # struct mmsghdr: msghdr + unsigned msg_len, padded
SOCKOPT_COPY_MAX = 512            # enough for every option value we understand


def _sock(t: Task, fd: int) -> Socket:
    f = t.files.get(s32(fd))
    if not isinstance(f, Socket):
        raise Errno(errno.ENOTSOCK)
    return f


def _split_type(type_: int) -> tuple[int, int]:
    ty = s32(type_)
    flags = ty & ~SOCK_TYPE_MASK
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise Errno(errno.EINVAL)
    return ty & SOCK_TYPE_MASK, flags


def _family(domain: int, ty: int) -> SocketFamily:
    d = s32(domain)
    if d < 0 or d >= NPROTO:
        raise Errno(errno.EAFNOSUPPORT)
    if ty >= SOCK_MAX:
        raise Errno(errno.EINVAL)
    fam = FAMILIES.get(d)
    if fam is None:
        raise Errno(errno.EAFNOSUPPORT)
    return fam


def _dontwait(s: Socket, flags: int) -> int:
    return flags | MSG_DONTWAIT if s.nonblocking else flags


# -- creation
def sys_socket(t: Task, domain: int, type_: int, protocol: int) -> int:
    """socket(2)"""
    ty, fl = _split_type(type_)
    sock = _family(domain, ty).create(t, ty, s32(protocol), fl & SOCK_NONBLOCK)
    try:
        return t.files.install(sock, bool(fl & SOCK_CLOEXEC))
    except Errno:
        sock.release()
        raise


def sys_socketpair(t: Task, domain: int, type_: int, protocol: int, sv: int) -> int:
    """socketpair(2)"""
    ty, fl = _split_type(type_)
    fd1 = t.files.lowest_free()
    fd2 = t.files.lowest_free(fd1 + 1)
    t.mm.copy_out(sv, struct.pack("<ii", fd1, fd2))
    a, b = _family(domain, ty).socketpair(t, ty, s32(protocol), fl & SOCK_NONBLOCK)
    cloexec = bool(fl & SOCK_CLOEXEC)
    t.files.install_at(fd1, a, cloexec)
    t.files.install_at(fd2, b, cloexec)
    return 0


# -- addresses and connections
def sys_bind(t: Task, fd: int, umyaddr: int, addrlen: int) -> int:
    """bind(2)"""
    s = _sock(t, fd)
    s.bind(t, read_sockaddr(t, umyaddr, s32(addrlen)))
    return 0


def sys_listen(t: Task, fd: int, backlog: int) -> int:
    """listen(2)"""
    s = _sock(t, fd)
    b = s32(backlog)
    if b & 0xFFFFFFFF > SOMAXCONN:
        b = SOMAXCONN
    s.listen(t, b)
    return 0


def sys_connect(t: Task, fd: int, uservaddr: int, addrlen: int) -> int:
    """connect(2)"""
    f = t.files.get(s32(fd))
    addr = read_sockaddr(t, uservaddr, s32(addrlen))
    if not isinstance(f, Socket):
        raise Errno(errno.ENOTSOCK)
    f.connect(t, addr, f.nonblocking)
    return 0


def sys_accept4(t: Task, fd: int, upeer: int, upeer_len: int, flags: int) -> int:
    """accept4(2)"""
    fl = s32(flags)
    if fl & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise Errno(errno.EINVAL)
    s = _sock(t, fd)
    t.files.lowest_free()                          # EMFILE before waiting, as Linux
    if upeer and t.mm.read_i32(upeer_len) < 0:     # checked before a connection is taken
        raise Errno(errno.EINVAL)
    new = s.accept(t, s.nonblocking)
    new.flags = O_RDWR | (fl & O_NONBLOCK)
    nfd = t.files.install(new, bool(fl & SOCK_CLOEXEC))
    if upeer:
        try:
            try:
                name = new.getpeername(t)
            except Errno:
                raise Errno(errno.ECONNABORTED) from None
            write_sockaddr(t, name, upeer, upeer_len)
        except Errno:
            t.files.close(nfd)
            raise
    return nfd


def sys_accept(t: Task, fd: int, upeer: int, upeer_len: int) -> int:
    """accept(2)"""
    return sys_accept4(t, fd, upeer, upeer_len, 0)


def sys_getsockname(t: Task, fd: int, usockaddr: int, usockaddr_len: int) -> int:
    """getsockname(2)"""
    s = _sock(t, fd)
    write_sockaddr(t, s.getsockname(t), usockaddr, usockaddr_len)
    return 0


def sys_getpeername(t: Task, fd: int, usockaddr: int, usockaddr_len: int) -> int:
    """getpeername(2)"""
    s = _sock(t, fd)
    write_sockaddr(t, s.getpeername(t), usockaddr, usockaddr_len)
    return 0


def sys_shutdown(t: Task, fd: int, how: int) -> int:
    """shutdown(2)"""
    _sock(t, fd).shutdown(t, s32(how))
    return 0


# -- data
def sys_sendto(t: Task, fd: int, buff: int, len_: int, flags: int, addr: int,
               addr_len: int) -> int:
    """sendto(2)"""
    n = min(len_, MAX_RW_COUNT)
    s = _sock(t, fd)
    kaddr = read_sockaddr(t, addr, s32(addr_len)) if addr else b""
    return s.sendmsg(t, Payload(t, [(buff, n)]), None, _dontwait(s, s32(flags)),
                     kaddr or None)


def sys_recvfrom(t: Task, fd: int, ubuf: int, size: int, flags: int, addr: int,
                 addr_len: int) -> int:
    """recvfrom(2)"""
    n = min(size, MAX_RW_COUNT)
    s = _sock(t, fd)
    r = s.recvmsg(t, n, _dontwait(s, s32(flags)))
    r.drop_fds()                                   # no control buffer to receive them
    t.mm.copy_out(ubuf, r.data)
    if addr:
        write_sockaddr(t, r.addr, addr, addr_len)
    return r.length


def _sendmsg(t: Task, s: Socket, msg: int, flags: int) -> int:
    mh = read_msghdr(t, msg)
    namelen = mh.namelen if mh.name else 0
    if namelen < 0:
        raise Errno(errno.EINVAL)
    namelen = min(namelen, SOCKADDR_STORAGE)
    addr = t.mm.copy_in(mh.name, namelen) if namelen else None
    if mh.iovlen > UIO_MAXIOV:
        raise Errno(errno.EMSGSIZE)
    iovs = read_iovec(t, mh.iov, mh.iovlen)
    ctl = None
    if mh.controllen:
        if mh.controllen > INT_MAX or (mh.controllen > 36 and mh.controllen >= OPTMEM_MAX):
            raise Errno(errno.ENOBUFS)
        ctl = parse_control(t, t.mm.copy_in(mh.control, mh.controllen), s.family)
    return s.sendmsg(t, Payload(t, iovs), ctl, _dontwait(s, flags), addr)


def _recvmsg(t: Task, s: Socket, msg: int, flags: int) -> int:
    mh = read_msghdr(t, msg)
    if mh.name and mh.namelen < 0:
        raise Errno(errno.EINVAL)
    if mh.iovlen > UIO_MAXIOV:
        raise Errno(errno.EMSGSIZE)
    iovs = read_iovec(t, mh.iov, mh.iovlen)
    r = s.recvmsg(t, sum(n for _, n in iovs), _dontwait(s, flags))
    try:
        scatter(t, iovs, r.data)
        mflags = r.flags | (flags & MSG_CMSG_CLOEXEC)
        used = 0
        if not mh.control:
            if r.creds is not None or r.fds:
                mflags |= MSG_CTRUNC
        else:
            w = CmsgWriter(t, mh.control, mh.controllen)
            if r.creds is not None:
                w.put(SOL_SOCKET, SCM_CREDENTIALS, pack_ucred(r.creds))
            if r.fds:
                fds, r.fds = r.fds, None
                w.put_fds(fds, bool(flags & MSG_CMSG_CLOEXEC))
            mflags |= w.flags
            used = w.used
    finally:
        r.drop_fds()
    if mh.name:
        write_sockaddr(t, r.addr, mh.name, msg + 8)
    t.mm.write_u64(msg + 40, used)
    t.mm.write_u32(msg + 48, mflags)
    return r.length


def sys_sendmsg(t: Task, fd: int, msg: int, flags: int) -> int:
    """sendmsg(2)"""
    return _sendmsg(t, _sock(t, fd), msg, s32(flags))


def sys_recvmsg(t: Task, fd: int, msg: int, flags: int) -> int:
    """recvmsg(2)"""
    return _recvmsg(t, _sock(t, fd), msg, s32(flags))


def _each_mmsg(t: Task, s, mmsg: int, vlen: int, fl: int, op, waitforone: bool = False) -> int:
    """sendmmsg/recvmmsg: op(t, s, msghdr, flags) per entry, its count stored in msg_len.
    Only the first message may block: a re-run after a wake would repeat the others."""
    done = 0
    for i in range(min(vlen & 0xFFFFFFFF, UIO_MAXIOV)):
        entry = mmsg + MMSGHDR_SIZE * i
        try:
            n = op(t, s, entry, fl | (MSG_DONTWAIT if i else 0))
            t.mm.write_u32(entry + 56, n)
        except Errno:
            if done == 0:
                raise
            break
        done += 1
        if waitforone:
            fl |= MSG_DONTWAIT
    return done


def sys_sendmmsg(t: Task, fd: int, mmsg: int, vlen: int, flags: int) -> int:
    """sendmmsg(2)"""
    return _each_mmsg(t, _sock(t, fd), mmsg, vlen, s32(flags), _sendmsg)


def sys_recvmmsg(t: Task, fd: int, mmsg: int, vlen: int, flags: int, timeout: int) -> int:
    """recvmmsg(2)"""
    s = _sock(t, fd)
    fl = s32(flags)
    if timeout:
        sec, nsec = read_timespec(t, timeout)
        if sec < 0 or not 0 <= nsec < 10**9:
            raise Errno(errno.EINVAL)
    return _each_mmsg(t, s, mmsg, vlen, fl, _recvmsg, bool(fl & MSG_WAITFORONE))


# -- options
def sys_setsockopt(t: Task, fd: int, level: int, optname: int, optval: int,
                   optlen: int) -> int:
    """setsockopt(2)"""
    s = _sock(t, fd)
    n = s32(optlen)
    if n < 0:
        raise Errno(errno.EINVAL)
    n = min(n, SOCKOPT_COPY_MAX)
    val = t.mm.copy_in(optval, n) if n else b""
    s.setsockopt(t, s32(level), s32(optname), val)
    return 0


def sys_getsockopt(t: Task, fd: int, level: int, optname: int, optval: int,
                   optlen: int) -> int:
    """getsockopt(2)"""
    s = _sock(t, fd)
    n = t.mm.read_i32(optlen)
    if n < 0:
        raise Errno(errno.EINVAL)
    try:
        v = s.getsockopt(t, s32(level), s32(optname), n)
    except PeerGroupsRange as e:
        t.mm.write_i32(optlen, e.needed)
        raise Errno(errno.ERANGE) from None
    n = min(n, len(v))
    t.mm.copy_out(optval, v[:n])
    t.mm.write_i32(optlen, n)
    return 0


SYSCALLS = [
    ("socket", sys_socket, "partial", "AF_UNIX only; other families EAFNOSUPPORT"),
    ("socketpair", sys_socketpair, "partial", "AF_UNIX only"),
    ("bind", sys_bind, "supported", "AF_UNIX: paths, abstract names, autobind"),
    ("listen", sys_listen, "supported", ""),
    ("accept", sys_accept, "supported", ""),
    ("accept4", sys_accept4, "supported", ""),
    ("connect", sys_connect, "supported", ""),
    ("getsockname", sys_getsockname, "supported", ""),
    ("getpeername", sys_getpeername, "supported", ""),
    ("sendto", sys_sendto, "partial", "a blocking stream send larger than the socket "
     "buffer may return a short count; no MSG_OOB"),
    ("recvfrom", sys_recvfrom, "partial", "no MSG_OOB, SO_PEEK_OFF is not applied"),
    ("sendmsg", sys_sendmsg, "partial", "SCM_RIGHTS and SCM_CREDENTIALS; as sendto"),
    ("recvmsg", sys_recvmsg, "partial", "SCM_RIGHTS and SCM_CREDENTIALS; as recvfrom"),
    ("sendmmsg", sys_sendmmsg, "partial", "only the first message may block"),
    ("recvmmsg", sys_recvmmsg, "partial", "only the first message may block; the "
     "timeout is checked but not waited for"),
    ("shutdown", sys_shutdown, "supported", ""),
    ("setsockopt", sys_setsockopt, "partial", "SOL_SOCKET options; SO_ATTACH_FILTER and "
     "SO_BINDTODEVICE are refused"),
    ("getsockopt", sys_getsockopt, "partial", "SOL_SOCKET options"),
]
