"""AF_UNIX sockets (unix(7)): what stream, seqpacket and datagram sockets share.

Naming: a socket is bound to a filesystem path (a S_IFSOCK inode made with the VFS's
mknod; the namespace maps (filesystem, ino) to the socket), to an abstract name (a
leading NUL byte; keyed by type as Linux's hash is), or autobound to "\\0XXXXX".

Buffers follow Linux's accounting: every queued message (skb) charges its sender's
`wmem` with the skb truesize Linux would charge, a send may proceed while
wmem < SO_SNDBUF, and POLLOUT is reported while 4 * wmem <= SO_SNDBUF. So nonblocking
writers see EAGAIN after the same number of bytes as on Linux.

The subclasses (unix_stream.py, unix_dgram.py) register themselves in UNIX_TYPES.
Blocking: handlers raise Block before changing anything (but see the MSG_WAITALL
stash in unix_stream.py); socket_common.wait() keeps SO_RCVTIMEO/SO_SNDTIMEO deadlines.
"""
from __future__ import annotations

import errno
import struct
import weakref
from collections import deque
from typing import TYPE_CHECKING

from usermode.fs.fdtable import put_file
from usermode.fs.file import O_RDWR, File
from usermode.fs.perm import MAY_WRITE, check
from usermode.fs.socket_common import (AF_UNIX, FIONREAD, SIOCOUTQ, SO_PASSCRED,
                                       SO_PEERCRED, SO_PEERGROUPS, SO_PEERNAME, SOCK_DGRAM,
                                       SOCK_RAW, SOCK_SEQPACKET, SOCK_STREAM, SOL_SOCKET,
                                       PeerGroupsRange, Socket, Ucred, pack_ucred)
from usermode.fs.stat import S_IFMT, S_IFSOCK
from usermode.kernel.errors import Errno
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.kernel.task import Task

TCP_ESTABLISHED, TCP_CLOSE, TCP_LISTEN = 1, 7, 10
RCV_SHUTDOWN, SEND_SHUTDOWN, SHUTDOWN_MASK = 1, 2, 3
SUN_PATH = 2                                  # offsetof(struct sockaddr_un, sun_path)
SOCKADDR_UN_SIZE = 110
UNNAMED = struct.pack("<H", AF_UNIX)          # what getsockname reports for no name
AT_FDCWD = -100
MAX_DGRAM_QLEN = 10                           # net.unix.max_dgram_qlen
OVERFLOW_ID = 65534
SKB_SHINFO, SKB_HEAD = 320, 256               # aligned skb_shared_info / sk_buff sizes

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


def namespace_of(kernel: object) -> UnixNamespace:
    ns = _namespaces.get(kernel)
    if ns is None:
        ns = _namespaces[kernel] = UnixNamespace()
    return ns


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
        self.dead = False
        self.embryo = False                   # queued on a listener, not yet accepted
        self.peer_cred: tuple[int, int, int, list[int]] | None = None
        self.max_backlog = MAX_DGRAM_QLEN     # sk_max_ack_backlog
        self.pending: deque[UnixSocket] = deque()     # embryos, for listeners
        self.peer_wait = WaitQueue()          # connectors / dgram senders waiting on us
        self.connected_from: "weakref.WeakSet[UnixSocket]" = weakref.WeakSet()
        self.passcred = False

    # -- helpers for subclasses
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

    # -- options (the generic SOL_SOCKET ones are Socket's)
    def listening(self) -> bool:
        return self.state == TCP_LISTEN

    def getsockopt(self, t: "Task", level: int, name: int, optlen: int) -> bytes:
        if level == SOL_SOCKET:
            if name == SO_PASSCRED:
                return struct.pack("<i", int(self.passcred))
            if name == SO_PEERCRED:
                pc = self.peer_cred
                return pack_ucred((pc[0], pc[1], pc[2]) if pc else (0, -1, -1))
            if name == SO_PEERGROUPS:
                if self.peer_cred is None:
                    raise Errno(errno.ENODATA)
                groups = self.peer_cred[3]
                if optlen < 4 * len(groups):
                    raise PeerGroupsRange(4 * len(groups))
                return struct.pack(f"<{len(groups)}I", *groups)
            if name == SO_PEERNAME:
                name_ = self.getpeername(t)
                if len(name_) < optlen:       # sic: Linux refuses a buffer that is too big
                    raise Errno(errno.EINVAL)
                return name_
        return super().getsockopt(t, level, name, optlen)

    def setsockopt(self, t: "Task", level: int, name: int, val: bytes) -> None:
        if level == SOL_SOCKET and name == SO_PASSCRED:
            if len(val) < 4:
                raise Errno(errno.EINVAL)
            self.passcred = struct.unpack_from("<i", val)[0] != 0
            return
        super().setsockopt(t, level, name, val)


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
