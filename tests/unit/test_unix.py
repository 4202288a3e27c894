"""AF_UNIX sockets through the socket syscalls, against a fake task (guest memory in a
bytearray, a tmpfs VFS, a fake clock). Expected values are Linux x86-64's (checked
against the host kernel where numbers depend on its accounting)."""
from __future__ import annotations

import errno
import struct

import pytest

from usermode.fs.fdtable import FdTable
from usermode.fs.file import (POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP, POLLRDNORM,
                              POLLWRNORM)
from usermode.fs.pipe import make_pipe
from usermode.fs.stat import S_IFMT, S_IFSOCK
from usermode.fs.tmpfs import TmpFS
from usermode.fs.vfs import VFS
from usermode.kernel.creds import Creds
from usermode.kernel.errors import Block, Errno
from usermode.kernel.syscalls import sys_socket as S

AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
STREAM, DGRAM, RAW, SEQPACKET = 1, 2, 3, 5
NONBLOCK, CLOEXEC = 0o4000, 0o2000000
MSG_OOB, MSG_PEEK, MSG_CTRUNC, MSG_TRUNC, MSG_DONTWAIT = 1, 2, 8, 0x20, 0x40
MSG_WAITALL, MSG_NOSIGNAL, MSG_CMSG_CLOEXEC = 0x100, 0x4000, 0x40000000
SOL_SOCKET, SCM_RIGHTS, SCM_CREDENTIALS = 1, 1, 2
SO_TYPE, SO_ERROR, SO_SNDBUF, SO_RCVBUF, SO_PASSCRED, SO_PEERCRED = 3, 4, 7, 8, 16, 17
SO_REUSEADDR, SO_RCVTIMEO, SO_SNDTIMEO, SO_ACCEPTCONN = 2, 20, 21, 30
SO_PROTOCOL, SO_DOMAIN, SO_KEEPALIVE, SO_PEERGROUPS = 38, 39, 9, 59
FIONREAD, SIOCOUTQ = 0x541B, 0x5411
BASE, SIZE = 0x10000, 1 << 24
POLLWRBAND = 0x200
POLL_IDLE_STREAM = POLLOUT | POLLHUP | POLLWRNORM | POLLWRBAND     # 788, as Linux


# ---------------------------------------------------------------- fakes
class FakeMM:
    def __init__(self) -> None:
        self.mem = bytearray(SIZE)
        self.brk = BASE

    def alloc(self, n: int, data: bytes = b"") -> int:
        a = self.brk
        self.brk += (max(n, len(data), 1) + 15) & ~15
        assert self.brk < BASE + SIZE
        if data:
            self.copy_out(a, data)
        return a

    def _off(self, addr: int, n: int) -> int:
        off = addr - BASE
        if addr <= 0 or off < 0 or off + n > SIZE:
            raise Errno(errno.EFAULT)
        return off

    def copy_in(self, addr: int, n: int) -> bytes:
        if n == 0:
            return b""
        off = self._off(addr, n)
        return bytes(self.mem[off:off + n])

    def copy_out(self, addr: int, data: bytes) -> None:
        if data:
            off = self._off(addr, len(data))
            self.mem[off:off + len(data)] = data

    def read_i32(self, a: int) -> int:
        return struct.unpack("<i", self.copy_in(a, 4))[0]

    def read_u32(self, a: int) -> int:
        return struct.unpack("<I", self.copy_in(a, 4))[0]

    def read_u64(self, a: int) -> int:
        return struct.unpack("<Q", self.copy_in(a, 8))[0]

    def write_i32(self, a: int, v: int) -> None:
        self.copy_out(a, struct.pack("<i", v))

    def write_u32(self, a: int, v: int) -> None:
        self.copy_out(a, struct.pack("<I", v & 0xFFFFFFFF))

    def write_u64(self, a: int, v: int) -> None:
        self.copy_out(a, struct.pack("<Q", v & (2**64 - 1)))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class FakeKernel:
    def __init__(self) -> None:
        self.vfs = VFS(TmpFS())
        self.clock = FakeClock()
        self.signals: list[tuple[int, int]] = []
        self.procs: dict[int, object] = {}

    def send_signal_to_task(self, t, sig: int) -> None:
        self.signals.append((t.tid, sig))


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid


class FakeTask:
    def __init__(self, kernel: FakeKernel, pid: int = 100, creds: Creds | None = None,
                 mm: FakeMM | None = None) -> None:
        self.kernel = kernel
        self.tid = pid
        self.process = FakeProcess(pid)
        kernel.procs[pid] = self.process
        self.mm = mm or FakeMM()
        self.fs = kernel.vfs.new_context()
        self.files = FdTable()
        self.creds = creds or Creds()
        self.timed_out = False
        self.saved_args: tuple = ()
        self.pending = None                      # set by the kernel while parked

    @property
    def pid(self) -> int:
        return self.process.pid

    # one syscall: a fresh saved-args tuple, as the dispatcher makes
    def sys(self, fn, *args):
        self.saved_args = tuple(args) + (object(),)
        return self.rerun(fn, *args)

    def rerun(self, fn, *args):
        """The same call again (after a wake): keeps saved_args."""
        raw = [a & (2**64 - 1) for a in args]
        try:
            return fn(self, *raw)
        except Errno as e:
            return -e.errno
        except Block as b:
            return b


def user(uid: int = 1000, gid: int = 1000, groups: list[int] | None = None) -> Creds:
    return Creds(uid, uid, uid, uid, gid, gid, gid, gid, groups or [])


@pytest.fixture
def k() -> FakeKernel:
    return FakeKernel()


@pytest.fixture
def t(k) -> FakeTask:
    return FakeTask(k)


# ---------------------------------------------------------------- helpers
def sun(path: bytes | str) -> bytes:
    if isinstance(path, str):
        path = path.encode()
    return struct.pack("<H", AF_UNIX) + path


def sock(t, type_=STREAM, domain=AF_UNIX, proto=0) -> int:
    return t.sys(S.sys_socket, domain, type_, proto)


def pair(t, type_=STREAM) -> tuple[int, int]:
    sv = t.mm.alloc(8)
    assert t.sys(S.sys_socketpair, AF_UNIX, type_, 0, sv) == 0
    return struct.unpack("<ii", t.mm.copy_in(sv, 8))


def bind(t, fd, addr: bytes) -> int:
    return t.sys(S.sys_bind, fd, t.mm.alloc(len(addr), addr), len(addr))


def connect(t, fd, addr: bytes) -> int:
    return t.sys(S.sys_connect, fd, t.mm.alloc(len(addr), addr), len(addr))


