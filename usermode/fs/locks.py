"""Advisory locks kept by our kernel: flock(2) (owned by the open file) and fcntl record
locks (owned by the process, or by the open file for OFD locks), per inode."""
from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

from usermode.fs.inode import Inode
from usermode.kernel.errors import Block, Errno
from usermode.kernel.wait import WaitQueue

F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8
INF = 1 << 64


@dataclass(slots=True)
class RecordLock:
    owner: Any           # a Process (POSIX locks) or a File (OFD locks)
    type: int
    start: int
    end: int             # exclusive; INF: to end of file
    pid: int


@dataclass(slots=True)
class InodeLocks:
    flocks: dict[Any, int] = field(default_factory=dict)   # File -> LOCK_SH/LOCK_EX
    records: list[RecordLock] = field(default_factory=list)
    waitq: WaitQueue = field(default_factory=WaitQueue)


def locks_of(inode: Inode) -> InodeLocks:
    if inode.locks is None:
        inode.locks = InodeLocks()
    return inode.locks


def _alive(owner: Any) -> bool:
    """Record locks of a process that has exited are gone (lazy cleanup)."""
    return not getattr(owner, "zombie", False) and not getattr(owner, "reaped", False)


def flock(inode: Inode, f: Any, op: int) -> None:
    lk = locks_of(inode)
    kind = op & ~LOCK_NB
    if kind == LOCK_UN:
        if lk.flocks.pop(f, None) is not None:
            lk.waitq.notify()
        return
    if kind not in (LOCK_SH, LOCK_EX):
        raise Errno(errno.EINVAL)
    for other, t in lk.flocks.items():
        if other is not f and (kind == LOCK_EX or t == LOCK_EX):
            if op & LOCK_NB:
                raise Errno(errno.EWOULDBLOCK)
            raise Block(lk.waitq)
    lk.flocks[f] = kind
    lk.waitq.notify()


def conflict(inode: Inode, owner: Any, type: int, start: int, end: int) -> RecordLock | None:
    lk = inode.locks
    if lk is None:
        return None
    for r in lk.records:
        if r.owner is owner or not _alive(r.owner):
            continue
        if r.start < end and start < r.end and (type == F_WRLCK or r.type == F_WRLCK):
            return r
    return None


def set_record(inode: Inode, owner: Any, pid: int, type: int, start: int, end: int,
               wait: bool) -> None:
    lk = locks_of(inode)
    if type != F_UNLCK:
        c = conflict(inode, owner, type, start, end)
        if c is not None:
            if wait:
                raise Block(lk.waitq)
            raise Errno(errno.EAGAIN)
    kept: list[RecordLock] = []
    for r in lk.records:
        if not _alive(r.owner):
            continue
        if r.owner is not owner or r.end <= start or end <= r.start:
            kept.append(r)
            continue
        if r.start < start:
            kept.append(RecordLock(owner, r.type, r.start, start, r.pid))
        if end < r.end:
            kept.append(RecordLock(owner, r.type, end, r.end, r.pid))
    if type != F_UNLCK:
        kept.append(RecordLock(owner, type, start, end, pid))
    lk.records = kept
    lk.waitq.notify()


def release_owner(inode: Inode, owner: Any) -> None:
    """close() by a process drops all its POSIX locks on the inode; the last close of an
    open file drops its flock and OFD locks."""
    lk = inode.locks
    if lk is None:
        return
    changed = lk.flocks.pop(owner, None) is not None
    n = len(lk.records)
    lk.records = [r for r in lk.records if r.owner is not owner]
    if changed or n != len(lk.records):
        lk.waitq.notify()
