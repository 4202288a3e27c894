"""AF_UNIX datagram sockets, and the message half of SOCK_SEQPACKET (Linux's
unix_dgram_sendmsg / unix_dgram_recvmsg / unix_dgram_poll / unix_dgram_connect).

Messages keep their boundaries; a short receive buffer drops the rest (MSG_TRUNC).
A datagram receiver that is not connected back to its sender accepts at most
max_dgram_qlen + 1 queued messages (senders then wait on its peer_wait, or EAGAIN).
"""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from usermode.fs.file import POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP, POLLRDNORM, POLLWRNORM
from usermode.fs.socket_common import (AF_UNSPEC, MSG_OOB, MSG_PEEK, MSG_TRUNC, POLLWRBAND,
                                       SOCK_DGRAM, SOCK_SEQPACKET, Payload, RecvResult,
                                       SendCtl, wait)
from usermode.fs.unix import (OVERFLOW_ID, RCV_SHUTDOWN, SEND_SHUTDOWN, SHUTDOWN_MASK,
                              TCP_CLOSE, TCP_ESTABLISHED, UNIX_TYPES, Skb, UnixSocket,
                              skb_truesize, validate_addr)
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.kernel.task import Task

SKB_MAX_ALLOC = (4096 << 2) - 320             # linear part of a datagram skb
MAX_SKB_FRAGS = 17


def dgram_truesize(n: int) -> int:
    paged = 0
    if n > SKB_MAX_ALLOC:
        paged = (min(n - SKB_MAX_ALLOC, MAX_SKB_FRAGS * 4096) + 4095) & ~4095
    return skb_truesize(n - paged, paged)


def may_send(sk: UnixSocket, other: UnixSocket) -> bool:
    """A receiver connected to someone else refuses everyone else (EPERM)."""
    return other.peer is None or other.peer is sk


def disconnect(sk: UnixSocket, old: UnixSocket) -> None:
    """Our peer is gone or replaced: messages from it are dropped (unix_dgram_disconnected)."""
    old.connected_from.discard(sk)
    sk.waitq.notify()
    if sk.queue:
        sk.purge()
        sk.peer_wait.notify()
        if not old.dead and old.peer is sk:
            old.err = errno.ECONNRESET
            old.waitq.notify()


def dgram_send(sk: UnixSocket, t: "Task", data: Payload, ctl: SendCtl | None, flags: int,
               addr: bytes | None) -> int:
    if flags & MSG_OOB:
        raise Errno(errno.EOPNOTSUPP)
    if addr is not None:
        validate_addr(addr)
    if sk.passcred and sk.addr is None:
        sk.autobind()
    n = data.size
    if n > sk.sndbuf - 32:
        raise Errno(errno.EMSGSIZE)
    timeo = sk.snd_timeo(flags)
    # sock_alloc_send_pskb: pending error, our own SHUT_WR, then room in our wmem
    e = sk.sock_error()
    if e:
        raise Errno(e)
    if sk.shut & SEND_SHUTDOWN:
        raise Errno(errno.EPIPE)
    if sk.wmem >= sk.sndbuf:
        wait(t, timeo, sk.waitq)
    payload = data.read(n)
    if addr is not None:
        other = sk.find_other(t, addr)
    else:
        other = sk.peer
        if other is None:
            raise Errno(errno.ENOTCONN)
    if not may_send(sk, other):
        raise Errno(errno.EPERM)
    if other.dead:
        if sk.type_ == SOCK_SEQPACKET:
            raise Errno(errno.EPIPE)
        if sk.peer is other:
            sk.peer = None
            sk.state = TCP_CLOSE
            disconnect(sk, other)
            raise Errno(errno.ECONNREFUSED)
        raise Errno(errno.ECONNRESET)
    if other.shut & RCV_SHUTDOWN:
        raise Errno(errno.EPIPE)
    if other is not sk and other.peer is not sk and other.recvq_full():
        wait(t, timeo, other.peer_wait)
    fds = list(ctl.fds) if ctl is not None and ctl.fds else None
    for f in fds or ():
        f.refs += 1
    creds = sk.creds_for(t, ctl.creds if ctl is not None else None, other)
    sk.enqueue(other, Skb(payload, sk, creds, fds, dgram_truesize(n)))
    other.waitq.notify()
    return n