def send(t, fd, data: bytes, flags=0, addr: bytes | None = None) -> int:
    buf = t.mm.alloc(len(data), data)
    if addr is None:
        return t.sys(S.sys_sendto, fd, buf, len(data), flags, 0, 0)
    return t.sys(S.sys_sendto, fd, buf, len(data), flags, t.mm.alloc(len(addr), addr),
                 len(addr))


def recv(t, fd, n=65536, flags=0):
    buf = t.mm.alloc(n)
    r = t.sys(S.sys_recvfrom, fd, buf, n, flags, 0, 0)
    return r if isinstance(r, Block) or r < 0 else t.mm.copy_in(buf, r)


def recvfrom(t, fd, n=4096, flags=0) -> tuple[int, bytes, bytes]:
    buf, ab, al = t.mm.alloc(n), t.mm.alloc(128), t.mm.alloc(4)
    t.mm.write_i32(al, 128)
    r = t.sys(S.sys_recvfrom, fd, buf, n, flags, ab, al)
    if r < 0:
        return r, b"", b""
    alen = t.mm.read_i32(al)
    return r, t.mm.copy_in(buf, min(r, n)), t.mm.copy_in(ab, alen)


def name(t, fd, peer=False) -> bytes | int:
    ab, al = t.mm.alloc(128), t.mm.alloc(4)
    t.mm.write_i32(al, 128)
    r = t.sys(S.sys_getpeername if peer else S.sys_getsockname, fd, ab, al)
    return r if r < 0 else t.mm.copy_in(ab, t.mm.read_i32(al))


def getopt(t, fd, opt, n=4, level=SOL_SOCKET):
    ob, ol = t.mm.alloc(max(n, 4)), t.mm.alloc(4)
    t.mm.write_i32(ol, n)
    r = t.sys(S.sys_getsockopt, fd, level, opt, ob, ol)
    if r < 0:
        return r
    got = t.mm.read_i32(ol)
    raw = t.mm.copy_in(ob, got)
    return struct.unpack("<i", raw)[0] if got == 4 and n == 4 else raw


def setopt(t, fd, opt, val, level=SOL_SOCKET) -> int:
    data = struct.pack("<i", val) if isinstance(val, int) else val
    return t.sys(S.sys_setsockopt, fd, level, opt, t.mm.alloc(len(data), data), len(data))


def fileof(t, fd):
    return t.files.get(fd)


def msghdr(t, iovs: list[tuple[int, int]], control: int = 0, controllen: int = 0,
           name_: int = 0, namelen: int = 0) -> int:
    iov = t.mm.alloc(16 * len(iovs), b"".join(struct.pack("<QQ", b, n) for b, n in iovs))
    return t.mm.alloc(56, struct.pack("<Qi4xQQQQi4x", name_, namelen, iov, len(iovs),
                                      control, controllen, 0))


def cmsg(level: int, type_: int, data: bytes) -> bytes:
    n = 16 + len(data)
    return struct.pack("<Qii", n, level, type_) + data + bytes((8 - n % 8) % 8)


def sendmsg(t, fd, parts: list[bytes], ctl: bytes = b"", flags=0) -> int:
    iovs = [(t.mm.alloc(len(p), p), len(p)) for p in parts]
    cp = t.mm.alloc(len(ctl), ctl) if ctl else 0
    return t.sys(S.sys_sendmsg, fd, msghdr(t, iovs, cp, len(ctl)), flags)


def recvmsg(t, fd, n=4096, ctl_space=256, flags=0):
    """-> (ret, data, msg_flags, [(level, type, data)], name)"""
    buf = t.mm.alloc(n)
    cp = t.mm.alloc(ctl_space) if ctl_space else 0
    nb = t.mm.alloc(128)
    m = msghdr(t, [(buf, n)], cp, ctl_space, nb, 128)
    r = t.sys(S.sys_recvmsg, fd, m, flags)
    if r < 0:
        return r, b"", 0, [], b""
    clen = t.mm.read_u64(m + 40)
    mflags = t.mm.read_u32(m + 48)
    raw = t.mm.copy_in(cp, clen) if clen else b""
    msgs, off = [], 0
    while off + 16 <= len(raw):
        ln, lv, ty = struct.unpack_from("<Qii", raw, off)
        msgs.append((lv, ty, raw[off + 16:off + ln]))
        off += (ln + 7) & ~7
    namelen = t.mm.read_i32(m + 8)
    return r, t.mm.copy_in(buf, min(r, n)), mflags, msgs, t.mm.copy_in(nb, namelen)


# ---------------------------------------------------------------- creation
def test_socket_types_and_flags(t):
    for ty in (STREAM, DGRAM, SEQPACKET):
        fd = sock(t, ty)
        assert fd >= 0 and getopt(t, fd, SO_TYPE) == ty
    fd = sock(t, RAW)                              # AF_UNIX turns SOCK_RAW into datagrams
    assert getopt(t, fd, SO_TYPE) == DGRAM
    fd = sock(t, STREAM | NONBLOCK | CLOEXEC)
    assert fileof(t, fd).nonblocking and t.files.get_cloexec(fd)
    assert getopt(t, fd, SO_DOMAIN) == AF_UNIX and getopt(t, fd, SO_PROTOCOL) == 0
    assert sock(t, STREAM, proto=1) >= 0


@pytest.mark.parametrize("domain,type_,proto,err", [
    (AF_INET, STREAM, 0, errno.EAFNOSUPPORT), (AF_INET6, DGRAM, 0, errno.EAFNOSUPPORT),
    (AF_NETLINK, RAW, 0, errno.EAFNOSUPPORT), (99, STREAM, 0, errno.EAFNOSUPPORT),
    (46, STREAM, 0, errno.EAFNOSUPPORT), (-1, STREAM, 0, errno.EAFNOSUPPORT),
    (AF_UNIX, 11, 0, errno.EINVAL), (AF_UNIX, STREAM | 0x100, 0, errno.EINVAL),
    (AF_UNIX, 0, 0, errno.ESOCKTNOSUPPORT), (AF_UNIX, 4, 0, errno.ESOCKTNOSUPPORT),
    (AF_UNIX, 10, 0, errno.ESOCKTNOSUPPORT), (AF_UNIX, STREAM, 2, errno.EPROTONOSUPPORT),
])
def test_socket_errors(t, domain, type_, proto, err):
    assert sock(t, type_, domain, proto) == -err


def test_stat_and_name(t):
    fd = sock(t)
    f = fileof(t, fd)
    st = f.stat()
    assert st.mode == S_IFSOCK | 0o777 and st.nlink == 1
    assert f.name() == b"socket:[%d]" % st.ino
    assert sock(t) != fd and fileof(t, sock(t)).stat().ino != st.ino


