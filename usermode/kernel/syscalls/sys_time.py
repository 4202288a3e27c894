"""Time syscalls the filter traps (clock_gettime, gettimeofday, nanosleep run natively)."""
from __future__ import annotations

import errno
import struct

from usermode.kernel.errors import Errno, s32
from usermode.kernel.task import Task

SIGALRM = 14
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2


class RealTimer:
    """ITIMER_REAL of one process: SIGALRM from the kernel loop's timers."""

    __slots__ = ("deadline", "interval", "token")

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.interval = 0.0
        self.token = 0


def _timer(t: Task) -> RealTimer:
    p = t.process
    timer = getattr(p, "real_timer", None)
    if timer is None:
        timer = p.real_timer = RealTimer()
    return timer


def _arm(t: Task, value: float, interval: float) -> tuple[float, float]:
    k = t.kernel
    proc = t.process
    timer = _timer(t)
    now = k.clock.monotonic()
    remaining = max(timer.deadline - now, 0.0) if timer.deadline is not None else 0.0
    old = (remaining, timer.interval)
    timer.token += 1
    timer.interval = interval
    if value <= 0:
        timer.deadline = None
        return old
    timer.deadline = now + value
    token = timer.token

    def fire() -> None:
        if timer.token != token or proc.zombie:
            return
        if timer.interval > 0:
            _rearm(k, proc, timer)
        else:
            timer.deadline = None
        k.send_signal(proc, SIGALRM)
    k.call_later(value, fire)
    return old


def _rearm(k, proc, timer: RealTimer) -> None:
    timer.token += 1
    token = timer.token
    timer.deadline = k.clock.monotonic() + timer.interval

    def fire() -> None:
        if timer.token != token or proc.zombie:
            return
        _rearm(k, proc, timer)
        k.send_signal(proc, SIGALRM)
    k.call_later(timer.interval, fire)


def sys_alarm(t: Task, seconds: int) -> int:
    """alarm(2)"""
    remaining, _ = _arm(t, float(seconds & 0xFFFFFFFF), 0.0)
    return int(remaining + 0.999999) if remaining else 0


def _tv(data: bytes) -> float:
    sec, usec = struct.unpack("<qq", data)
    if sec < 0 or not 0 <= usec < 1_000_000:
        raise Errno(errno.EINVAL)
    return sec + usec / 1e6


def _pack_tv(x: float) -> bytes:
    sec = int(x)
    usec = int(round((x - sec) * 1e6))
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    return struct.pack("<qq", sec, usec)


def sys_setitimer(t: Task, which: int, new: int, old: int) -> int:
    """setitimer(2): ITIMER_REAL; the CPU-time timers are accepted but never fire."""
    which = s32(which)
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        raise Errno(errno.EINVAL)
    data = t.mm.copy_in(new, 32) if new else bytes(32)
    interval, value = _tv(data[:16]), _tv(data[16:])
    if which != ITIMER_REAL:
        if old:
            t.mm.copy_out(old, bytes(32))
        return 0
    rem, ival = _arm(t, value, interval)
    if old:
        t.mm.copy_out(old, _pack_tv(ival) + _pack_tv(rem))
    return 0


def sys_getitimer(t: Task, which: int, cur: int) -> int:
    """getitimer(2)"""
    which = s32(which)
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        raise Errno(errno.EINVAL)
    if which != ITIMER_REAL:
        t.mm.copy_out(cur, bytes(32))
        return 0
    timer = _timer(t)
    now = t.kernel.clock.monotonic()
    rem = max(timer.deadline - now, 0.0) if timer.deadline is not None else 0.0
    t.mm.copy_out(cur, _pack_tv(timer.interval) + _pack_tv(rem))
    return 0


def sys_settimeofday(t: Task, tv: int, tz: int) -> int:
    """settimeofday(2): the guest may not set the host clock."""
    raise Errno(errno.EPERM)


def sys_clock_settime(t: Task, clk: int, tp: int) -> int:
    """clock_settime(2): the guest may not set the host clock."""
    if s32(clk) not in (0, 1, 4, 7):
        raise Errno(errno.EINVAL)
    t.mm.copy_in(tp, 16)
    raise Errno(errno.EPERM if s32(clk) == 0 else errno.EINVAL)


def sys_adjtimex(t: Task, buf: int) -> int:
    """adjtimex(2): read-only (modes 0); TIME_OK."""
    modes = t.mm.read_u32(buf)
    if modes:
        raise Errno(errno.EPERM)
    return 0


SYSCALLS = [
    ("alarm", sys_alarm, "supported", ""),
    ("setitimer", sys_setitimer, "partial", "ITIMER_VIRTUAL/PROF never fire"),
    ("getitimer", sys_getitimer, "supported", ""),
    ("settimeofday", sys_settimeofday, "supported", "EPERM: the host clock is not the guest's"),
    ("clock_settime", sys_clock_settime, "supported", "EPERM"),
    ("adjtimex", sys_adjtimex, "partial", "read-only"),
]
