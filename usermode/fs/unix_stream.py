"""AF_UNIX connection sockets: SOCK_STREAM (bytes) and SOCK_SEQPACKET (messages, sent
and received by unix_dgram.py's functions): listen, connect, accept, and the stream
send/receive paths (Linux's unix_stream_connect / unix_accept / unix_stream_sendmsg /
unix_stream_read_generic / unix_poll).

connect() queues a new "embryo" socket, already connected to the caller, on the
listener; accept() hands it out. Data may be sent before accept.

Where Linux would sleep in the middle of a call that already moved data we cannot
(a handler is re-run from scratch after a wake), so:
- a blocking send that fits into an empty buffer waits until it fits whole; a larger one
  sends what fits now and returns a short count (as pipes do past PIPE_BUF);
- MSG_WAITALL / SO_RCVLOWAT reads take what is queued into a per-call stash and wait for
  the rest, as Linux does; if that call is abandoned (a signal, a restart, an exit) the
  stash goes back to the head of the queue, so nothing is lost (Linux would return the
  partial count instead).
"""
from __future__ import annotations

import errno
import weakref
from typing import TYPE_CHECKING

from usermode.fs.file import (O_RDWR, POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP,
                              POLLRDNORM, POLLWRNORM, File)
from usermode.fs.socket_common import (MSG_NOSIGNAL, MSG_OOB, MSG_PEEK, MSG_WAITALL,
                                       POLLWRBAND, SIGPIPE, SOCK_SEQPACKET, SOCK_STREAM,
                                       Payload, RecvResult, SendCtl, wait)
from usermode.fs.unix import (OVERFLOW_ID, RCV_SHUTDOWN, SEND_SHUTDOWN, SHUTDOWN_MASK,
                              TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN, UNIX_TYPES, Skb,
                              Ucred, UnixSocket, peer_cred_of, skb_truesize, validate_addr)
from usermode.fs.unix_dgram import dgram_poll, dgram_recv, dgram_send
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.kernel.task import Task

SKB_MAX_HEAD0 = 4096 - 320                    # linear part of a stream skb
FRAGS_SZ = 32768                              # UNIX_SKB_FRAGS_SZ


_ANY = object()                               # _walk: no credentials seen yet


def stream_truesize(size: int) -> int:
    paged = min(size, (max(0, size - SKB_MAX_HEAD0) + 4095) & ~4095)
    return skb_truesize(size - paged, paged)


class Stash:
    """Bytes a waiting MSG_WAITALL read has taken so far (its call is `token`)."""

    __slots__ = ("owner", "token", "data", "sender", "creds")

    def __init__(self, t: "Task", sender: UnixSocket, creds: Ucred | None) -> None:
        self.owner = weakref.ref(t)
        self.token = t.saved_args
        self.data = bytearray()
        self.sender = sender
        self.creds = creds