def test_socketpair_fds_and_efault(t):
    a, b = pair(t)
    assert (a, b) == (0, 1)
    assert t.sys(S.sys_socketpair, AF_UNIX, STREAM, 0, 8) == -errno.EFAULT
    assert t.sys(S.sys_socketpair, AF_INET, STREAM, 0, t.mm.alloc(8)) == -errno.EAFNOSUPPORT
    assert len(t.files) == 2


def test_not_a_socket(t):
    r, w = make_pipe()
    fd = t.files.install(r)
    assert send(t, fd, b"x") == -errno.ENOTSOCK
    assert t.sys(S.sys_listen, fd, 1) == -errno.ENOTSOCK
    assert t.sys(S.sys_listen, 99, 1) == -errno.EBADF


# ---------------------------------------------------------------- stream
def test_stream_pair_bytes_merge(t, k):
    a, b = pair(t)
    assert send(t, a, b"hello ") == 6 and send(t, a, b"world") == 5
    assert recv(t, b, 3) == b"hel"
    assert recv(t, b) == b"lo world"
    f = fileof(t, b)
    assert f.write(t, b"back") == 4 and fileof(t, a).read(t, 100) == b"back"
    assert name(t, a) == sun(b"") and name(t, a, peer=True) == sun(b"")


def test_stream_eof_and_epipe(t, k):
    a, b = pair(t)
    send(t, a, b"last")
    t.files.close(a)
    assert recv(t, b) == b"last"
    assert recv(t, b) == b""                     # EOF
    assert send(t, b, b"x") == -errno.EPIPE
    assert k.signals == [(t.tid, 13)]
    assert send(t, b, b"x", MSG_NOSIGNAL) == -errno.EPIPE
    assert len(k.signals) == 1
    assert fileof(t, b).poll() & (POLLIN | POLLHUP | POLLRDHUP) == POLLIN | POLLHUP | POLLRDHUP


def test_stream_close_with_unread_data_resets_peer(t):
    a, b = pair(t)
    send(t, b, b"unread by a")
    send(t, a, b"for b")
    t.files.close(a)
    assert fileof(t, b).poll() & POLLERR
    assert recv(t, b) == b"for b"                # queued data first
    assert recv(t, b) == -errno.ECONNRESET       # then the error, once
    assert recv(t, b) == b""


def test_stream_unconnected(t):
    fd = sock(t)
    assert recv(t, fd) == -errno.EINVAL
    assert send(t, fd, b"x") == -errno.ENOTCONN
    assert send(t, fd, b"x", addr=sun("/x")) == -errno.EOPNOTSUPP
    assert fileof(t, fd).poll() == POLL_IDLE_STREAM
    assert t.sys(S.sys_shutdown, fd, 2) == 0     # unix shutdown never says ENOTCONN
    assert name(t, fd, peer=True) == -errno.ENOTCONN
    a, _ = pair(t)
    assert send(t, a, b"x", addr=sun("/x")) == -errno.EISCONN


def test_shutdown_semantics(t, k):
    a, b = pair(t)
    assert t.sys(S.sys_shutdown, a, 3) == -errno.EINVAL
    assert t.sys(S.sys_shutdown, a, 1) == 0       # SHUT_WR
    assert recv(t, b) == b""
    assert fileof(t, b).poll() & POLLRDHUP
    assert send(t, a, b"x") == -errno.EPIPE
    assert send(t, b, b"still") == 5 and recv(t, a) == b"still"
    c, d = pair(t)
    t.sys(S.sys_shutdown, c, 0)                  # SHUT_RD: the peer may not write
    assert send(t, d, b"x", MSG_NOSIGNAL) == -errno.EPIPE
    assert fileof(t, c).poll() & POLLRDHUP
    t.sys(S.sys_shutdown, c, 1)
    assert fileof(t, c).poll() & POLLHUP


def test_stream_peek_dontwait_waitall(t):
    a, b = pair(t)
    assert recv(t, b, 10, MSG_DONTWAIT) == -errno.EAGAIN
    blocked = recv(t, b, 10)
    assert isinstance(blocked, Block) and fileof(t, b).waitq in blocked.queues
    send(t, a, b"abc")
    assert recv(t, b, 10, MSG_PEEK) == b"abc"
    assert recv(t, b, 10, MSG_PEEK | MSG_WAITALL) == b"abc"   # a peek never waits for more
    assert isinstance(recv(t, b, 5, MSG_WAITALL), Block)
    send(t, a, b"de")
    assert recv(t, b, 5, MSG_WAITALL) == b"abcde"
    send(t, a, b"xy")
    t.sys(S.sys_shutdown, a, 1)
    assert recv(t, b, 5, MSG_WAITALL) == b"xy"   # EOF ends a MSG_WAITALL short


def test_fionread_and_outq(t):
    a, b = pair(t)
    send(t, a, b"12345")
    send(t, a, b"678")
    p = t.mm.alloc(4)
    assert fileof(t, b).ioctl(t, FIONREAD, p) == 0 and t.mm.read_i32(p) == 8
    fileof(t, a).ioctl(t, SIOCOUTQ, p)
    assert t.mm.read_i32(p) == 2 * 768           # two 1-page skbs, as Linux charges them
    d1, d2 = pair(t, DGRAM)
    send(t, d1, b"first")
    send(t, d1, b"second!")
    fileof(t, d2).ioctl(t, FIONREAD, p)
    assert t.mm.read_i32(p) == 5                 # datagram: the next message only
    lfd = sock(t)
    bind(t, lfd, sun("\0l"))
    t.sys(S.sys_listen, lfd, 1)
    with pytest.raises(Errno) as e:
        fileof(t, lfd).ioctl(t, FIONREAD, p)
    assert e.value.errno == errno.EINVAL


# ---------------------------------------------------------------- buffers
def fill(t, fd, chunk: bytes) -> int:
    total = 0
    while True:
        n = send(t, fd, chunk, MSG_DONTWAIT)
        if n < 0:
            assert n == -errno.EAGAIN
            return total
        total += n


def count_sends(t, fd, chunk: bytes) -> int:
    n = 0
    while send(t, fd, chunk, MSG_DONTWAIT) >= 0:
        n += 1
    return n


def test_stream_buffer_limits_match_linux(t):
    a, _ = pair(t)
    assert count_sends(t, a, b"x") == 278       # 212992 / 768 per skb
    c, _ = pair(t)
    assert fill(t, c, b"x" * 1000) == 93000
    e, _ = pair(t)
    assert send(t, e, b"x" * 1000000, MSG_DONTWAIT) == 219264   # six 36544-byte skbs


