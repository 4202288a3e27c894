"""File descriptors for timers and signals: timerfd_create/settime/gettime, signalfd(4).

Timer files count expirations from the clock (usermode/fs/timerfd.py) and wake waiters with
kernel.call_later. Signal files read signals that are pending in the host task: they are
dequeued by injecting rt_sigtimedwait(mask, info, {0, 0}) into the reading task, and the
siginfo gets the guest's view (sender pid/uid) the way sys_rt_sigtimedwait rewrites it.
"""
from __future__ import annotations

import errno
import struct

from usermode.fs.signalfd import SFD_CLOEXEC, SFD_NONBLOCK, SIGINFO_SIZE, SignalFd
from usermode.fs.timerfd import (CLOCK_BOOTTIME, CLOCK_BOOTTIME_ALARM, CLOCK_MONOTONIC,
                                 CLOCK_REALTIME, CLOCK_REALTIME_ALARM, NSEC, TFD_CLOEXEC,
                                 TFD_NONBLOCK, TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET,
                                 TimerFd)
from usermode.host import ptrace as pt
from usermode.host.platform import Injector, InjectError, signal_state
from usermode.kernel.errors import Errno, s32
from usermode.kernel.task import Task

_ITS = struct.Struct("<qqqq")          # struct itimerspec: it_interval, it_value
NR_RT_SIGTIMEDWAIT = 128
RED_ZONE_SKIP = 4096                   # scratch lies this far below the guest's rsp


# -- timerfd
def _clock(t: Task, clockid: int):
    c = t.kernel.clock
    if clockid in (CLOCK_REALTIME, CLOCK_REALTIME_ALARM):
        return c.realtime_ns
    if clockid in (CLOCK_BOOTTIME, CLOCK_BOOTTIME_ALARM):
        return c.boottime_ns
    return c.monotonic_ns


def _timerfd(t: Task, fd: int) -> TimerFd:
    f = t.files.get(s32(fd))
    if not isinstance(f, TimerFd):
        raise Errno(errno.EINVAL)
    return f


def _pack_its(interval_ns: int, value_ns: int) -> bytes:
    return _ITS.pack(interval_ns // NSEC, interval_ns % NSEC, value_ns // NSEC, value_ns % NSEC)


def sys_timerfd_create(t: Task, clockid: int, flags: int) -> int:
    """timerfd_create(2)"""
    clockid, fl = s32(clockid), s32(flags)
    if fl & ~(TFD_CLOEXEC | TFD_NONBLOCK):
        raise Errno(errno.EINVAL)
    if clockid not in (CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM,
                       CLOCK_BOOTTIME_ALARM):
        raise Errno(errno.EINVAL)
    if clockid in (CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM) and not t.creds.is_root:
        raise Errno(errno.EPERM)                    # CAP_WAKE_ALARM
    k = t.kernel
    f = TimerFd(clockid, fl, _clock(t, clockid), k.call_later)
    return t.files.install(f, bool(fl & TFD_CLOEXEC))


def sys_timerfd_settime(t: Task, fd: int, flags: int, new: int, old: int) -> int:
    """timerfd_settime(2)"""
    isec, insec, vsec, vnsec = _ITS.unpack(t.mm.copy_in(new, 32))
    fl = s32(flags)
    if fl & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET):
        raise Errno(errno.EINVAL)
    if isec < 0 or vsec < 0 or not 0 <= insec < NSEC or not 0 <= vnsec < NSEC:
        raise Errno(errno.EINVAL)
    f = _timerfd(t, fd)
    if old:
        t.mm.copy_in(old, 32)                       # EFAULT before the timer changes
    oi, ov = f.settime(fl, isec * NSEC + insec, vsec * NSEC + vnsec)
    if old:
        t.mm.copy_out(old, _pack_its(oi, ov))
    return 0


def sys_timerfd_gettime(t: Task, fd: int, cur: int) -> int:
    """timerfd_gettime(2)"""
    f = _timerfd(t, fd)
    interval, value = f.gettime()
    t.mm.copy_out(cur, _pack_its(interval, value))
    return 0


# -- signalfd
class HostSignals:
    """The host side of signalfd: what is pending in a task, and dequeueing it."""

    def pending(self, t: Task) -> int:
        pend, _, _, _ = signal_state(t.host_tid)
        return pend

    def dequeue(self, t: Task, mask: int) -> bytes | None:
        """Run rt_sigtimedwait(mask, info, {0,0}, 8) in t (which is in a syscall stop).
        The arguments live on t's stack below the red zone; registers are restored."""
        k = t.kernel
        saved = pt.Regs.from_buffer_copy(t.regs.r)
        base = ((saved[pt.RSP] - RED_ZONE_SKIP) & ~63) - 256
        set_at, ts_at, info_at = base, base + 16, base + 64
        mem = t.mm.mem
        if not mem.write(base, struct.pack("<Q", mask) + bytes(8) + bytes(16)):
            return None
        inj = Injector(t.host_tid)
        try:
            res = inj.call(NR_RT_SIGTIMEDWAIT, set_at, info_at, ts_at, 8)
        except InjectError:
            res = -errno.EINTR
        finally:
            pt.setregs(t.host_tid, saved)
            t.regs.r[:] = saved
            for sig in inj.deferred_signals:
                k.send_signal_to_task(t, sig)
        if res <= 0:
            return None
        info = mem.read(info_at, SIGINFO_SIZE) or struct.pack("<i", res).ljust(SIGINFO_SIZE, b"\0")
        q = t.process.siginfo.get(res)
        if q and int.from_bytes(info[16:20], "little", signed=True) == k.host_pid:
            info = q.popleft()
        return info


HOST_SIGNALS = HostSignals()


def sys_signalfd4(t: Task, fd: int, mask: int, sizemask: int, flags: int) -> int:
    """signalfd4(2)"""
    fd, fl = s32(fd), s32(flags)
    if fl & ~(SFD_CLOEXEC | SFD_NONBLOCK):
        raise Errno(errno.EINVAL)
    if sizemask != 8:
        raise Errno(errno.EINVAL)
    sigset = struct.unpack("<Q", t.mm.copy_in(mask, 8))[0]
    if fd == -1:
        f = SignalFd(t, sigset, fl, HOST_SIGNALS)
        return t.files.install(f, bool(fl & SFD_CLOEXEC))
    f = t.files.get(fd)
    if not isinstance(f, SignalFd):
        raise Errno(errno.EINVAL)
    f.set_mask(sigset)
    return fd


def sys_signalfd(t: Task, fd: int, mask: int, sizemask: int) -> int:
    """signalfd(2)"""
    return sys_signalfd4(t, fd, mask, sizemask, 0)


SYSCALLS = [
    ("timerfd_create", sys_timerfd_create, "partial",
     "BOOTTIME/ALARM clocks do not wake a suspended host; CANCEL_ON_SET accepted, never fires"),
    ("timerfd_settime", sys_timerfd_settime, "supported", ""),
    ("timerfd_gettime", sys_timerfd_gettime, "supported", ""),
    ("signalfd", sys_signalfd, "supported", ""),
    ("signalfd4", sys_signalfd4, "supported", "reads dequeue the reader's host-pending signals"),
]