class UnixStreamSocket(UnixSocket):
    stash: Stash | None = None

    # -- connections
    def listen(self, t: "Task", backlog: int) -> None:
        if self.addr is None or self.state not in (TCP_CLOSE, TCP_LISTEN):
            raise Errno(errno.EINVAL)
        if backlog > self.max_backlog:
            self.peer_wait.notify()
        self.max_backlog = backlog
        self.state = TCP_LISTEN
        self.peer_cred = peer_cred_of(t)
        self.waitq.notify()

    def connect(self, t: "Task", addr: bytes, nonblock: bool) -> None:
        validate_addr(addr)
        if self.passcred and self.addr is None:
            self.autobind()
        other = self.find_other(t, addr)
        if other.state != TCP_LISTEN or other.shut & RCV_SHUTDOWN:
            raise Errno(errno.ECONNREFUSED)
        if len(other.pending) > other.max_backlog:
            wait(t, 0 if nonblock else self.sndtimeo, other.peer_wait)
        if self.state != TCP_CLOSE:
            raise Errno(errno.EISCONN if self.state == TCP_ESTABLISHED else errno.EINVAL)
        new = type(self)(t, self.type_, O_RDWR, self.ns)
        new.embryo = True
        new.peer = self
        new.state = TCP_ESTABLISHED
        new.peer_cred = peer_cred_of(t)
        new.addr = other.addr
        self.peer_cred = other.peer_cred
        self.state = TCP_ESTABLISHED
        self.peer = new
        other.pending.append(new)
        other.waitq.notify()
        self.waitq.notify()

    def accept(self, t: "Task", nonblock: bool) -> UnixSocket:
        if self.state != TCP_LISTEN:
            raise Errno(errno.EINVAL)
        if not self.pending:
            e = self.sock_error()
            if e:
                raise Errno(e)
            timeo = 0 if nonblock else self.rcvtimeo
            if timeo != 0 and self.shut & RCV_SHUTDOWN:
                raise Errno(errno.EINVAL)
            wait(t, timeo, self.waitq)
        new = self.pending.popleft()
        self.peer_wait.notify()
        new.embryo = False
        new.passcred = self.passcred
        new.uid, new.gid = t.creds.fsuid, t.creds.fsgid
        return new

    # -- stream data
    def _plan(self, total: int, wmem: int) -> list[int]:
        """The skb sizes a send of `total` bytes can queue starting from `wmem`."""
        cap = min((self.sndbuf >> 1) - 64, SKB_MAX_HEAD0 + FRAGS_SZ)
        sizes: list[int] = []
        sent = 0
        while sent < total and wmem < self.sndbuf:
            size = min(total - sent, cap)
            wmem += stream_truesize(size)
            sizes.append(size)
            sent += size
        return sizes

    def _pipe(self, t: "Task", flags: int) -> Errno:
        if not flags & MSG_NOSIGNAL:
            t.kernel.send_signal_to_task(t, SIGPIPE)
        return Errno(errno.EPIPE)

    def sendmsg(self, t: "Task", data: Payload, ctl: SendCtl | None, flags: int,
                addr: bytes | None) -> int:
        if flags & MSG_OOB:
            raise Errno(errno.EOPNOTSUPP)
        if addr is not None:
            raise Errno(errno.EISCONN if self.state == TCP_ESTABLISHED else errno.EOPNOTSUPP)
        other = self.peer
        if other is None:
            raise Errno(errno.ENOTCONN)
        if self.shut & SEND_SHUTDOWN:
            raise self._pipe(t, flags)
        total = data.size
        if total == 0:
            return 0
        e = self.sock_error()
        if e:
            raise Errno(e)
        if other.dead or other.shut & RCV_SHUTDOWN:
            raise self._pipe(t, flags)
        sizes = self._plan(total, self.wmem)
        if sum(sizes) < total:
            timeo = self.snd_timeo(flags)
            blocking = timeo != 0 and not t.timed_out
            if not sizes or (blocking and sum(self._plan(total, 0)) == total):
                wait(t, timeo, self.waitq)
        sent = sum(sizes)
        payload = data.read(sent)
        fds: list[File] | None = list(ctl.fds) if ctl is not None and ctl.fds else None
        for f in fds or ():
            f.refs += 1
        creds = self.creds_for(t, ctl.creds if ctl is not None else None, other)
        off = 0
        for size in sizes:
            self.enqueue(other, Skb(payload[off:off + size], self, creds, fds,
                                    stream_truesize(size)))
            fds = None                        # passed files ride on the first skb only
            off += size
        other.waitq.notify()
        return sent

    def _walk(self, size: int, peek: bool, creds: object = _ANY
              ) -> tuple[list[tuple[Skb, int]], int, bool, Skb | None]:
        """What one receive of `size` bytes would take: (skb, bytes) pairs, the total,
        whether it ran out of queue with room left, and the skb whose files it gets.
        Reading stops after files, and between writers' credentials under SO_PASSCRED
        (`creds`: those of what this read already has); a peek goes on over the later
        skbs even when `size` is used up, as Linux's does (so it reports their files)."""
        out: list[tuple[Skb, int]] = []
        copied = 0
        for skb in self.queue:
            if creds is not _ANY and self.passcred and skb.creds != creds:
                return out, copied, False, None
            if creds is _ANY:
                creds = skb.creds
            n = min(skb.left, size)
            out.append((skb, n))
            copied += n
            size -= n
            if skb.fds:
                return out, copied, False, skb
            if not peek and (n < skb.left or size == 0):
                return out, copied, False, None
        # a peek that saw data returns it; only an empty queue makes it wait
        return out, copied, not (peek and out), None

    def _consume(self, out: list[tuple[Skb, int]]) -> bytes:
        data = b"".join(skb.data[skb.off:skb.off + n] for skb, n in out)
        for skb, n in out:
            skb.off += n
            if skb.left == 0:
                self.queue.popleft()
                self.free_skb(skb)
        return data

    def _own_stash(self, t: "Task") -> Stash | None:
        """This call's stash, if it has one. A stash whose call was abandoned goes back
        to the head of the queue; another task's live one is left alone."""
        st = self.stash
        if st is None:
            return None
        owner = st.owner()
        if owner is t and st.token is t.saved_args:
            return st
        if owner is not None and owner is not t and owner.pending is not None \
                and owner.saved_args is st.token:
            return None
        self.stash = None
        self.queue.appendleft(Skb(bytes(st.data), st.sender, st.creds, None, 0))
        return None

    def recvmsg(self, t: "Task", size: int, flags: int) -> RecvResult:
        if self.state != TCP_ESTABLISHED:
            raise Errno(errno.EINVAL)
        if flags & MSG_OOB:
            raise Errno(errno.EOPNOTSUPP)
        peek = bool(flags & MSG_PEEK)
        st = self._own_stash(t)
        have = len(st.data) if st is not None else 0
        target = (size if flags & MSG_WAITALL else min(self.rcvlowat, size)) or 1
        out, copied, at_end, fds_skb = self._walk(size - have, peek,
                                                  st.creds if st is not None else _ANY)
        if at_end and have + copied < target:
            timeo = self.rcv_timeo(flags)
            if have + copied == 0:
                e = self.sock_error()
                if e:
                    raise Errno(e)
                if not self.shut & RCV_SHUTDOWN:
                    wait(t, timeo, self.waitq)
            elif self.err:
                self.sock_error()             # Linux drops it: the data is returned
            elif not (self.shut & RCV_SHUTDOWN or timeo == 0 or t.timed_out):
                if st is None:
                    st = self.stash = Stash(t, out[0][0].sender, out[0][0].creds)
                st.data += self._consume(out)
                wait(t, timeo, self.waitq)
        r = RecvResult(b"", 0)
        if out:
            r.addr = out[-1][0].sender.addr or b""
        elif st is not None:
            r.addr = st.sender.addr or b""
        if self.passcred:            # nothing read: Linux's zeroed scm_cookie
            first = st.creds if st is not None else out[0][0].creds if out else (0, 0, 0)
            r.creds = first or (0, OVERFLOW_ID, OVERFLOW_ID)
        if fds_skb is not None:
            r.fds = self.take_fds(fds_skb, peek)
        if peek:
            data = b"".join(skb.data[skb.off:skb.off + n] for skb, n in out)
        else:
            data = self._consume(out)
        if st is not None:
            data = bytes(st.data) + data
            self.stash = None
        r.data, r.length = data, len(data)
        return r

    def poll(self) -> int:
        mask = 0
        if self.err:
            mask |= POLLERR
        if self.shut == SHUTDOWN_MASK:
            mask |= POLLHUP
        if self.shut & RCV_SHUTDOWN:
            mask |= POLLRDHUP | POLLIN | POLLRDNORM
        if self.queue or self.pending:
            mask |= POLLIN | POLLRDNORM
        if self.state == TCP_CLOSE:
            mask |= POLLHUP
        if self.writable():
            mask |= POLLOUT | POLLWRNORM | POLLWRBAND
        return mask


class UnixSeqpacketSocket(UnixStreamSocket):
    """Connections like a stream, messages like datagrams."""

    def sendmsg(self, t: "Task", data: Payload, ctl: SendCtl | None, flags: int,
                addr: bytes | None) -> int:
        e = self.sock_error()
        if e:
            raise Errno(e)
        if self.state != TCP_ESTABLISHED:
            raise Errno(errno.ENOTCONN)
        return dgram_send(self, t, data, ctl, flags, None)

    def recvmsg(self, t: "Task", size: int, flags: int) -> RecvResult:
        if self.state != TCP_ESTABLISHED:
            raise Errno(errno.ENOTCONN)
        return dgram_recv(self, t, size, flags)

    def poll(self) -> int:
        return dgram_poll(self)


UNIX_TYPES[SOCK_STREAM] = UnixStreamSocket
UNIX_TYPES[SOCK_SEQPACKET] = UnixSeqpacketSocket