def test_dgram_buffer_limits_match_linux(t):
    a, _ = pair(t, DGRAM)
    assert count_sends(t, a, b"") == 278
    b, _ = pair(t, DGRAM)
    assert send(t, b, b"x" * (212992 - 32 + 1)) == -errno.EMSGSIZE
    assert send(t, b, b"x" * (212992 - 32)) == 212992 - 32


def test_writer_blocks_and_poll_follows_space(t):
    a, b = pair(t)
    fa = fileof(t, a)
    assert fa.poll() & POLLOUT
    fill(t, a, b"y" * 4096)
    assert not fa.poll() & POLLOUT
    woke = []
    fa.waitq.add(lambda: woke.append(1))
    blocked = send(t, a, b"z" * 100)
    assert isinstance(blocked, Block) and fa.waitq in blocked.queues
    while recv(t, b, 65536, MSG_DONTWAIT) != -errno.EAGAIN:
        pass
    assert woke and fa.poll() & POLLOUT
    assert t.rerun(S.sys_sendto, a, t.mm.alloc(1, b"z"), 1, 0, 0, 0) == 1


def test_blocking_send_larger_than_buffer_is_short(t):
    a, b = pair(t)
    send(t, a, b"x" * 1000)
    n = send(t, a, b"y" * 500000)
    assert 0 < n < 500000                        # what fits now, like a pipe past PIPE_BUF
    assert isinstance(send(t, a, b"y" * 500000), Block)


def test_waitall_takes_progressively_with_a_blocked_writer(t):
    a, b = pair(t)
    for _ in range(5):
        assert send(t, a, b"q" * 36544, MSG_DONTWAIT) == 36544
    assert send(t, a, b"r" * 60000, MSG_DONTWAIT) == 36544   # nonblocking: what fits
    recv(t, b, 36544)
    blk = send(t, a, b"r" * 60000)     # part would fit, but it fits an empty buffer: wait
    assert isinstance(blk, Block)
    buf = t.mm.alloc(300000)
    call = (b, buf, 300000, MSG_WAITALL, 0, 0)
    assert isinstance(t.sys(S.sys_recvfrom, *call), Block)   # took what was queued
    assert fileof(t, a).wmem == 0 and fileof(t, a).poll() & POLLOUT
    assert send(t, a, b"s" * 60000) == 60000                  # so the writer goes on
    assert isinstance(t.rerun(S.sys_recvfrom, *call), Block)
    assert send(t, a, b"t" * 57280) == 57280
    assert t.rerun(S.sys_recvfrom, *call) == 300000
    got = t.mm.copy_in(buf, 300000)
    assert got == b"q" * (4 * 36544) + b"r" * 36544 + b"s" * 60000 + b"t" * 57280


def test_abandoned_waitall_gives_its_bytes_back(t):
    a, b = pair(t)
    send(t, a, b"abc")
    buf = t.mm.alloc(10)
    assert isinstance(t.sys(S.sys_recvfrom, b, buf, 10, MSG_WAITALL, 0, 0), Block)
    p = t.mm.alloc(4)
    fileof(t, b).ioctl(t, FIONREAD, p)
    assert t.mm.read_i32(p) == 0                 # taken, as on Linux
    send(t, a, b"def")
    assert recv(t, b, 100) == b"abcdef"          # a new call: the stash went back first
    send(t, a, b"12")
    assert isinstance(t.sys(S.sys_recvfrom, b, buf, 10, MSG_WAITALL, 0, 0), Block)
    t.timed_out = True                           # SO_RCVTIMEO expiry returns the part
    assert t.rerun(S.sys_recvfrom, b, buf, 10, MSG_WAITALL, 0, 0) == 2
    t.timed_out = False
    send(t, a, b"xyz")
    t.sys(S.sys_shutdown, a, 1)
    assert recv(t, b, 10, MSG_WAITALL) == b"xyz"


def test_sndbuf_rcvbuf_options(t):
    fd = sock(t)
    assert getopt(t, fd, SO_SNDBUF) == 212992 and getopt(t, fd, SO_RCVBUF) == 212992
    setopt(t, fd, SO_SNDBUF, 1)
    setopt(t, fd, SO_RCVBUF, 1)
    assert getopt(t, fd, SO_SNDBUF) == 4608 and getopt(t, fd, SO_RCVBUF) == 2304
    setopt(t, fd, SO_SNDBUF, -1)
    assert getopt(t, fd, SO_SNDBUF) == 425984
    assert setopt(t, fd, SO_SNDBUF, b"\1\0") == -errno.EINVAL


# ---------------------------------------------------------------- datagrams
def test_dgram_boundaries_and_trunc(t):
    a, b = pair(t, DGRAM)
    send(t, a, b"one")
    send(t, a, b"")
    send(t, a, b"three33")
    r, data, fl, _, _ = recvmsg(t, b, 2, 0)
    assert (r, data, fl & MSG_TRUNC) == (2, b"on", MSG_TRUNC)
    assert recv(t, b) == b""                     # the empty datagram
    assert t.sys(S.sys_recvfrom, b, t.mm.alloc(3), 3, MSG_TRUNC, 0, 0) == 7   # real length
    assert recv(t, b, 10, MSG_DONTWAIT) == -errno.EAGAIN


def test_dgram_peer_closed(t):
    a, b = pair(t, DGRAM)
    t.files.close(b)
    assert send(t, a, b"x") == -errno.ECONNREFUSED
    assert send(t, a, b"x") == -errno.ENOTCONN


def test_dgram_own_shut_wr(t, k):
    a, b = pair(t, DGRAM)
    t.sys(S.sys_shutdown, a, 1)
    assert send(t, a, b"x") == -errno.EPIPE and k.signals == []   # no SIGPIPE for dgram


def test_dgram_addresses(t):
    srv, c1, c2 = sock(t, DGRAM), sock(t, DGRAM), sock(t, DGRAM)
    assert bind(t, srv, sun("/srv")) == 0
    assert bind(t, c1, sun("\0client")) == 0
    assert send(t, c1, b"from c1", addr=sun("/srv")) == 7
    assert send(t, c2, b"from c2", addr=sun("/srv")) == 7
    assert recvfrom(t, srv) == (7, b"from c1", sun("\0client"))
    assert recvfrom(t, srv) == (7, b"from c2", b"")   # unbound sender: length 0
    assert send(t, c2, b"x", addr=sun("/nope")) == -errno.ENOENT
    assert send(t, c2, b"x") == -errno.ENOTCONN


