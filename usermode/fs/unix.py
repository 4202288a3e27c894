"""AF_UNIX sockets (unix(7)): what stream, seqpacket and datagram sockets share.

Naming: a socket is bound to a filesystem path (a S_IFSOCK inode made with the VFS's
mknod; the namespace maps (filesystem, ino) to the socket), to an abstract name (a
leading NUL byte; keyed by type as Linux's hash is), or autobound to "\\0XXXXX".

Buffers follow Linux's accounting: every queued message (skb) charges its sender's
`wmem` with the skb truesize Linux would charge, a send may proceed while
wmem < SO_SNDBUF, and POLLOUT is reported while 4 * wmem <= SO_SNDBUF. So nonblocking
writers see EAGAIN after the same number of bytes as on Linux.

The subclasses (unix_stream.py, unix_dgram.py) register themselves in UNIX_TYPES.
Blocking: handlers raise Block before changing anything; see wait() for timeouts.
"""
from __future__ import annotations

import errno
import struct
import weakref
from collections import deque
from typing import TYPE_CHECKING, NoReturn

from usermode.fs.fdtable import put_file
from usermode.fs.file import O_RDWR, File
from usermode.fs.perm import MAY_WRITE, check
from usermode.fs.socket_common import (AF_UNIX, FIONREAD, MSG_DONTWAIT, SIOCOUTQ, SO_ACCEPTCONN,
                                       SO_BINDTODEVICE, SO_BROADCAST, SO_BUSY_POLL,
                                       SO_COOKIE, SO_DEBUG, SO_DOMAIN, SO_DONTROUTE,
                                       SO_ERROR, SO_INCOMING_CPU, SO_KEEPALIVE, SO_LINGER,
                                       SO_MARK, SO_NO_CHECK, SO_NOFCS, SO_OOBINLINE,
                                       SO_PASSCRED, SO_PASSSEC, SO_PEERCRED, SO_PEERGROUPS,
                                       SO_PEERNAME, SO_PEERSEC, SO_PEEK_OFF, SO_PRIORITY,
                                       SO_PROTOCOL, SO_RCVBUF, SO_RCVBUFFORCE, SO_RCVLOWAT,
                                       SO_RCVTIMEO_NEW, SO_RCVTIMEO_OLD, SO_REUSEADDR,
                                       SO_REUSEPORT, SO_RXQ_OVFL, SO_SELECT_ERR_QUEUE,
                                       SO_SNDBUF, SO_SNDBUFFORCE, SO_SNDLOWAT,
                                       SO_SNDTIMEO_NEW, SO_SNDTIMEO_OLD, SO_TIMESTAMP_NEW,
                                       SO_TIMESTAMP_OLD, SO_TIMESTAMPNS_NEW,
                                       SO_TIMESTAMPNS_OLD, SO_TYPE, SO_WIFI_STATUS,
                                       SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET, SOCK_STREAM,
                                       SOL_SOCKET, INT_MAX, Socket, Ucred, pack_ucred)
from usermode.fs.stat import S_IFMT, S_IFSOCK
from usermode.kernel.errors import Block, Errno
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.kernel.task import Task

TCP_ESTABLISHED, TCP_CLOSE, TCP_LISTEN = 1, 7, 10
RCV_SHUTDOWN, SEND_SHUTDOWN, SHUTDOWN_MASK = 1, 2, 3
SUN_PATH = 2                                  # offsetof(struct sockaddr_un, sun_path)
SOCKADDR_UN_SIZE = 110
UNNAMED = struct.pack("<H", AF_UNIX)          # what getsockname reports for no name
AT_FDCWD = -100
WMEM_DEFAULT = RMEM_DEFAULT = 212992          # net.core.[wr]mem_default
WMEM_MAX = RMEM_MAX = 212992                  # net.core.[wr]mem_max
SOCK_MIN_SNDBUF, SOCK_MIN_RCVBUF = 4608, 2304
MAX_DGRAM_QLEN = 10                           # net.unix.max_dgram_qlen
SOMAXCONN = 4096
HZ = 250                                      # socket timeouts are kept in jiffies
OVERFLOW_ID = 65534
SKB_SHINFO, SKB_HEAD = 320, 256               # aligned skb_shared_info / sk_buff sizes

