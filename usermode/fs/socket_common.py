"""What every socket family shares (socket(7)): the constants of <sys/socket.h>, the
Socket file base class, the family registry, and the guest structures of the socket calls
(sockaddr, msghdr, cmsghdr, ucred) with Linux's copy-in/copy-out rules.

A family registers a factory with register_family(AF_X, family); sys_socket.py looks
families up by domain, so AF_INET can be added later without touching the syscalls.
"""
from __future__ import annotations

import errno
import itertools
import struct
from dataclasses import dataclass, field
import weakref
from typing import TYPE_CHECKING, NoReturn, Protocol

from usermode.fs.fdtable import put_file
from usermode.fs.file import O_CLOEXEC, O_NONBLOCK, O_RDWR, File
from usermode.fs.stat import S_IFSOCK, Stat, makedev
from usermode.kernel.errors import Block, Errno
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.kernel.task import Task

AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET = 0, 1, 2, 10, 16, 17
NPROTO = 46
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_RDM, SOCK_SEQPACKET = 1, 2, 3, 4, 5
SOCK_MAX, SOCK_TYPE_MASK = 11, 0xF
SOCK_NONBLOCK, SOCK_CLOEXEC = O_NONBLOCK, O_CLOEXEC

MSG_OOB, MSG_PEEK, MSG_DONTROUTE, MSG_CTRUNC = 0x1, 0x2, 0x4, 0x8
MSG_TRUNC, MSG_DONTWAIT, MSG_EOR, MSG_WAITALL = 0x20, 0x40, 0x80, 0x100
MSG_ERRQUEUE, MSG_NOSIGNAL, MSG_MORE, MSG_WAITFORONE = 0x2000, 0x4000, 0x8000, 0x10000
MSG_CMSG_CLOEXEC = 0x40000000

SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
SOL_SOCKET = 1
SCM_RIGHTS, SCM_CREDENTIALS = 1, 2
SCM_MAX_FD = 253

SO_DEBUG, SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_DONTROUTE, SO_BROADCAST = 1, 2, 3, 4, 5, 6
SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_OOBINLINE, SO_NO_CHECK = 7, 8, 9, 10, 11
SO_PRIORITY, SO_LINGER, SO_BSDCOMPAT, SO_REUSEPORT, SO_PASSCRED = 12, 13, 14, 15, 16
SO_PEERCRED, SO_RCVLOWAT, SO_SNDLOWAT, SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD = 17, 18, 19, 20, 21
SO_BINDTODEVICE, SO_PEERNAME, SO_TIMESTAMP_OLD, SO_ACCEPTCONN, SO_PEERSEC = 25, 28, 29, 30, 31
SO_SNDBUFFORCE, SO_RCVBUFFORCE, SO_PASSSEC, SO_TIMESTAMPNS_OLD, SO_MARK = 32, 33, 34, 35, 36
SO_PROTOCOL, SO_DOMAIN, SO_RXQ_OVFL, SO_WIFI_STATUS, SO_PEEK_OFF = 38, 39, 40, 41, 42
SO_NOFCS, SO_SELECT_ERR_QUEUE, SO_BUSY_POLL, SO_INCOMING_CPU = 43, 45, 46, 49
SO_COOKIE, SO_PEERGROUPS, SO_TIMESTAMP_NEW, SO_TIMESTAMPNS_NEW = 57, 59, 63, 64
SO_RCVTIMEO_NEW, SO_SNDTIMEO_NEW = 66, 67

FIONREAD = SIOCINQ = 0x541B
SIOCOUTQ = 0x5411
FIOSETOWN, SIOCSPGRP, FIOGETOWN, SIOCGPGRP = 0x8901, 0x8902, 0x8903, 0x8904

SOCKADDR_STORAGE = 128
OPTMEM_MAX = 131072                   # /proc/sys/net/core/optmem_max
INT_MAX = 0x7FFFFFFF
SOCKFS_DEV = makedev(0, 8)
POLLWRBAND = 0x200
SIGPIPE = 13
SOMAXCONN = 4096                      # net.core.somaxconn
WMEM_DEFAULT = RMEM_DEFAULT = 212992  # net.core.[wr]mem_default
WMEM_MAX = RMEM_MAX = 212992          # net.core.[wr]mem_max
SOCK_MIN_SNDBUF, SOCK_MIN_RCVBUF = 4608, 2304
HZ = 250                              # socket timeouts are kept in jiffies
LONG_MAX = (1 << 63) - 1              # MAX_SCHEDULE_TIMEOUT