def dgram_recv(sk: UnixSocket, t: "Task", size: int, flags: int) -> RecvResult:
    if flags & MSG_OOB:
        raise Errno(errno.EOPNOTSUPP)
    timeo = sk.rcv_timeo(flags)
    e = sk.sock_error()
    if e:
        raise Errno(e)
    if not sk.queue:
        if sk.shut & RCV_SHUTDOWN and (timeo != 0 or sk.type_ == SOCK_SEQPACKET):
            return RecvResult(b"", 0)
        wait(t, timeo, sk.waitq)
    peek = bool(flags & MSG_PEEK)
    skb = sk.queue[0]
    data = skb.data
    out, rflags = data, 0
    if size < len(data):
        out, rflags = data[:size], MSG_TRUNC
    r = RecvResult(out, len(data) if flags & MSG_TRUNC else len(out), rflags,
                   skb.sender.addr or b"", None, sk.take_fds(skb, peek))
    if sk.passcred:
        r.creds = skb.creds or (0, OVERFLOW_ID, OVERFLOW_ID)
    if not peek:
        sk.queue.popleft()
        sk.free_skb(skb)
        sk.dequeued()
    return r


def dgram_poll(sk: UnixSocket) -> int:
    mask = 0
    if sk.err:
        mask |= POLLERR
    if sk.shut & RCV_SHUTDOWN:
        mask |= POLLRDHUP | POLLIN | POLLRDNORM
    if sk.shut == SHUTDOWN_MASK:
        mask |= POLLHUP
    if sk.queue or sk.pending:
        mask |= POLLIN | POLLRDNORM
    if sk.type_ == SOCK_SEQPACKET and sk.state == TCP_CLOSE:
        mask |= POLLHUP
    writable = sk.writable()
    other = sk.peer
    if writable and other is not None and other.peer is not sk and other.recvq_full() \
            and not other.dead:
        writable = False
    if writable:
        mask |= POLLOUT | POLLWRNORM | POLLWRBAND
    return mask


class UnixDgramSocket(UnixSocket):
    """SOCK_DGRAM (and SOCK_RAW, which AF_UNIX turns into SOCK_DGRAM)."""

    def connect(self, t: "Task", addr: bytes, nonblock: bool) -> None:
        """connect(2) sets the default destination and the only accepted source;
        AF_UNSPEC dissolves the association."""
        if len(addr) < 2:
            raise Errno(errno.EINVAL)
        other: UnixSocket | None = None
        if struct.unpack_from("<H", addr)[0] != AF_UNSPEC:
            validate_addr(addr)
            if self.passcred and self.addr is None:
                self.autobind()
            other = self.find_other(t, addr)
            if not may_send(self, other):
                raise Errno(errno.EPERM)
            self.state = TCP_ESTABLISHED
        old, self.peer = self.peer, other
        if old is not None:
            if other is None:
                self.state = TCP_CLOSE
            if other is not old:
                disconnect(self, old)
        if other is not None:
            other.connected_from.add(self)

    def sendmsg(self, t: "Task", data: Payload, ctl: SendCtl | None, flags: int,
                addr: bytes | None) -> int:
        return dgram_send(self, t, data, ctl, flags, addr)

    def recvmsg(self, t: "Task", size: int, flags: int) -> RecvResult:
        return dgram_recv(self, t, size, flags)

    def poll(self) -> int:
        return dgram_poll(self)


UNIX_TYPES[SOCK_DGRAM] = UnixDgramSocket