_GENERIC_BOOLS = {SO_REUSEADDR, SO_DONTROUTE, SO_BROADCAST, SO_KEEPALIVE, SO_OOBINLINE,
                  SO_NO_CHECK, SO_REUSEPORT, SO_TIMESTAMP_OLD, SO_PASSSEC,
                  SO_TIMESTAMPNS_OLD, SO_RXQ_OVFL, SO_WIFI_STATUS, SO_NOFCS,
                  SO_SELECT_ERR_QUEUE, SO_TIMESTAMP_NEW, SO_TIMESTAMPNS_NEW, SO_DEBUG}
_GENERIC_INTS = {SO_PRIORITY: 0, SO_MARK: 0, SO_BUSY_POLL: 0, SO_INCOMING_CPU: -1}
_cookies = iter(range(1, 1 << 62))


def skb_truesize(head: int, paged: int = 0) -> int:
    """What an skb with `head` linear bytes and `paged` bytes in page frags charges:
    kmalloc rounds the aligned head plus skb_shared_info up to a power of two, and the
    frags take whole pages."""
    need = ((head + 63) & ~63) + SKB_SHINFO
    return (1 << (need - 1).bit_length()) + SKB_HEAD + ((paged + 4095) & ~4095)


class Skb:
    """One queued message: stream sockets consume it from `off`; it charges `truesize`
    to its sender until it is freed."""

    __slots__ = ("data", "off", "sender", "creds", "fds", "truesize")

    def __init__(self, data: bytes, sender: "UnixSocket", creds: Ucred | None,
                 fds: list[File] | None, truesize: int) -> None:
        self.data = data
        self.off = 0
        self.sender = sender
        self.creds = creds
        self.fds = fds
        self.truesize = truesize

    @property
    def left(self) -> int:
        return len(self.data) - self.off


class UnixNamespace:
    """The names of one kernel's unix sockets (Linux: the net namespace's table and the
    bsd_socket_buckets keyed by inode)."""

    def __init__(self) -> None:
        self.abstract: dict[tuple[int, bytes], UnixSocket] = {}
        self.bsd: dict[tuple[object, int], UnixSocket] = {}
        self.next_auto = 0


_namespaces: "weakref.WeakKeyDictionary[object, UnixNamespace]" = weakref.WeakKeyDictionary()
_deadlines: "weakref.WeakKeyDictionary[Task, tuple[object, float]]" = \
    weakref.WeakKeyDictionary()


def namespace_of(kernel: object) -> UnixNamespace:
    ns = _namespaces.get(kernel)
    if ns is None:
        ns = _namespaces[kernel] = UnixNamespace()
    return ns


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


def peer_cred_of(t: "Task") -> tuple[int, int, int, list[int]]:
    """init_peercred: the tgid and effective ids (and groups) of the current task."""
    c = t.creds
    return (t.pid, c.euid, c.egid, list(c.groups))


def current_ucred(t: "Task") -> Ucred:
    """What SCM_CREDENTIALS carries by default: tgid and real ids."""
    return (t.pid, t.creds.uid, t.creds.gid)


def validate_addr(addr: bytes) -> None:
    if len(addr) <= SUN_PATH or len(addr) > SOCKADDR_UN_SIZE or \
            struct.unpack_from("<H", addr)[0] != AF_UNIX:
        raise Errno(errno.EINVAL)


def bsd_path(addr: bytes) -> bytes:
    """unix_mkname_bsd: sun_path up to its first NUL (or the end of addrlen)."""
    return addr[SUN_PATH:].split(b"\0", 1)[0]


