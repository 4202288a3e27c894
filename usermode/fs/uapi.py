"""Guest structures shared by the file syscalls: iovec arrays, timespec/timeval."""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.kernel.task import Task

UIO_MAXIOV = 1024
MAX_RW_COUNT = 0x7FFFF000           # INT_MAX & PAGE_MASK: Linux's per-call I/O cap
_IOV = struct.Struct("<QQ")
_TS = struct.Struct("<qq")


def read_iovec(t: "Task", iov: int, cnt: int) -> list[tuple[int, int]]:
    """[(base, len)], with Linux's checks: EINVAL for a bad count or a total past ssize_t."""
    if cnt < 0 or cnt > UIO_MAXIOV:
        raise Errno(errno.EINVAL)
    if cnt == 0:
        return []
    raw = t.mm.copy_in(iov, cnt * 16)
    out = []
    total = 0
    for base, n in _IOV.iter_unpack(raw):
        if n >> 63:
            raise Errno(errno.EINVAL)
        n = min(n, MAX_RW_COUNT - total)
        total += n
        out.append((base, n))
    return out


def gather(t: "Task", iovs: list[tuple[int, int]]) -> bytes:
    return b"".join(t.mm.copy_in(b, n) for b, n in iovs if n)


def scatter(t: "Task", iovs: list[tuple[int, int]], data: bytes) -> None:
    off = 0
    for base, n in iovs:
        if off >= len(data):
            break
        if n:
            t.mm.copy_out(base, data[off:off + n])
            off += n


def read_timespec(t: "Task", addr: int) -> tuple[int, int]:
    sec, nsec = _TS.unpack(t.mm.copy_in(addr, 16))
    return sec, nsec


def timespec_secs(t: "Task", addr: int) -> float:
    """A relative timeout; EINVAL for negative or out-of-range values."""
    sec, nsec = read_timespec(t, addr)
    if sec < 0 or not 0 <= nsec < 10**9:
        raise Errno(errno.EINVAL)
    return sec + nsec / 1e9


def pack_timespec(sec: int, nsec: int) -> bytes:
    return _TS.pack(sec, nsec)
