"""timerfd(2): a timer whose expirations are read from a file descriptor.

Times are integer nanoseconds on the timer's own clock (`clock_ns()`). Expirations are
counted from elapsed time (`_update`), never from how many loop timers fired, so a late
reader of a periodic timer sees every period that passed. A loop timer is only scheduled
(`schedule(delay_seconds, fn)`) when someone may wait: a blocked read or a poller asking
for `poll_queues()`; it notifies `waitq` at the next expiration. Every settime bumps
`gen`, so wakeups scheduled for an older setting do nothing.
"""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Callable

from usermode.fs.file import O_NONBLOCK, O_RDWR, POLLIN, File
from usermode.kernel.errors import Block, Errno
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.kernel.task import Task

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME = 0, 1, 7
CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM = 8, 9
TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET = 1, 2
TFD_NONBLOCK, TFD_CLOEXEC = 0o4000, 0o2000000
NSEC = 10**9


class TimerFd(File):
    def __init__(self, clockid: int, flags: int, clock_ns: Callable[[], int],
                 schedule: Callable[[float, Callable[[], None]], object]) -> None:
        super().__init__(O_RDWR | (flags & O_NONBLOCK))
        self.clockid = clockid
        self.clock_ns = clock_ns
        self.schedule = schedule
        self.next_ns = 0          # absolute time of the next expiration; 0: disarmed
        self.interval_ns = 0
        self.ticks = 0            # expirations not read yet
        self.gen = 0              # bumped by every settime/release: stale wakeups ignore
        self.wake_at: int | None = None     # next_ns a wakeup is scheduled for (this gen)

    # -- the timer
    def _update(self, now: int) -> None:
        """Move the expirations that have passed into `ticks`."""
        if not self.next_ns or now < self.next_ns:
            return
        if self.interval_ns:
            n = (now - self.next_ns) // self.interval_ns + 1
            self.ticks += n
            self.next_ns += n * self.interval_ns
        else:
            self.ticks += 1
            self.next_ns = 0

    def gettime(self) -> tuple[int, int]:
        """(interval_ns, remaining_ns), as timerfd_gettime reports them."""
        now = self.clock_ns()
        self._update(now)
        remaining = max(self.next_ns - now, 1) if self.next_ns else 0
        return self.interval_ns, remaining

    def settime(self, flags: int, interval_ns: int, value_ns: int) -> tuple[int, int]:
        """Arm (value_ns relative, or absolute with TFD_TIMER_ABSTIME) or disarm (value 0).
        Returns the old setting as gettime() would have."""
        old = self.gettime()
        self.gen += 1
        self.wake_at = None
        self.ticks = 0
        self.interval_ns = interval_ns if value_ns else 0
        if not value_ns:
            self.next_ns = 0
        elif flags & TFD_TIMER_ABSTIME:
            self.next_ns = max(value_ns, 1)
        else:
            self.next_ns = self.clock_ns() + value_ns
        self._arm_wake()
        self.waitq.notify()
        return old

    def _arm_wake(self) -> None:
        """Make sure a loop timer will notify waitq at the next expiration."""
        if not self.next_ns or self.wake_at == self.next_ns:
            return
        self.wake_at = self.next_ns
        delay = max(self.next_ns - self.clock_ns(), 0) / NSEC
        gen = self.gen
        self.schedule(delay, lambda: self._fire(gen))

    def _fire(self, gen: int) -> None:
        if gen != self.gen:
            return
        self.wake_at = None
        now = self.clock_ns()
        self._update(now)
        if self.ticks:
            self.waitq.notify()
        else:                      # woke a little early: try again at the expiration
            self._arm_wake()

    # -- the file
    def read(self, t: "Task", n: int) -> bytes:
        if n < 8:
            raise Errno(errno.EINVAL)
        self._update(self.clock_ns())
        if not self.ticks:
            if self.nonblocking:
                raise Errno(errno.EAGAIN)
            self._arm_wake()
            raise Block(self.waitq)
        v, self.ticks = self.ticks, 0
        return struct.pack("<Q", v & ((1 << 64) - 1))

    def poll(self) -> int:
        self._update(self.clock_ns())
        return POLLIN if self.ticks else 0

    def poll_queues(self) -> list[WaitQueue]:
        self._update(self.clock_ns())
        if not self.ticks:
            self._arm_wake()
        return [self.waitq]

    def release(self) -> None:
        self.gen += 1
        self.next_ns = 0

    def name(self) -> bytes:
        return b"anon_inode:[timerfd]"
