"""timerfd and signalfd logic with a fake clock, a fake loop and a fake host."""
from __future__ import annotations

import errno
import struct

import pytest
from test_fs_fakes import FakeTask, call, make_task, user_creds

from usermode.fs.file import POLLIN
from usermode.fs.signalfd import SignalFd, to_signalfd_siginfo
from usermode.fs.timerfd import TFD_TIMER_ABSTIME, TimerFd
from usermode.kernel.errors import Block
from usermode.kernel.syscalls import sys_fdtimers as FT
from usermode.kernel.syscalls import sys_file as F
from usermode.kernel.wait import WaitQueue

MS = 1_000_000


class FakeClock:
    def __init__(self) -> None:
        self.ns = 1_000_000 * MS

    def monotonic_ns(self) -> int:
        return self.ns

    realtime_ns = boottime_ns = monotonic_ns


class FakeLoop:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.timers: list[tuple[int, object]] = []

    def call_later(self, delay: float, fn) -> int:
        self.timers.append((self.clock.ns + round(delay * 1e9), fn))
        return len(self.timers)

    def advance(self, ns: int) -> None:
        self.clock.ns += ns
        due = [x for x in self.timers if x[0] <= self.clock.ns]
        self.timers = [x for x in self.timers if x[0] > self.clock.ns]
        for _, fn in due:
            fn()


@pytest.fixture
def t() -> FakeTask:
    t = make_task()
    clock = FakeClock()
    loop = FakeLoop(clock)
    t.kernel.clock = clock
    t.kernel.loop_ = loop
    t.kernel.call_later = loop.call_later
    t.kernel.current = None
    t.process.signal_wait = WaitQueue()
    return t


