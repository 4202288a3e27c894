"""The host side of the kernel loop: one epoll for host fds, SIGCHLD as a wakeup, a clock."""
from __future__ import annotations

import fcntl
import os
import select
import signal
import time
from typing import Callable


class Clock:
    @staticmethod
    def monotonic() -> float:
        return time.monotonic()

    @staticmethod
    def realtime() -> float:
        return time.time()

    @staticmethod
    def realtime_ns() -> int:
        return time.time_ns()

    @staticmethod
    def monotonic_ns() -> int:
        return time.monotonic_ns()

    @staticmethod
    def boottime_ns() -> int:
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


class EventLoop:
    """The kernel's wait: tracee stops (SIGCHLD) and host fds (console input ...) as signals.

    SIGCHLD and SIGIO are blocked in the kernel process and taken with sigtimedwait, so a
    wake costs one syscall and no Python signal handler. Host fds are put in O_ASYNC mode
    (SIGIO on new input); on SIGIO, a zero-timeout epoll says which ones are ready. A
    signal that arrives while we work stays pending, so no wakeup is lost.
    """

    WAKE = {signal.SIGCHLD, signal.SIGIO}

    def __init__(self) -> None:
        self.ep = select.epoll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.async_fds: dict[int, int] = {}          # fd -> its old status flags
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, self.WAKE)

    def add_reader(self, fd: int, callback: Callable[[int], None]) -> None:
        self.ep.register(fd, select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR)
        self.handlers[fd] = callback
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_ASYNC)
            self.async_fds[fd] = flags
        except OSError:
            pass
        self.poll_fds()                # input that arrived before O_ASYNC was set

    def remove_reader(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            try:
                self.ep.unregister(fd)
            except (OSError, ValueError):
                pass
            flags = self.async_fds.pop(fd, None)
            if flags is not None:
                try:
                    fcntl.fcntl(fd, fcntl.F_SETFL, flags)
                except OSError:
                    pass

    def poll_fds(self, rounds: int = 4) -> None:
        """Serve the ready fds. Again while some stay ready: one SIGIO can stand for data
        and the end of file together (a pipe's writer wrote and left), and no signal
        comes for the end after the data was read."""
        for _ in range(rounds):
            if not self.handlers:
                return
            ready = self.ep.poll(0)
            if not ready:
                return
            for fd, _ in ready:
                cb = self.handlers.get(fd)
                if cb:
                    cb(fd)

    def wait(self, timeout: float | None) -> None:
        """Block until a tracee stops, a host fd has input, or timeout seconds pass."""
        if timeout is None:
            sig = signal.sigwaitinfo(self.WAKE).si_signo
        else:
            info = signal.sigtimedwait(self.WAKE, max(timeout, 0.0))
            sig = info.si_signo if info is not None else 0
        if sig != signal.SIGCHLD:
            self.poll_fds()

    def close(self) -> None:
        for fd in list(self.handlers):
            self.remove_reader(fd)
        # drop wakeups still pending for us, then restore the caller's mask
        while signal.sigtimedwait(self.WAKE, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
        self.ep.close()


def read_fd(fd: int, n: int = 65536) -> bytes:
    try:
        return os.read(fd, n)
    except BlockingIOError:
        return b""
    except OSError:
        return b""


def write_fd(fd: int, data: bytes) -> int:
    """Write all of data to a host fd (the console), retrying short writes."""
    total = 0
    while total < len(data):
        try:
            n = os.write(fd, data[total:])
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        except OSError:
            return total
        total += n
    return total


def set_nonblocking(fd: int, on: bool = True) -> None:
    os.set_blocking(fd, not on)


def isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def terminal_size(fd: int) -> tuple[int, int]:
    try:
        s = os.get_terminal_size(fd)
        return s.lines, s.columns
    except OSError:
        return 24, 80


def set_raw(fd: int):
    """Put a host terminal in raw mode (the guest's tty layer does the editing); returns
    the old mode for restore_mode()."""
    import termios
    import tty
    try:
        old = termios.tcgetattr(fd)
        tty.setraw(fd, termios.TCSANOW)
        return old
    except termios.error:
        return None


def restore_mode(fd: int, mode) -> None:
    import termios
    try:
        termios.tcsetattr(fd, termios.TCSADRAIN, mode)
    except termios.error:
        pass
