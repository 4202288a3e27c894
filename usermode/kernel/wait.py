"""Wait queues: how parked tasks learn that what they wait for may have happened."""
from __future__ import annotations

from typing import Callable


class WaitQueue:
    """Waiters are callables (a parked task's wake function, or an epoll watch).

    notify() calls each waiter once and forgets it; waiters re-register if they block again.
    Waiters must only schedule work (the kernel re-runs a handler later), never re-enter.
    """

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: list[Callable[[], None]] = []

    def add(self, waiter: Callable[[], None]) -> None:
        self.waiters.append(waiter)

    def remove(self, waiter: Callable[[], None]) -> None:
        try:
            self.waiters.remove(waiter)
        except ValueError:
            pass

    def notify(self) -> None:
        if self.waiters:
            ws, self.waiters = self.waiters, []
            for w in ws:
                w()