def test_dgram_connect_rules(t):
    srv, c1, c2 = sock(t, DGRAM), sock(t, DGRAM), sock(t, DGRAM)
    bind(t, srv, sun("\0srv"))
    bind(t, c1, sun("\0c1"))
    assert connect(t, srv, sun("\0c1")) == 0       # srv now only hears c1
    assert send(t, c2, b"x", addr=sun("\0srv")) == -errno.EPERM
    assert send(t, c1, b"ok", addr=sun("\0srv")) == 2
    assert connect(t, c2, sun("\0srv")) == -errno.EPERM
    assert connect(t, srv, struct.pack("<H", 0)) == 0    # AF_UNSPEC: dissolve
    assert name(t, srv, peer=True) == -errno.ENOTCONN
    assert connect(t, c2, sun("\0srv")) == 0 and send(t, c2, b"hi") == 2
    assert connect(t, c2, b"\1") == -errno.EINVAL


def test_dgram_receiver_queue_limit(t):
    srv = sock(t, DGRAM)
    bind(t, srv, sun("\0q"))
    c = sock(t, DGRAM | NONBLOCK)
    assert connect(t, c, sun("\0q")) == 0
    assert fileof(t, c).poll() & POLLOUT
    assert count_sends(t, c, b"m") == 11          # max_dgram_qlen + 1
    assert not fileof(t, c).poll() & POLLOUT
    blocker = sock(t, DGRAM)
    connect(t, blocker, sun("\0q"))
    b = send(t, blocker, b"m")
    assert isinstance(b, Block) and fileof(t, srv).peer_wait in b.queues
    recv(t, srv)
    assert fileof(t, c).poll() & POLLOUT


def test_seqpacket_pair(t, k):
    a, b = pair(t, SEQPACKET)
    send(t, a, b"m1")
    send(t, a, b"message2")
    assert recv(t, b, 100) == b"m1"
    r, data, fl, _, _ = recvmsg(t, b, 3)
    assert (r, data, bool(fl & MSG_TRUNC)) == (3, b"mes", True)
    t.files.close(a)
    assert recv(t, b) == b""
    assert send(t, b, b"x") == -errno.EPIPE and k.signals == []
    s = sock(t, SEQPACKET)
    assert recv(t, s) == -errno.ENOTCONN and send(t, s, b"x") == -errno.ENOTCONN


# ---------------------------------------------------------------- naming
def test_bind_path_creates_socket_inode(t, k):
    fd = sock(t)
    assert bind(t, fd, sun("/tmp.sock\0junk")) == 0
    p = k.vfs.lookup(t, -100, b"/tmp.sock", follow=False)
    assert p.dentry.inode.mode & S_IFMT == S_IFSOCK
    assert p.dentry.inode.mode & 0o777 == 0o777 & ~t.fs.umask
    assert name(t, fd) == sun(b"/tmp.sock\0")    # offsetof + strlen + 1
    assert bind(t, sock(t), sun("/tmp.sock")) == -errno.EADDRINUSE
    assert bind(t, fd, sun("/other")) == -errno.EINVAL
    assert k.vfs.lookup(t, -100, b"/") and name(t, fd) == sun(b"/tmp.sock\0")
    with pytest.raises(Errno):
        k.vfs.lookup(t, -100, b"/other")         # the new node was removed again
    assert bind(t, sock(t), sun("/no/such/dir")) == -errno.ENOENT


@pytest.mark.parametrize("addr,err", [
    (b"", errno.EINVAL), (b"\1", errno.EINVAL), (struct.pack("<H", 2) + b"/x", errno.EINVAL),
    (sun(b"x" * 109), errno.EINVAL),
])
def test_bad_addresses(t, addr, err):
    assert bind(t, sock(t), addr) == -err
    assert connect(t, sock(t), addr) == -err


def test_addrlen_past_storage(t):
    a = sun("/x")
    assert t.sys(S.sys_bind, sock(t), t.mm.alloc(200, a), 129) == -errno.EINVAL
    assert t.sys(S.sys_bind, sock(t), 8, 10) == -errno.EFAULT


def test_abstract_and_autobind(t):
    a = sock(t)
    assert bind(t, a, sun("\0abc")) == 0
    assert name(t, a) == sun("\0abc")
    assert bind(t, sock(t), sun("\0abc")) == -errno.EADDRINUSE
    assert bind(t, sock(t, DGRAM), sun("\0abc")) == 0     # names are per type, as Linux
    assert bind(t, sock(t), sun("\0abc\0")) == 0          # every byte counts
    b = sock(t)
    assert bind(t, b, struct.pack("<H", AF_UNIX)) == 0    # autobind
    n = name(t, b)
    assert len(n) == 8 and n[2] == 0 and int(n[3:], 16) >= 0
    assert bind(t, b, struct.pack("<H", AF_UNIX)) == 0 and name(t, b) == n
    assert bind(t, b, sun("\0again")) == -errno.EINVAL


def test_passcred_autobinds_on_connect_and_send(t):
    srv = sock(t, DGRAM)
    bind(t, srv, sun("\0pc"))
    c = sock(t, DGRAM)
    setopt(t, c, SO_PASSCRED, 1)
    assert send(t, c, b"x", addr=sun("\0pc")) == 1
    _, _, addr = recvfrom(t, srv)
    assert len(addr) == 8 and addr == name(t, c)


# ---------------------------------------------------------------- connections
def listener(t, path="/srv", backlog=5, type_=STREAM) -> int:
    fd = sock(t, type_)
    assert bind(t, fd, sun(path)) == 0
    assert t.sys(S.sys_listen, fd, backlog) == 0
    return fd


def accept(t, fd, flags=0):
    ab, al = t.mm.alloc(128), t.mm.alloc(4)
    t.mm.write_i32(al, 128)
    r = t.sys(S.sys_accept4, fd, ab, al, flags)
    if isinstance(r, Block) or r < 0:
        return r, b""
    return r, t.mm.copy_in(ab, t.mm.read_i32(al))


def test_connect_accept_roundtrip(t, k):
    lfd = listener(t)
    assert getopt(t, lfd, SO_ACCEPTCONN) == 1
    assert not fileof(t, lfd).poll() & POLLIN
    c = sock(t)
    assert connect(t, c, sun("/srv")) == 0
    assert fileof(t, lfd).poll() & POLLIN
    assert send(t, c, b"early") == 5              # before accept
    s, peer = accept(t, lfd, CLOEXEC | NONBLOCK)
    assert s >= 0 and peer == sun(b"")            # unbound client: family only
    assert t.files.get_cloexec(s) and fileof(t, s).nonblocking
    assert recv(t, s) == b"early"
    assert name(t, s) == sun(b"/srv\0") and name(t, c, peer=True) == sun(b"/srv\0")
    assert name(t, c) == sun(b"")
    assert connect(t, c, sun("/srv")) == -errno.EISCONN
    assert t.sys(S.sys_listen, c, 1) == -errno.EINVAL
    assert accept(t, c)[0] == -errno.EINVAL


