"""How handlers report errors and blocking."""
from __future__ import annotations

import errno as _errno


class Errno(Exception):
    """Raise Errno(EINVAL) from a handler; the dispatcher returns -EINVAL to the guest."""

    __slots__ = ("errno",)

    def __init__(self, code: int) -> None:
        self.errno = code

    def __str__(self) -> str:
        return _errno.errorcode.get(self.errno, str(self.errno))


class Block(Exception):
    """Raised by a handler that must wait: the task is parked on `queues` until one is
    notified (or `timeout` seconds pass), then the handler is called again from scratch.
    So a handler must not change any state before it raises Block.
    On timeout the retried handler sees `t.timed_out` True.
    """

    __slots__ = ("queues", "timeout")

    def __init__(self, *queues, timeout: float | None = None) -> None:
        self.queues = queues
        self.timeout = timeout


def s32(x: int) -> int:
    """A raw 64-bit register value read as a C int."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def s64(x: int) -> int:
    return x - (1 << 64) if x & (1 << 63) else x
