"""The host side of the kernel loop: one epoll for host fds, SIGCHLD as a wakeup, a clock."""
from __future__ import annotations

import os
import select
import signal
import socket
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
    """epoll over host fds (console input, mconsole, transports) plus the SIGCHLD wakeup.

    Tracee stops raise SIGCHLD in the kernel process; the C-level handler writes a byte to a
    socket that is in the epoll set, so a stop always ends a wait (no lost wakeups).
    """

    def __init__(self) -> None:
        self.ep = select.epoll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._old_wakeup = signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)
        self._old_handler = signal.signal(signal.SIGCHLD, lambda s, f: None)
        self.ep.register(self._r.fileno(), select.EPOLLIN)

    def add_reader(self, fd: int, callback: Callable[[int], None]) -> None:
        self.handlers[fd] = callback
        self.ep.register(fd, select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR)

    def remove_reader(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            try:
                self.ep.unregister(fd)
            except (OSError, ValueError):
                pass

    def wait(self, timeout: float | None) -> None:
        """Block until a host fd is ready, a tracee stops, or timeout seconds pass."""
        for fd, _ in self.ep.poll(-1 if timeout is None else max(timeout, 0.0)):
            if fd == self._r.fileno():
                try:
                    while self._r.recv(4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            cb = self.handlers.get(fd)
            if cb:
                cb(fd)

    def close(self) -> None:
        signal.set_wakeup_fd(self._old_wakeup)
        signal.signal(signal.SIGCHLD, self._old_handler)
        self.ep.close()
        self._r.close()
        self._w.close()


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