_GENERIC_BOOLS = {SO_REUSEADDR, SO_DONTROUTE, SO_BROADCAST, SO_KEEPALIVE, SO_OOBINLINE,
                  SO_NO_CHECK, SO_REUSEPORT, SO_TIMESTAMP_OLD, SO_PASSSEC,
                  SO_TIMESTAMPNS_OLD, SO_RXQ_OVFL, SO_WIFI_STATUS, SO_NOFCS,
                  SO_SELECT_ERR_QUEUE, SO_TIMESTAMP_NEW, SO_TIMESTAMPNS_NEW, SO_DEBUG}
_GENERIC_INTS = {SO_PRIORITY: 0, SO_MARK: 0, SO_BUSY_POLL: 0, SO_INCOMING_CPU: -1}
_cookies = itertools.count(1)

_CMSGHDR = struct.Struct("<Qii")
CMSGHDR_SIZE = _CMSGHDR.size          # 16: cmsg_len is a size_t
_MSGHDR = struct.Struct("<Qi4xQQQQi4x")
MSGHDR_SIZE = _MSGHDR.size            # 56
_UCRED = struct.Struct("<iII")
_INT = struct.Struct("<i")

_socket_ino = itertools.count(40000)


def cmsg_align(n: int) -> int:
    return (n + 7) & ~7


Ucred = tuple[int, int, int]          # (pid, uid, gid) as struct ucred carries them


# -- what the syscalls hand to a socket and get back
@dataclass(slots=True)
class SendCtl:
    """Parsed control messages of a send. Files are borrowed from the sender's fd table
    (the socket takes its own references for what it queues)."""
    fds: list[File] = field(default_factory=list)
    creds: Ucred | None = None


@dataclass(slots=True)
class RecvResult:
    """One receive. `fds` carry one reference each, owned by the caller; `creds` is set
    when SO_PASSCRED asks for an SCM_CREDENTIALS message; `addr` is the sender's
    sockaddr (b"" for none: the returned length is then 0)."""
    data: bytes
    length: int                        # the return value (MSG_TRUNC may exceed len(data))
    flags: int = 0                     # MSG_TRUNC / MSG_CTRUNC / MSG_EOR for msg_flags
    addr: bytes = b""
    creds: Ucred | None = None
    fds: list[File] | None = None

    def drop_fds(self) -> None:
        for f in self.fds or ():
            put_file(f)
        self.fds = None


class Payload:
    """The bytes a send offers, copied from guest memory only as far as they are taken
    (a stream socket may take 200 KiB of a 100 MiB write)."""

    __slots__ = ("t", "iovs", "size", "_data")

    def __init__(self, t: "Task | None", iovs: list[tuple[int, int]],
                 data: bytes | None = None) -> None:
        self.t = t
        self.iovs = iovs
        self.size = len(data) if data is not None else sum(n for _, n in iovs)
        self._data = data

    @classmethod
    def of(cls, data: bytes) -> "Payload":
        return cls(None, [], data)

    def read(self, n: int) -> bytes:
        n = min(n, self.size)
        if self._data is not None:
            return self._data[:n]
        assert self.t is not None
        out = []
        for base, ln in self.iovs:
            if n <= 0:
                break
            take = min(ln, n)
            if take:
                out.append(self.t.mm.copy_in(base, take))
            n -= take
        return b"".join(out)


# -- blocking with socket timeouts
_deadlines: "weakref.WeakKeyDictionary[Task, tuple[object, float]]" = \
    weakref.WeakKeyDictionary()