def its(interval_ns: int, value_ns: int) -> bytes:
    return struct.pack("<qqqq", interval_ns // 10**9, interval_ns % 10**9,
                       value_ns // 10**9, value_ns % 10**9)


def settime(t, fd, interval_ns, value_ns, flags=0, old=0) -> int:
    return call(FT.sys_timerfd_settime, t, fd, flags, t.mm.alloc(32, its(interval_ns, value_ns)),
                old)


def gettime(t, fd) -> tuple[int, int, int, int]:
    buf = t.mm.alloc(32)
    assert call(FT.sys_timerfd_gettime, t, fd, buf) == 0
    return struct.unpack("<qqqq", t.mm.copy_in(buf, 32))


def read(t, fd, n=8):
    buf = t.mm.alloc(n)
    try:
        r = call(F.sys_read, t, fd, buf, n)
    except Block as b:
        return b
    return r if r < 0 else t.mm.copy_in(buf, r)


def ticks(t, fd) -> int:
    data = read(t, fd)
    assert isinstance(data, bytes), data
    return struct.unpack("<Q", data)[0]


# -- timerfd
def test_create_checks(t):
    assert call(FT.sys_timerfd_create, t, 12345, 0) == -errno.EINVAL
    assert call(FT.sys_timerfd_create, t, 1, 1) == -errno.EINVAL
    assert call(FT.sys_timerfd_create, t, 8, 0) >= 0            # root may use _ALARM
    t.creds = user_creds()
    assert call(FT.sys_timerfd_create, t, 9, 0) == -errno.EPERM
    fd = call(FT.sys_timerfd_create, t, 1, 0o2004000)
    assert fd >= 0 and t.files.get_cloexec(fd) and t.files.get(fd).nonblocking


def test_one_shot(t):
    fd = call(FT.sys_timerfd_create, t, 1, 0)
    f = t.files.get(fd)
    assert settime(t, fd, 0, 50 * MS) == 0
    assert gettime(t, fd) == (0, 0, 0, 50 * MS)
    assert read(t, fd, 4) == -errno.EINVAL
    b = read(t, fd)
    assert isinstance(b, Block) and f.waitq in b.queues
    woke = []
    f.waitq.add(lambda: woke.append(1))
    t.kernel.loop_.advance(30 * MS)
    assert not woke and f.poll() == 0
    assert gettime(t, fd) == (0, 0, 0, 20 * MS)
    t.kernel.loop_.advance(20 * MS)
    assert woke and f.poll() == POLLIN
    assert ticks(t, fd) == 1
    assert gettime(t, fd) == (0, 0, 0, 0)
    t.kernel.loop_.advance(1000 * MS)
    f.flags |= 0o4000
    assert read(t, fd) == -errno.EAGAIN


def test_periodic_counts_from_elapsed_time(t):
    fd = call(FT.sys_timerfd_create, t, 1, 0o4000)
    settime(t, fd, 20 * MS, 20 * MS)
    t.kernel.clock.ns += 110 * MS             # no loop timer ran: the reader is late
    assert ticks(t, fd) == 5
    assert gettime(t, fd) == (0, 20 * MS, 0, 10 * MS)
    t.kernel.clock.ns += 10 * MS
    assert ticks(t, fd) == 1
    assert read(t, fd) == -errno.EAGAIN


def test_rearm_invalidates_old_wakeups(t):
    fd = call(FT.sys_timerfd_create, t, 1, 0)
    f = t.files.get(fd)
    settime(t, fd, 0, 10 * MS)
    settime(t, fd, 0, 100 * MS)
    woke = []
    f.waitq.add(lambda: woke.append(1))
    t.kernel.loop_.advance(10 * MS)
    assert not woke and f.poll() == 0
    t.kernel.loop_.advance(90 * MS)
    assert woke and ticks(t, fd) == 1


def test_disarm_and_old_value(t):
    fd = call(FT.sys_timerfd_create, t, 1, 0o4000)
    settime(t, fd, 20 * MS, 30 * MS)
    t.kernel.clock.ns += 5 * MS
    old = t.mm.alloc(32)
    assert settime(t, fd, 0, 0, old=old) == 0
    assert struct.unpack("<qqqq", t.mm.copy_in(old, 32)) == (0, 20 * MS, 0, 25 * MS)
    assert gettime(t, fd) == (0, 0, 0, 0)
    t.kernel.clock.ns += 100 * MS
    assert read(t, fd) == -errno.EAGAIN


def test_abstime_in_the_past(t):
    fd = call(FT.sys_timerfd_create, t, 0, 0o4000)
    now = t.kernel.clock.ns
    assert settime(t, fd, 10 * MS, now - 35 * MS, flags=TFD_TIMER_ABSTIME | 2) == 0
    assert ticks(t, fd) == 4                   # at -35, -25, -15, -5 ms


def test_settime_checks(t):
    fd = call(FT.sys_timerfd_create, t, 1, 0)
    bad = t.mm.alloc(32, struct.pack("<qqqq", 0, 0, 0, 10**9))
    assert call(FT.sys_timerfd_settime, t, fd, 0, bad, 0) == -errno.EINVAL
    neg = t.mm.alloc(32, struct.pack("<qqqq", -1, 0, 1, 0))
    assert call(FT.sys_timerfd_settime, t, fd, 0, neg, 0) == -errno.EINVAL
    assert settime(t, fd, 0, MS, flags=4) == -errno.EINVAL
    assert settime(t, 99, 0, MS) == -errno.EBADF
    efd = call(FT.sys_signalfd4, t, -1, t.mm.alloc(8, bytes(8)), 8, 0)
    assert settime(t, efd, 0, MS) == -errno.EINVAL


def test_timer_wakes_only_when_waited_for(t):
    fd = call(FT.sys_timerfd_create, t, 1, 0)
    f = t.files.get(fd)
    settime(t, fd, MS, MS)
    loop = t.kernel.loop_
    assert len(loop.timers) == 1
    loop.advance(MS)
    assert loop.timers == []                  # nobody waits: no timer chain
    loop.advance(10 * MS)
    assert f.poll_queues() == [f.waitq]       # ready: no wakeup needed
    assert ticks(t, fd) == 11
    f.poll_queues()
    assert len(loop.timers) == 1


# -- signalfd
class FakeHost:
    def __init__(self) -> None:
        self.queue: list[bytes] = []

    def pending(self, t) -> int:
        m = 0
        for info in self.queue:
            m |= 1 << (struct.unpack_from("<i", info)[0] - 1)
        return m

    def dequeue(self, t, mask: int) -> bytes | None:
        for i, info in enumerate(self.queue):
            if mask >> (struct.unpack_from("<i", info)[0] - 1) & 1:
                return self.queue.pop(i)
        return None


def kill_info(sig: int, pid: int, uid: int, code: int = 0) -> bytes:
    return struct.pack("<iiiiiI", sig, 0, code, 0, pid, uid).ljust(128, b"\0")


@pytest.fixture
def host(monkeypatch) -> FakeHost:
    h = FakeHost()
    monkeypatch.setattr(FT, "HOST_SIGNALS", h)
    return h


def sigmask(*sigs: int) -> int:
    m = 0
    for s in sigs:
        m |= 1 << (s - 1)
    return m


def signalfd(t, fd, mask, flags=0, size=8) -> int:
    return call(FT.sys_signalfd4, t, fd, t.mm.alloc(8, struct.pack("<Q", mask)), size, flags)


def test_signalfd_create_and_update(t, host):
    assert signalfd(t, -1, 0, size=4) == -errno.EINVAL
    assert signalfd(t, -1, 0, flags=1) == -errno.EINVAL
    assert signalfd(t, 0, 0) == -errno.EBADF
    tfd = call(FT.sys_timerfd_create, t, 1, 0)
    assert signalfd(t, tfd, 0) == -errno.EINVAL
    fd = signalfd(t, -1, sigmask(10, 9, 19), flags=0o2004000)
    f = t.files.get(fd)
    assert isinstance(f, SignalFd) and f.mask == sigmask(10) and f.nonblocking
    assert t.files.get_cloexec(fd)
    assert signalfd(t, fd, sigmask(12)) == fd and f.mask == sigmask(12)


def test_signalfd_read(t, host):
    fd = signalfd(t, -1, sigmask(10, 12))
    f = t.files.get(fd)
    assert f.poll() == 0
    b = read(t, fd, 128)
    assert isinstance(b, Block) and t.process.signal_wait in b.queues
    host.queue += [kill_info(10, 5, 1000), kill_info(15, 6, 0), kill_info(12, 7, 0)]
    assert f.poll() == POLLIN
    assert read(t, fd, 127) == -errno.EINVAL
    data = read(t, fd, 1024)
    assert len(data) == 256
    recs = [struct.unpack_from("<IiiII", data, i) for i in (0, 128)]
    assert recs == [(10, 0, 0, 5, 1000), (12, 0, 0, 7, 0)]
    assert len(host.queue) == 1 and f.poll() == 0
    f.flags |= 0o4000
    assert read(t, fd, 128) == -errno.EAGAIN


def test_signalfd_siginfo_layouts():
    chld = struct.pack("<iiiiiIiiqq", 17, 0, 1, 0, 42, 7, 3, 0, 11, 22).ljust(128, b"\0")
    out = to_signalfd_siginfo(chld)
    assert struct.unpack_from("<IiiII", out) == (17, 0, 1, 42, 7)
    assert struct.unpack_from("<i", out, 40)[0] == 3
    assert struct.unpack_from("<QQ", out, 56) == (11, 22)
    rt = struct.pack("<iiiiiIq", 34, 0, -1, 0, 9, 8, 1234).ljust(128, b"\0")
    out = to_signalfd_siginfo(rt)
    assert struct.unpack_from("<IiiII", out) == (34, 0, -1, 9, 8)
    assert struct.unpack_from("<i", out, 44)[0] == 1234
    assert struct.unpack_from("<Q", out, 48)[0] == 1234
    segv = struct.pack("<iiiiQ", 11, 0, 1, 0, 0xdead000).ljust(128, b"\0")
    out = to_signalfd_siginfo(segv)
    assert struct.unpack_from("<Q", out, 72)[0] == 0xdead000
    assert struct.unpack_from("<I", out, 12)[0] == 0