def test_connect_errors(t, k):
    c = sock(t)
    assert connect(t, c, sun("/missing")) == -errno.ENOENT
    k.vfs.mknod(t, -100, b"/plain", 0o100644, 0)
    assert connect(t, c, sun("/plain")) == -errno.ECONNREFUSED
    s = sock(t)
    bind(t, s, sun("/notlistening"))
    assert connect(t, c, sun("/notlistening")) == -errno.ECONNREFUSED
    listener(t, "/stream")
    assert connect(t, sock(t, SEQPACKET), sun("/stream")) == -errno.EPROTOTYPE
    assert connect(t, sock(t, DGRAM), sun("/stream")) == -errno.EPROTOTYPE
    lfd = listener(t, "\0abs")
    assert connect(t, sock(t, SEQPACKET), sun("\0abs")) == -errno.ECONNREFUSED  # per type
    t.files.close(lfd)
    assert connect(t, c, sun("\0abs")) == -errno.ECONNREFUSED
    dl = sock(t, DGRAM)
    assert t.sys(S.sys_listen, dl, 1) == -errno.EOPNOTSUPP
    assert accept(t, dl)[0] == -errno.EOPNOTSUPP
    assert t.sys(S.sys_listen, sock(t), 1) == -errno.EINVAL     # unbound


def test_connect_needs_write_permission(k):
    root = FakeTask(k, 1)
    lfd = sock(root)
    bind(root, lfd, sun("/priv"))
    root.sys(S.sys_listen, lfd, 1)
    k.vfs.chmod(root, k.vfs.lookup(root, -100, b"/priv", follow=False), 0o755)
    u = FakeTask(k, 200, user())
    assert connect(u, sock(u), sun("/priv")) == -errno.EACCES


def test_backlog(t):
    lfd = listener(t, "\0bk", backlog=0)
    c1, c2 = sock(t, STREAM | NONBLOCK), sock(t, STREAM | NONBLOCK)
    assert connect(t, c1, sun("\0bk")) == 0       # backlog n takes n + 1
    assert connect(t, c2, sun("\0bk")) == -errno.EAGAIN
    c3 = sock(t)
    b = connect(t, c3, sun("\0bk"))
    assert isinstance(b, Block) and fileof(t, lfd).peer_wait in b.queues
    assert accept(t, lfd)[0] >= 0
    addr = sun("\0bk")
    assert t.rerun(S.sys_connect, c3, t.mm.alloc(len(addr), addr), len(addr)) == 0


def test_accept_blocks_and_wakes(t):
    lfd = listener(t, "\0acc")
    b = accept(t, lfd)[0]
    assert isinstance(b, Block) and fileof(t, lfd).waitq in b.queues
    woke = []
    fileof(t, lfd).waitq.add(lambda: woke.append(1))
    connect(t, sock(t), sun("\0acc"))
    assert woke
    fileof(t, lfd).setfl(fileof(t, lfd).flags | NONBLOCK)
    assert accept(t, lfd)[0] >= 0 and accept(t, lfd)[0] == -errno.EAGAIN
    assert t.sys(S.sys_accept4, lfd, 0, 0, 0x10) == -errno.EINVAL


def test_listener_close_resets_pending_client(t):
    lfd = listener(t, "\0gone")
    c = sock(t)
    connect(t, c, sun("\0gone"))
    t.files.close(lfd)
    assert recv(t, c) == -errno.ECONNRESET
    assert recv(t, c) == b""


def test_peercred(k):
    srv_t = FakeTask(k, 10, user(1000, 1000, [5, 6]))
    cli_t = FakeTask(k, 20, user(2000, 3000))
    cli_t.mm = srv_t.mm
    srv_t.fs.umask = 0                            # others need write access to connect
    lfd = listener(srv_t, "/pc")
    c = sock(cli_t)
    # the client reaches the listener through the (shared) namespace
    assert connect(cli_t, c, sun("/pc")) == 0
    s, _ = accept(srv_t, lfd)
    assert getopt(cli_t, c, SO_PEERCRED, 12) == struct.pack("<iII", 10, 1000, 1000)
    assert getopt(srv_t, s, SO_PEERCRED, 12) == struct.pack("<iII", 20, 2000, 3000)
    assert getopt(srv_t, lfd, SO_PEERCRED, 12) == struct.pack("<iII", 10, 1000, 1000)
    assert getopt(cli_t, c, SO_PEERGROUPS, 8) == struct.pack("<II", 5, 6)
    assert getopt(cli_t, c, SO_PEERGROUPS, 4) == -errno.ERANGE
    assert getopt(cli_t, sock(cli_t), SO_PEERCRED, 12) == struct.pack("<iii", 0, -1, -1)
    a, _ = pair(cli_t)
    assert getopt(cli_t, a, SO_PEERCRED, 12) == struct.pack("<iII", 20, 2000, 3000)
    assert getopt(cli_t, a, SO_PEERCRED, 4) == 20   # truncated to the pid


# ---------------------------------------------------------------- control messages
def test_sendmsg_iovecs(t):
    a, b = pair(t, SEQPACKET)
    assert sendmsg(t, a, [b"ab", b"", b"cde"]) == 5
    r, data, _, msgs, _ = recvmsg(t, b)
    assert (r, data, msgs) == (5, b"abcde", [])


def test_scm_rights(t):
    a, b = pair(t)
    r, w = make_pipe()
    pfd = t.files.install(w)
    assert sendmsg(t, a, [b"F"], cmsg(SOL_SOCKET, SCM_RIGHTS, struct.pack("<i", pfd))) == 1
    t.files.close(pfd)
    assert w.refs == 1                            # in flight
    n, data, fl, msgs, _ = recvmsg(t, b, flags=MSG_CMSG_CLOEXEC)
    assert (n, data) == (1, b"F") and fl & MSG_CMSG_CLOEXEC
    assert [(lv, ty) for lv, ty, _ in msgs] == [(SOL_SOCKET, SCM_RIGHTS)]
    (nfd,) = struct.unpack("<i", msgs[0][2])
    assert t.files.get(nfd) is w and w.refs == 1 and t.files.get_cloexec(nfd)