def wait(t: "Task", timeo: int | None, *queues: WaitQueue) -> NoReturn:
    """Block on queues with a socket timeout in jiffies (None: forever, 0: don't wait,
    EAGAIN). The deadline of a timed wait is kept across the re-runs of one call (the
    call is recognised by its saved-arguments tuple), so wake-ups do not extend it."""
    if timeo == 0 or t.timed_out:
        raise Errno(errno.EAGAIN)
    if timeo is None:
        raise Block(*queues)
    now = t.kernel.clock.monotonic()
    token = t.saved_args
    ent = _deadlines.get(t)
    if ent is None or ent[0] is not token:
        ent = (token, now + timeo / HZ)
        _deadlines[t] = ent
    left = ent[1] - now
    if left <= 0:
        raise Errno(errno.EAGAIN)
    raise Block(*queues, timeout=left)


def timeval_to_jiffies(sec: int, usec: int) -> int | None:
    """sock_set_timeout: None is "forever"; a negative time means "never wait"."""
    if usec < 0 or usec >= 1000000:
        raise Errno(errno.EDOM)
    if sec < 0:
        return 0
    if sec == 0 and usec == 0 or sec >= LONG_MAX // HZ - 1:
        return None
    return sec * HZ + -(-usec // (1000000 // HZ))


def jiffies_to_timeval(j: int | None) -> bytes:
    if j is None:
        return struct.pack("<qq", 0, 0)
    return struct.pack("<qq", j // HZ, (j % HZ) * 1000000 // HZ)


class PeerGroupsRange(Errno):
    """ERANGE from SO_PEERGROUPS: getsockopt(2) stores the needed length in *optlen."""

    __slots__ = ("needed",)

    def __init__(self, needed: int) -> None:
        super().__init__(errno.ERANGE)
        self.needed = needed


# -- the file
class Socket(File):
    """A socket file (sockfs inode). Families override the operations they support;
    the defaults refuse the way Linux's sock_no_* helpers do."""

    family = AF_UNSPEC

    def __init__(self, t: "Task", type_: int, flags: int = O_RDWR, protocol: int = 0) -> None:
        super().__init__(O_RDWR | (flags & O_NONBLOCK))
        self.type_ = type_
        self.protocol = protocol
        self.ino = next(_socket_ino)
        self.uid = t.creds.fsuid
        self.gid = t.creds.fsgid
        self.owner_pid = 0            # F_SETOWN / FIOSETOWN (recorded, no SIGIO)
        self.err = 0                  # sk_err: reported once by SO_ERROR or an operation
        self.sndbuf = WMEM_DEFAULT
        self.rcvbuf = RMEM_DEFAULT
        self.rcvtimeo: int | None = None          # jiffies; None: forever
        self.sndtimeo: int | None = None
        self.rcvlowat = 1
        self.peek_off = -1
        self.linger = (0, 0)
        self.opts: dict[int, int] = {}            # the plain boolean/int options
        self.cookie = 0

    def sock_error(self) -> int:
        e, self.err = self.err, 0
        return e

    def rcv_timeo(self, flags: int) -> int | None:
        return 0 if flags & MSG_DONTWAIT else self.rcvtimeo

    def snd_timeo(self, flags: int) -> int | None:
        return 0 if flags & MSG_DONTWAIT else self.sndtimeo

    def listening(self) -> bool:
        return False

    def sndbuf_changed(self) -> None:
        """sk_write_space: more room may make the socket writable."""
        self.waitq.notify()

    # -- file side
    def stat(self) -> Stat:
        return Stat(dev=SOCKFS_DEV, ino=self.ino, mode=S_IFSOCK | 0o777, nlink=1,
                    uid=self.uid, gid=self.gid, blksize=4096)

    def name(self) -> bytes:
        return b"socket:[%d]" % self.ino

    def read(self, t: "Task", n: int) -> bytes:
        if n == 0:
            return b""
        r = self.recvmsg(t, n, MSG_DONTWAIT if self.nonblocking else 0)
        r.drop_fds()                  # no control buffer: passed files are closed
        return r.data

    def write(self, t: "Task", data: bytes) -> int:
        flags = (MSG_DONTWAIT if self.nonblocking else 0) | \
            (MSG_EOR if self.type_ == SOCK_SEQPACKET else 0)
        return self.sendmsg(t, Payload.of(data), None, flags, None)

    def ioctl(self, t: "Task", cmd: int, arg: int) -> int:
        if cmd in (FIOSETOWN, SIOCSPGRP):
            self.owner_pid = t.mm.read_i32(arg)
            return 0
        if cmd in (FIOGETOWN, SIOCGPGRP):
            t.mm.write_i32(arg, self.owner_pid)
            return 0
        raise Errno(errno.ENOTTY)

    # -- socket operations (addresses are raw sockaddr bytes)
    def bind(self, t: "Task", addr: bytes) -> None:
        raise Errno(errno.EOPNOTSUPP)

    def listen(self, t: "Task", backlog: int) -> None:
        raise Errno(errno.EOPNOTSUPP)

    def accept(self, t: "Task", nonblock: bool) -> "Socket":
        raise Errno(errno.EOPNOTSUPP)

    def connect(self, t: "Task", addr: bytes, nonblock: bool) -> None:
        raise Errno(errno.EOPNOTSUPP)

    def sendmsg(self, t: "Task", data: Payload, ctl: SendCtl | None, flags: int,
                addr: bytes | None) -> int:
        raise Errno(errno.EOPNOTSUPP)

    def recvmsg(self, t: "Task", size: int, flags: int) -> RecvResult:
        raise Errno(errno.EOPNOTSUPP)

    def shutdown(self, t: "Task", how: int) -> None:
        raise Errno(errno.EOPNOTSUPP)

    def getsockname(self, t: "Task") -> bytes:
        raise Errno(errno.EOPNOTSUPP)

    def getpeername(self, t: "Task") -> bytes:
        raise Errno(errno.ENOTCONN)

    # -- options: the generic SOL_SOCKET ones (sk_getsockopt / sk_setsockopt); families
    # override for their own and for other levels (EOPNOTSUPP without any)
    def getsockopt(self, t: "Task", level: int, name: int, optlen: int) -> bytes:
        if level != SOL_SOCKET:
            raise Errno(errno.EOPNOTSUPP)
        i = _INT.pack
        if name == SO_TYPE:
            return i(self.type_)
        if name == SO_PROTOCOL:
            return i(self.protocol)
        if name == SO_DOMAIN:
            return i(self.family)
        if name == SO_ERROR:
            return i(self.sock_error())
        if name == SO_ACCEPTCONN:
            return i(int(self.listening()))
        if name == SO_SNDBUF:
            return i(self.sndbuf)
        if name == SO_RCVBUF:
            return i(self.rcvbuf)
        if name in (SO_RCVTIMEO_OLD, SO_RCVTIMEO_NEW):
            return jiffies_to_timeval(self.rcvtimeo)
        if name in (SO_SNDTIMEO_OLD, SO_SNDTIMEO_NEW):
            return jiffies_to_timeval(self.sndtimeo)
        if name == SO_RCVLOWAT:
            return i(self.rcvlowat)
        if name == SO_SNDLOWAT:
            return i(1)
        if name == SO_LINGER:
            return struct.pack("<ii", *self.linger)
        if name == SO_PEEK_OFF:
            return i(self.peek_off)
        if name == SO_COOKIE:
            if not self.cookie:
                self.cookie = next(_cookies)
            return struct.pack("<Q", self.cookie)
        if name == SO_BINDTODEVICE:
            return b""
        if name in _GENERIC_BOOLS:
            return i(self.opts.get(name, 0))
        if name in _GENERIC_INTS:
            return i(self.opts.get(name, _GENERIC_INTS[name]))
        raise Errno(errno.ENOPROTOOPT)

    def setsockopt(self, t: "Task", level: int, name: int, val: bytes) -> None:
        if level != SOL_SOCKET:
            raise Errno(errno.EOPNOTSUPP)
        if len(val) < 4:
            raise Errno(errno.EINVAL)
        v = _INT.unpack_from(val)[0]
        privileged = t.creds.euid == 0          # CAP_NET_ADMIN
        if name in (SO_SNDBUF, SO_SNDBUFFORCE, SO_RCVBUF, SO_RCVBUFFORCE):
            if name in (SO_SNDBUFFORCE, SO_RCVBUFFORCE):
                if not privileged:
                    raise Errno(errno.EPERM)
                v = max(v, 0)
            else:
                v = min(v & 0xFFFFFFFF, WMEM_MAX if name == SO_SNDBUF else RMEM_MAX)
            v = min(v, INT_MAX // 2)
            if name in (SO_SNDBUF, SO_SNDBUFFORCE):
                self.sndbuf = max(v * 2, SOCK_MIN_SNDBUF)
                self.sndbuf_changed()
            else:
                self.rcvbuf = max(v * 2, SOCK_MIN_RCVBUF)
        elif name in (SO_RCVTIMEO_OLD, SO_RCVTIMEO_NEW, SO_SNDTIMEO_OLD, SO_SNDTIMEO_NEW):
            if len(val) < 16:
                raise Errno(errno.EINVAL)
            j = timeval_to_jiffies(*struct.unpack_from("<qq", val))
            if name in (SO_RCVTIMEO_OLD, SO_RCVTIMEO_NEW):
                self.rcvtimeo = j
            else:
                self.sndtimeo = j
        elif name == SO_RCVLOWAT:
            self.rcvlowat = (INT_MAX if v < 0 else v) or 1
        elif name == SO_LINGER:
            if len(val) < 8:
                raise Errno(errno.EINVAL)
            on, secs = struct.unpack_from("<ii", val)
            self.linger = (1, max(secs, 0)) if on else (0, 0)
        elif name == SO_PEEK_OFF:
            self.peek_off = v
        elif name == SO_DEBUG and v and not privileged:
            raise Errno(errno.EACCES)
        elif name in _GENERIC_BOOLS:
            self.opts[name] = int(v != 0)
        elif name == SO_PRIORITY and not 0 <= v <= 6 and not privileged:
            raise Errno(errno.EPERM)
        elif name == SO_MARK and not privileged:
            raise Errno(errno.EPERM)
        elif name in _GENERIC_INTS:
            self.opts[name] = v
        else:
            raise Errno(errno.ENOPROTOOPT)


# -- families
class SocketFamily(Protocol):
    def create(self, t: "Task", type_: int, protocol: int, flags: int) -> Socket: ...

    def socketpair(self, t: "Task", type_: int, protocol: int,
                   flags: int) -> tuple[Socket, Socket]: ...


FAMILIES: dict[int, SocketFamily] = {}


def register_family(domain: int, family: SocketFamily) -> None:
    FAMILIES[domain] = family


# -- guest structures
def read_sockaddr(t: "Task", addr: int, addrlen: int) -> bytes:
    """move_addr_to_kernel: EINVAL for a length outside 0..128, EFAULT if unreadable."""
    if addrlen < 0 or addrlen > SOCKADDR_STORAGE:
        raise Errno(errno.EINVAL)
    return t.mm.copy_in(addr, addrlen) if addrlen else b""


def write_sockaddr(t: "Task", kaddr: bytes, uaddr: int, ulen: int) -> None:
    """move_addr_to_user: copy what fits, store the untruncated length."""
    n = t.mm.read_i32(ulen)
    n = min(n, len(kaddr))
    if n < 0:
        raise Errno(errno.EINVAL)
    if n:
        t.mm.copy_out(uaddr, kaddr[:n])
    t.mm.write_i32(ulen, len(kaddr))


@dataclass(slots=True)
class MsgHdr:
    name: int
    namelen: int
    iov: int
    iovlen: int
    control: int
    controllen: int
    flags: int


def read_msghdr(t: "Task", addr: int) -> MsgHdr:
    return MsgHdr(*_MSGHDR.unpack(t.mm.copy_in(addr, MSGHDR_SIZE)))


def _check_creds(t: "Task", pid: int, uid: int, gid: int) -> None:
    """scm_check_creds: a task may only claim its own ids unless privileged."""
    c = t.creds
    root = c.euid == 0
    if not ((pid == t.pid or root) and (uid in (c.uid, c.euid, c.suid) or root)
            and (gid in (c.gid, c.egid, c.sgid) or root)):
        raise Errno(errno.EPERM)
    procs = getattr(t.kernel, "procs", None)
    if procs is not None and pid not in procs:
        raise Errno(errno.ESRCH)
    if uid == 0xFFFFFFFF or gid == 0xFFFFFFFF:
        raise Errno(errno.EINVAL)


def parse_control(t: "Task", buf: bytes, family: int) -> SendCtl:
    """__scm_send: walk the cmsghdrs as CMSG_FIRSTHDR/CMSG_NXTHDR do; SOL_SOCKET
    messages other than SCM_RIGHTS/SCM_CREDENTIALS are EINVAL, other levels ignored."""
    ctl = SendCtl()
    off, end = 0, len(buf)
    while off + CMSGHDR_SIZE <= end:
        clen, level, ctype = _CMSGHDR.unpack_from(buf, off)
        if clen < CMSGHDR_SIZE or clen > end - off:
            raise Errno(errno.EINVAL)
        if level == SOL_SOCKET:
            body = buf[off + CMSGHDR_SIZE:off + clen]
            if ctype == SCM_RIGHTS:
                if family != AF_UNIX:
                    raise Errno(errno.EINVAL)
                num = len(body) // 4
                if num > SCM_MAX_FD or len(ctl.fds) + num > SCM_MAX_FD:
                    raise Errno(errno.EINVAL)
                for (fd,) in struct.iter_unpack("<i", body[:num * 4]):
                    if fd < 0 or fd not in t.files:
                        raise Errno(errno.EBADF)
                    ctl.fds.append(t.files.get(fd))
            elif ctype == SCM_CREDENTIALS:
                if clen != CMSGHDR_SIZE + _UCRED.size:
                    raise Errno(errno.EINVAL)
                pid, uid, gid = _UCRED.unpack(body)
                _check_creds(t, pid, uid, gid)
                ctl.creds = (pid, uid, gid)
            else:
                raise Errno(errno.EINVAL)
        off += cmsg_align(clen)
    return ctl


def pack_ucred(c: Ucred) -> bytes:
    return _UCRED.pack(c[0], c[1] & 0xFFFFFFFF, c[2] & 0xFFFFFFFF)


class CmsgWriter:
    """The receive side of control messages: put_cmsg and scm_detach_fds, including
    MSG_CTRUNC when the buffer is short and MSG_CMSG_CLOEXEC for received fds."""

    def __init__(self, t: "Task", ptr: int, space: int) -> None:
        self.t = t
        self.ptr = ptr
        self.space = space
        self.used = 0
        self.flags = 0

    def _advance(self, n: int) -> None:
        n = min(n, self.space)
        self.used += n
        self.space -= n

    def put(self, level: int, ctype: int, data: bytes) -> None:
        if self.space < CMSGHDR_SIZE:
            self.flags |= MSG_CTRUNC
            return
        cmlen = CMSGHDR_SIZE + len(data)
        if self.space < cmlen:
            self.flags |= MSG_CTRUNC
            cmlen = self.space
        msg = _CMSGHDR.pack(cmlen, level, ctype) + data[:cmlen - CMSGHDR_SIZE]
        try:
            self.t.mm.copy_out(self.ptr + self.used, msg)
        except Errno:
            return                    # put_cmsg's EFAULT is ignored by its callers
        self._advance(cmsg_align(CMSGHDR_SIZE + len(data)))

    def put_fds(self, files: list[File], cloexec: bool) -> None:
        """Install as many files as fit (and as the fd table allows); the references
        in `files` are consumed either way."""
        t = self.t
        fdmax = 0 if self.space <= CMSGHDR_SIZE else (self.space - CMSGHDR_SIZE) // 4
        fdmax = min(fdmax, len(files))
        fds: list[int] = []
        try:
            for f in files[:fdmax]:
                try:
                    fds.append(t.files.install(f, cloexec))
                except Errno:
                    break
            if fds:
                cmlen = CMSGHDR_SIZE + 4 * len(fds)
                msg = _CMSGHDR.pack(cmlen, SOL_SOCKET, SCM_RIGHTS) + \
                    struct.pack(f"<{len(fds)}i", *fds)
                try:
                    t.mm.copy_out(self.ptr + self.used, msg)
                except Errno:
                    for fd in fds:
                        t.files.close(fd)
                    fds = []
                else:
                    self._advance(cmsg_align(cmlen))
            if len(fds) < len(files):
                self.flags |= MSG_CTRUNC
        finally:
            for f in files:
                put_file(f)