def timeval_to_jiffies(sec: int, usec: int) -> int | None:
    if usec < 0 or usec >= 1000000:
        raise Errno(errno.EDOM)
    if sec < 0:
        return 0
    if sec == 0 and usec == 0 or sec >= (INT_MAX * 2 + 1) // HZ - 1:
        return None
    return sec * HZ + -(-usec // (1000000 // HZ))


def jiffies_to_timeval(j: int | None) -> bytes:
    if j is None:
        return struct.pack("<qq", 0, 0)
    return struct.pack("<qq", j // HZ, (j % HZ) * 1000000 // HZ)


class UnixSocket(Socket):
    family = AF_UNIX

    def __init__(self, t: "Task", type_: int, flags: int = O_RDWR,
                 ns: UnixNamespace | None = None) -> None:
        super().__init__(t, type_, flags)
        self.ns = ns if ns is not None else namespace_of(t.kernel)
        self.state = TCP_CLOSE
        self.addr: bytes | None = None        # sockaddr bytes as getsockname returns them
        self.bound: tuple[str, object] | None = None
        self.peer: UnixSocket | None = None
        self.queue: deque[Skb] = deque()
        self.wmem = 0
        self.shut = 0
        self.err = 0
        self.dead = False
        self.embryo = False                   # queued on a listener, not yet accepted
        self.peer_cred: tuple[int, int, int, list[int]] | None = None
        self.max_backlog = MAX_DGRAM_QLEN     # sk_max_ack_backlog
        self.pending: deque[UnixSocket] = deque()     # embryos, for listeners
        self.peer_wait = WaitQueue()          # connectors / dgram senders waiting on us
        self.connected_from: "weakref.WeakSet[UnixSocket]" = weakref.WeakSet()
        self.writers: "weakref.WeakSet[Task]" = weakref.WeakSet()  # blocked in send
        self.passcred = False
        self.sndbuf = WMEM_DEFAULT
        self.rcvbuf = RMEM_DEFAULT
        self.rcvtimeo: int | None = None
        self.sndtimeo: int | None = None
        self.rcvlowat = 1
        self.peek_off = -1
        self.linger = (0, 0)
        self.opts: dict[int, int] = {}
        self.cookie = 0

    # -- helpers for subclasses
    def sock_error(self) -> int:
        e, self.err = self.err, 0
        return e

    def rcv_timeo(self, flags: int) -> int | None:
        return 0 if flags & MSG_DONTWAIT else self.rcvtimeo

    def snd_timeo(self, flags: int) -> int | None:
        return 0 if flags & MSG_DONTWAIT else self.sndtimeo

    def writable(self) -> bool:
        """unix_writable"""
        return self.state != TCP_LISTEN and self.wmem * 4 <= self.sndbuf

    def recvq_full(self) -> bool:
        return len(self.queue) > self.max_backlog

    def creds_for(self, t: "Task", given: Ucred | None, other: "UnixSocket") -> Ucred | None:
        """maybe_add_creds: explicit credentials, else the sender's if either side asked
        for SO_PASSCRED (or the receiver is not accepted yet)."""
        if given is not None:
            return given
        if self.passcred or other.passcred or other.embryo:
            return current_ucred(t)
        return None

    def enqueue(self, other: "UnixSocket", skb: Skb) -> None:
        self.wmem += skb.truesize
        other.queue.append(skb)

    def free_skb(self, skb: Skb) -> None:
        """An skb leaves a queue for good: uncharge its sender, drop passed files."""
        s = skb.sender
        s.wmem -= skb.truesize
        s.waitq.notify()
        if skb.fds:
            fds, skb.fds = skb.fds, None
            for f in fds:
                put_file(f)

    def take_fds(self, skb: Skb, peek: bool) -> list[File] | None:
        """The files of skb for a receiver: moved out, or (MSG_PEEK) duplicated."""
        if not skb.fds:
            return None
        if peek:
            for f in skb.fds:
                f.refs += 1
            return list(skb.fds)
        fds, skb.fds = skb.fds, None
        return fds

    def purge(self) -> None:
        q, self.queue = self.queue, deque()
        for skb in q:
            self.free_skb(skb)

    def dequeued(self) -> None:
        """Room appeared in our queue: wake connectors / senders waiting on it."""
        self.peer_wait.notify()
        for s in list(self.connected_from):
            s.waitq.notify()

    # -- names
    def bind(self, t: "Task", addr: bytes) -> None:
        if len(addr) == SUN_PATH and struct.unpack("<H", addr)[0] == AF_UNIX:
            self.autobind()
            return
        validate_addr(addr)
        if addr[SUN_PATH]:
            self._bind_bsd(t, addr)
        else:
            self._bind_abstract(addr)

    def _bind_bsd(self, t: "Task", addr: bytes) -> None:
        path = bsd_path(addr)
        vfs = t.fs.vfs
        try:
            vfs.mknod(t, AT_FDCWD, path, S_IFSOCK | 0o777, 0)
        except Errno as e:
            raise Errno(errno.EADDRINUSE) if e.errno == errno.EEXIST else e
        if self.addr is not None:
            try:
                vfs.unlink(t, AT_FDCWD, path)
            except Errno:
                pass
            raise Errno(errno.EINVAL)
        inode = vfs.lookup(t, AT_FDCWD, path, follow=False).dentry.inode
        key = (inode.sb, inode.ino)
        self.ns.bsd[key] = self
        self.bound = ("bsd", key)
        self.addr = addr[:SUN_PATH] + path + b"\0"

    def _bind_abstract(self, addr: bytes) -> None:
        if self.addr is not None:
            raise Errno(errno.EINVAL)
        key = (self.type_, addr)
        if key in self.ns.abstract:
            raise Errno(errno.EADDRINUSE)
        self._set_abstract(key)

    def _set_abstract(self, key: tuple[int, bytes]) -> None:
        self.ns.abstract[key] = self
        self.bound = ("abstract", key)
        self.addr = key[1]

    def autobind(self) -> None:
        """unix_autobind: "\\0" and five hex digits; a bound socket keeps its name."""
        if self.addr is not None:
            return
        ns = self.ns
        for _ in range(1 << 20):
            n = ns.next_auto
            ns.next_auto = (n + 1) & 0xFFFFF
            key = (self.type_, UNNAMED + b"\0%05x" % n)
            if key not in ns.abstract:
                self._set_abstract(key)
                return
        raise Errno(errno.ENOSPC)

    def unhash(self) -> None:
        if self.bound is None:
            return
        kind, key = self.bound
        table: dict = self.ns.bsd if kind == "bsd" else self.ns.abstract
        if table.get(key) is self:
            del table[key]
        self.bound = None

    def find_other(self, t: "Task", addr: bytes) -> "UnixSocket":
        """unix_find_other: by path (write permission on the inode, EPROTOTYPE for a
        socket of another type) or by abstract name (per type)."""
        if addr[SUN_PATH]:
            p = t.fs.vfs.lookup(t, AT_FDCWD, bsd_path(addr), follow=True)
            inode = p.dentry.inode
            check(t.creds, inode, MAY_WRITE)
            if inode.mode & S_IFMT != S_IFSOCK:
                raise Errno(errno.ECONNREFUSED)
            other = self.ns.bsd.get((inode.sb, inode.ino))
            if other is None or other.dead:
                raise Errno(errno.ECONNREFUSED)
            if other.type_ != self.type_:
                raise Errno(errno.EPROTOTYPE)
            return other
        other = self.ns.abstract.get((self.type_, addr))
        if other is None or other.dead:
            raise Errno(errno.ECONNREFUSED)
        return other

    def getsockname(self, t: "Task") -> bytes:
        return self.addr if self.addr is not None else UNNAMED

    def getpeername(self, t: "Task") -> bytes:
        if self.peer is None:
            raise Errno(errno.ENOTCONN)
        return self.peer.addr if self.peer.addr is not None else UNNAMED

    # -- shutdown / close
    def shutdown(self, t: "Task", how: int) -> None:
        if how < 0 or how > 2:
            raise Errno(errno.EINVAL)
        mode = how + 1
        self.shut |= mode
        self.waitq.notify()
        other = self.peer
        if other is not None and self.type_ in (SOCK_STREAM, SOCK_SEQPACKET):
            peer_mode = (SEND_SHUTDOWN if mode & RCV_SHUTDOWN else 0) | \
                (RCV_SHUTDOWN if mode & SEND_SHUTDOWN else 0)
            other.shut |= peer_mode
            other.waitq.notify()

    def release(self) -> None:
        self.release_sock(False)

    def release_sock(self, embryo: bool) -> None:
        """unix_release_sock: the peer of a connection sees both directions shut (and
        ECONNRESET if we leave unread data, or were never accepted); queued messages are
        freed; a listener's unaccepted connections are released too."""
        self.unhash()
        self.shut = SHUTDOWN_MASK
        was = self.state
        self.state = TCP_CLOSE
        self.dead = True
        skpair, self.peer = self.peer, None
        self.peer_wait.notify()
        if skpair is not None:
            if self.type_ in (SOCK_STREAM, SOCK_SEQPACKET):
                skpair.shut = SHUTDOWN_MASK
                q = self.queue           # a leading empty skb does not count (Linux 6.15+)
                if q and (q[0].left or len(q) > 1) or embryo:
                    skpair.err = errno.ECONNRESET
                skpair.waitq.notify()
            else:
                skpair.connected_from.discard(self)
        for s in list(self.connected_from):
            s.waitq.notify()
        self.purge()
        if was == TCP_LISTEN:
            pending, self.pending = self.pending, deque()
            for e in pending:
                e.release_sock(True)
        self.waitq.notify()

    # -- ioctl
    def inq_len(self) -> int:
        if self.state == TCP_LISTEN:
            raise Errno(errno.EINVAL)
        if self.type_ == SOCK_DGRAM:
            return len(self.queue[0].data) if self.queue else 0
        return sum(s.left for s in self.queue)

    def ioctl(self, t: "Task", cmd: int, arg: int) -> int:
        if cmd == FIONREAD:
            t.mm.write_i32(arg, self.inq_len())
            return 0
        if cmd == SIOCOUTQ:
            t.mm.write_i32(arg, self.wmem)
            return 0
        return super().ioctl(t, cmd, arg)

    # -- options
    def getsockopt(self, t: "Task", level: int, name: int, optlen: int) -> bytes:
        if level != SOL_SOCKET:
            raise Errno(errno.EOPNOTSUPP)
        i = struct.Struct("<i").pack
        if name == SO_TYPE:
            return i(self.type_)
        if name == SO_PROTOCOL:
            return i(0)
        if name == SO_DOMAIN:
            return i(AF_UNIX)
        if name == SO_ERROR:
            return i(self.sock_error())
        if name == SO_ACCEPTCONN:
            return i(int(self.state == TCP_LISTEN))
        if name == SO_SNDBUF:
            return i(self.sndbuf)
        if name == SO_RCVBUF:
            return i(self.rcvbuf)
        if name == SO_PASSCRED:
            return i(int(self.passcred))
        if name == SO_PEERCRED:
            pc = self.peer_cred
            return pack_ucred((pc[0], pc[1], pc[2]) if pc else (0, -1, -1))
        if name == SO_PEERGROUPS:
            groups = self.peer_cred[3] if self.peer_cred else []
            if optlen < 4 * len(groups):
                raise _Range(4 * len(groups))
            return struct.pack(f"<{len(groups)}I", *groups)
        if name == SO_PEERNAME:
            name_ = self.getpeername(t)
            if optlen < len(name_):
                raise Errno(errno.EINVAL)
            return name_
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
        v = struct.unpack_from("<i", val)[0]
        privileged = t.creds.euid == 0
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
                self.waitq.notify()
            else:
                self.rcvbuf = max(v * 2, SOCK_MIN_RCVBUF)
        elif name == SO_PASSCRED:
            self.passcred = v != 0
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
        elif name == SO_DEBUG:
            if v and not privileged:
                raise Errno(errno.EACCES)
            self.opts[name] = int(v != 0)
        elif name in _GENERIC_BOOLS:
            self.opts[name] = int(v != 0)
        elif name == SO_PRIORITY:
            if not 0 <= v <= 6 and not privileged:
                raise Errno(errno.EPERM)
            self.opts[name] = v
        elif name == SO_MARK:
            if not privileged:
                raise Errno(errno.EPERM)
            self.opts[name] = v
        elif name in _GENERIC_INTS:
            self.opts[name] = v
        else:
            raise Errno(errno.ENOPROTOOPT)


class _Range(Errno):
    """ERANGE from SO_PEERGROUPS: the caller stores the needed length in *optlen."""

    __slots__ = ("needed",)

    def __init__(self, needed: int) -> None:
        super().__init__(errno.ERANGE)
        self.needed = needed


PeerGroupsRange = _Range

# SOCK_* -> class; filled by unix_stream.py and unix_dgram.py
UNIX_TYPES: dict[int, type[UnixSocket]] = {}


class UnixFamily:
    """The AF_UNIX entry of the family registry (unix_create / unix_socketpair)."""

    def _cls(self, type_: int, protocol: int) -> tuple[type[UnixSocket], int]:
        if protocol and protocol != AF_UNIX:
            raise Errno(errno.EPROTONOSUPPORT)
        if type_ == SOCK_RAW:
            type_ = SOCK_DGRAM
        cls = UNIX_TYPES.get(type_)
        if cls is None:
            raise Errno(errno.ESOCKTNOSUPPORT)
        return cls, type_

    def create(self, t: "Task", type_: int, protocol: int, flags: int) -> UnixSocket:
        cls, type_ = self._cls(type_, protocol)
        return cls(t, type_, O_RDWR | flags)

    def socketpair(self, t: "Task", type_: int, protocol: int,
                   flags: int) -> tuple[UnixSocket, UnixSocket]:
        a = self.create(t, type_, protocol, flags)
        b = self.create(t, type_, protocol, flags)
        a.peer, b.peer = b, a
        a.peer_cred = b.peer_cred = peer_cred_of(t)
        a.state = b.state = TCP_ESTABLISHED
        if a.type_ == SOCK_DGRAM:
            a.connected_from.add(b)
            b.connected_from.add(a)
        return a, b


UNIX_FAMILY = UnixFamily()