def test_scm_rights_ctrunc_and_close(t):
    a, b = pair(t, DGRAM)
    _, w = make_pipe()
    fds = [t.files.install(w) for _ in range(3)]
    sendmsg(t, a, [b"x"], cmsg(SOL_SOCKET, SCM_RIGHTS, struct.pack("<3i", *fds)))
    for fd in fds:
        t.files.close(fd)
    assert w.refs == 3
    n, _, fl, msgs, _ = recvmsg(t, b, ctl_space=24)   # room for two fds
    assert n == 1 and fl & MSG_CTRUNC and len(msgs[0][2]) == 8
    assert w.refs == 2                            # the third one was closed
    sendmsg(t, a, [b"y"], cmsg(SOL_SOCKET, SCM_RIGHTS, struct.pack("<i", a)))
    n, _, fl, msgs, _ = recvmsg(t, b, ctl_space=0)     # no control buffer at all
    assert n == 1 and fl & MSG_CTRUNC and msgs == []
    assert fileof(t, a).refs == 1


def test_scm_rights_errors_and_peek(t):
    a, b = pair(t)
    assert sendmsg(t, a, [b"x"], cmsg(SOL_SOCKET, SCM_RIGHTS, struct.pack("<i", 77))) \
        == -errno.EBADF
    assert sendmsg(t, a, [b"x"], cmsg(SOL_SOCKET, 99, b"")) == -errno.EINVAL
    assert sendmsg(t, a, [b"x"], struct.pack("<Qii", 8, SOL_SOCKET, 1)) == -errno.EINVAL
    assert sendmsg(t, a, [b"x"], cmsg(SOL_SOCKET, SCM_RIGHTS,
                                      struct.pack("<254i", *([a] * 254)))) == -errno.EINVAL
    assert sendmsg(t, a, [b"x"], cmsg(6, 1, b"ignored")) == 1   # other levels ignored
    recv(t, b)
    f = fileof(t, a)
    sendmsg(t, a, [b"p"], cmsg(SOL_SOCKET, SCM_RIGHTS, struct.pack("<i", a)))
    _, _, _, msgs, _ = recvmsg(t, b, flags=MSG_PEEK)
    assert len(msgs) == 1 and f.refs == 3         # the peek duplicated it
    _, _, _, msgs2, _ = recvmsg(t, b)
    assert len(msgs2) == 1 and f.refs == 3        # the in-flight reference became an fd
    sendmsg(t, a, [b"q"], cmsg(SOL_SOCKET, SCM_RIGHTS, struct.pack("<i", a)))
    assert f.refs == 4
    assert recv(t, b) == b"q" and f.refs == 3     # read() without a buffer closes them


def test_stream_fds_stop_the_read(t):
    a, b = pair(t)
    send(t, a, b"aa")
    sendmsg(t, a, [b"bb"], cmsg(SOL_SOCKET, SCM_RIGHTS, struct.pack("<i", a)))
    send(t, a, b"cc")
    n, data, _, msgs, _ = recvmsg(t, b, 100)
    assert data == b"aabb" and len(msgs) == 1
    assert recv(t, b) == b"cc"


def test_zero_length_stream_send_drops_fds(t):
    a, b = pair(t)
    assert sendmsg(t, a, [], cmsg(SOL_SOCKET, SCM_RIGHTS, struct.pack("<i", a))) == 0
    assert recv(t, b, 10, MSG_DONTWAIT) == -errno.EAGAIN


def test_scm_credentials(t, k):
    a, b = pair(t, DGRAM)
    setopt(t, b, SO_PASSCRED, 1)
    send(t, a, b"x")
    _, _, _, msgs, _ = recvmsg(t, b)
    assert msgs == [(SOL_SOCKET, SCM_CREDENTIALS, struct.pack("<iII", t.pid, 0, 0))]
    other = FakeTask(k, 321)
    creds = cmsg(SOL_SOCKET, SCM_CREDENTIALS, struct.pack("<iII", 321, 0, 0))
    assert sendmsg(t, a, [b"y"], creds) == 1      # root may claim another pid
    assert recvmsg(t, b)[3][0][2] == struct.pack("<iII", 321, 0, 0)
    u = FakeTask(k, 400, user())
    ua, ub = pair(u, DGRAM)
    bad = cmsg(SOL_SOCKET, SCM_CREDENTIALS, struct.pack("<iII", other.pid, 1000, 1000))
    assert sendmsg(u, ua, [b"z"], bad) == -errno.EPERM
    assert sendmsg(t, a, [b"z"], cmsg(SOL_SOCKET, SCM_CREDENTIALS,
                                      struct.pack("<iII", 9999, 0, 0))) == -errno.ESRCH
    assert sendmsg(t, a, [b"z"], cmsg(SOL_SOCKET, SCM_CREDENTIALS, b"\0" * 8)) == -errno.EINVAL
    send(t, a, b"v")
    n, _, fl, msgs, _ = recvmsg(t, b, ctl_space=20)     # too short for the ucred
    assert fl & MSG_CTRUNC and len(msgs[0][2]) == 4     # cmsg_len says 20
    send(t, a, b"w")
    n, _, fl, msgs, _ = recvmsg(t, b, ctl_space=0)
    assert n == 1 and fl & MSG_CTRUNC


def test_stream_creds_do_not_glue_writers(k):
    t1, t2 = FakeTask(k, 50), FakeTask(k, 60)
    t2.mm = t1.mm
    a, b = pair(t1)
    setopt(t1, b, SO_PASSCRED, 1)
    t2.files = t1.files
    send(t1, a, b"one")
    send(t2, a, b"two")
    r1 = recvmsg(t1, b, 100)
    assert r1[1] == b"one" and r1[3][0][2] == struct.pack("<iII", 50, 0, 0)
    assert recvmsg(t1, b, 100)[1] == b"two"


# ---------------------------------------------------------------- options and timeouts
def test_generic_options(t):
    fd = sock(t)
    assert getopt(t, fd, SO_REUSEADDR) == 0
    assert setopt(t, fd, SO_REUSEADDR, 5) == 0 and getopt(t, fd, SO_REUSEADDR) == 1
    assert setopt(t, fd, SO_KEEPALIVE, 1) == 0 and getopt(t, fd, SO_KEEPALIVE) == 1
    assert getopt(t, fd, SO_ERROR) == 0 and getopt(t, fd, SO_ACCEPTCONN) == 0
    assert getopt(t, fd, SO_TYPE, 2) == struct.pack("<h", STREAM)   # truncated copy
    assert getopt(t, fd, 1234) == -errno.ENOPROTOOPT
    assert setopt(t, fd, SO_TYPE, 1) == -errno.ENOPROTOOPT
    assert getopt(t, fd, 1, level=6) == -errno.EOPNOTSUPP
    assert setopt(t, fd, 1, 1, level=0) == -errno.EOPNOTSUPP
    assert t.sys(S.sys_setsockopt, fd, SOL_SOCKET, SO_REUSEADDR, 0, -1) == -errno.EINVAL


def test_timeouts_in_jiffies(t):
    fd = sock(t)
    tv = getopt(t, fd, SO_RCVTIMEO, 16)
    assert tv == struct.pack("<qq", 0, 0)
    setopt(t, fd, SO_RCVTIMEO, struct.pack("<qq", 0, 100))
    assert getopt(t, fd, SO_RCVTIMEO, 16) == struct.pack("<qq", 0, 4000)   # HZ=250
    setopt(t, fd, SO_SNDTIMEO, struct.pack("<qq", 2, 500000))
    assert getopt(t, fd, SO_SNDTIMEO, 16) == struct.pack("<qq", 2, 500000)
    assert setopt(t, fd, SO_RCVTIMEO, struct.pack("<qq", 0, 1000000)) == -errno.EDOM
    assert setopt(t, fd, SO_RCVTIMEO, struct.pack("<q", 1)) == -errno.EINVAL


def test_rcvtimeo_blocks_with_deadline(t, k):
    a, b = pair(t)
    setopt(t, b, SO_RCVTIMEO, struct.pack("<qq", 1, 0))
    buf = t.mm.alloc(10)
    blk = t.sys(S.sys_recvfrom, b, buf, 10, 0, 0, 0)
    assert isinstance(blk, Block) and blk.timeout == pytest.approx(1.0)
    k.clock.now += 0.6                            # a spurious wake: the deadline stays
    blk2 = t.rerun(S.sys_recvfrom, b, buf, 10, 0, 0, 0)
    assert isinstance(blk2, Block) and blk2.timeout == pytest.approx(0.4)
    t.timed_out = True
    assert t.rerun(S.sys_recvfrom, b, buf, 10, 0, 0, 0) == -errno.EAGAIN
    t.timed_out = False
    blk3 = t.sys(S.sys_recvfrom, b, buf, 10, 0, 0, 0)   # a new call: a new deadline
    assert blk3.timeout == pytest.approx(1.0)
    setopt(t, b, SO_RCVTIMEO, struct.pack("<qq", -1, 0))   # negative: never wait
    assert recv(t, b, 10) == -errno.EAGAIN


def test_poll_masks(t):
    a, b = pair(t)
    fa, fb = fileof(t, a), fileof(t, b)
    assert fa.poll() == POLLOUT | POLLWRNORM | POLLWRBAND
    send(t, a, b"x")
    assert fb.poll() & (POLLIN | POLLRDNORM) == POLLIN | POLLRDNORM
    d1, d2 = pair(t, DGRAM)
    assert fileof(t, d1).poll() == POLLOUT | POLLWRNORM | POLLWRBAND
    s = sock(t, SEQPACKET)
    assert fileof(t, s).poll() & POLLHUP
    lfd = listener(t, "\0pl")
    assert fileof(t, lfd).poll() == 0


def test_waitq_notified_for_epoll(t):
    a, b = pair(t)
    events = []
    fileof(t, b).waitq.add(lambda: events.append("b"))
    send(t, a, b"x")
    assert events == ["b"]
    fileof(t, b).waitq.add(lambda: events.append("hup"))
    t.files.close(a)
    assert events[-1] == "hup"


def test_poll_syscall_sees_sockets(t):
    from usermode.kernel.syscalls import sys_poll as PL
    a, b = pair(t)
    pfd = t.mm.alloc(8, struct.pack("<ihh", b, POLLIN, 0))
    assert isinstance(t.sys(PL.sys_poll, pfd, 1, 1000), Block)
    send(t, a, b"x")
    assert t.sys(PL.sys_poll, pfd, 1, 0) == 1
    assert struct.unpack("<ihh", t.mm.copy_in(pfd, 8))[2] == POLLIN


def test_mmsg(t):
    a, b = pair(t, DGRAM)
    vec = b""
    for p in (b"one", b"two!", b"3"):
        iov = t.mm.alloc(16, struct.pack("<QQ", t.mm.alloc(len(p), p), len(p)))
        vec += struct.pack("<Qi4xQQQQi4xI4x", 0, 0, iov, 1, 0, 0, 0, 0)
    mv = t.mm.alloc(len(vec), vec)
    assert t.sys(S.sys_sendmmsg, a, mv, 3, 0) == 3
    assert [t.mm.read_u32(mv + 64 * i + 56) for i in range(3)] == [3, 4, 1]
    rv = b""
    bufs = []
    for _ in range(4):
        bufs.append(t.mm.alloc(8))
        iov = t.mm.alloc(16, struct.pack("<QQ", bufs[-1], 8))
        rv += struct.pack("<Qi4xQQQQi4xI4x", 0, 0, iov, 1, 0, 0, 0, 0)
    rp = t.mm.alloc(len(rv), rv)
    assert t.sys(S.sys_recvmmsg, b, rp, 4, 0, 0) == 3
    assert t.mm.copy_in(bufs[1], 4) == b"two!"


def test_table_entries():
    from usermode.kernel.syscalls.table import Table
    tab = Table()
    names = {e.name for e in tab.entries if e is not None}
    for n in ("socket", "socketpair", "bind", "listen", "accept", "accept4", "connect",
              "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown", "getsockname",
              "getpeername", "setsockopt", "getsockopt", "sendmmsg", "recvmmsg"):
        assert n in names


def test_peer_options_edges(t):
    fd = sock(t)
    assert getopt(t, fd, SO_PEERGROUPS, 64) == -errno.ENODATA
    assert getopt(t, fd, 28, 64) == -errno.ENOTCONN                  # SO_PEERNAME
    a, _ = pair(t)
    assert getopt(t, a, 28, 2) == struct.pack("<H", AF_UNIX)
    assert getopt(t, a, 28, 16) == -errno.EINVAL                     # sic, as Linux


def test_dgram_pollout_relay(t):
    srv = sock(t, DGRAM)
    bind(t, srv, sun("\0relay"))
    c = sock(t, DGRAM)
    connect(t, c, sun("\0relay"))
    count_sends(t, c, b"m")
    fc = fileof(t, c)
    assert not fc.poll() & POLLOUT
    woke = []
    fc.waitq.add(lambda: woke.append(1))
    recv(t, srv)                                  # the receiver's queue drains...
    assert woke and fc.poll() & POLLOUT           # ...and the sender's pollers hear it
    t.files.close(srv)
    assert fc.poll() & POLLOUT                    # a dead peer: writable, to see the error
    assert send(t, c, b"x") == -errno.ECONNREFUSED


def test_listener_poll_and_shutdown(t):
    lfd = listener(t, "\0lsh")
    blk = accept(t, lfd)[0]
    assert isinstance(blk, Block)
    t.sys(S.sys_shutdown, lfd, 0)
    assert accept(t, lfd)[0] == -errno.EINVAL
    assert connect(t, sock(t), sun("\0lsh")) == -errno.ECONNREFUSED
