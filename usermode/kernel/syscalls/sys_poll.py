"""I/O multiplexing: poll, ppoll, select, pselect6, epoll_*, eventfd.

All of them compute File.poll() now; if nothing is ready and the timeout allows, they
raise Block on every file's wait queues and are re-run from scratch when one is notified.
After the timeout the re-run sees t.timed_out and reports what is ready (usually nothing).
"""
from __future__ import annotations

import errno
import struct

from usermode.fs.epoll import (EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLLEXCLUSIVE,
                               EpollFile)
from usermode.fs.eventfd import EFD_SEMAPHORE, EventFd
from usermode.fs.file import (O_CLOEXEC, O_NONBLOCK, POLLERR, POLLHUP, POLLIN, POLLNVAL,
                              POLLOUT, POLLPRI, POLLRDNORM, POLLWRNORM, File)
from usermode.fs.uapi import timespec_secs
from usermode.kernel.errors import Block, Errno, s32
from usermode.kernel.task import Task
from usermode.kernel.wait import WaitQueue

_POLLFD = struct.Struct("<ihh")
_EPEV = struct.Struct("<IQ")           # struct epoll_event is packed on x86-64: 12 bytes
_TV = struct.Struct("<qq")
POLL_IN = POLLIN | POLLRDNORM | POLLHUP | POLLERR
POLL_OUT = POLLOUT | POLLWRNORM | POLLERR
EP_MAX_EVENTS = 0x7FFFFFFF // 12


def _mask(f: File) -> int:
    m = f.poll()
    if m & POLLIN:
        m |= POLLRDNORM
    if m & POLLOUT:
        m |= POLLWRNORM
    return m


def _wait(queues: list[WaitQueue], timeout: float | None) -> None:
    raise Block(*queues, timeout=timeout)


def _ms(timeout: int) -> float | None:
    ms = s32(timeout)
    return None if ms < 0 else ms / 1000.0


# -- poll
def _do_poll(t: Task, fds: int, nfds: int, timeout: float | None) -> int:
    n = nfds & 0xFFFFFFFF
    if n > max(t.files.limit, 1024):
        raise Errno(errno.EINVAL)
    raw = t.mm.copy_in(fds, n * 8) if n else b""
    out = bytearray(raw)
    ready = 0
    queues: list[WaitQueue] = []
    for i, (fd, events, _) in enumerate(_POLLFD.iter_unpack(raw)):
        rev = 0
        if fd >= 0:
            f = t.files.fds.get(fd)
            if f is None:
                rev = POLLNVAL
            else:
                rev = _mask(f) & ((events & 0xFFFF) | POLLERR | POLLHUP | POLLNVAL)
                queues.extend(f.poll_queues())
        if rev:
            ready += 1
        struct.pack_into("<h", out, i * 8 + 6, rev - 0x10000 if rev & 0x8000 else rev)
    if ready or timeout == 0 or t.timed_out:
        t.mm.copy_out(fds, bytes(out))
        return ready
    _wait(queues, timeout)
    return 0


def sys_poll(t: Task, fds: int, nfds: int, timeout: int) -> int:
    """poll(2)"""
    return _do_poll(t, fds, nfds, _ms(timeout))


def sys_ppoll(t: Task, fds: int, nfds: int, tsp: int, sigmask: int, sigsetsize: int) -> int:
    """ppoll(2)"""
    if sigmask and sigsetsize != 8:
        raise Errno(errno.EINVAL)
    return _do_poll(t, fds, nfds, timespec_secs(t, tsp) if tsp else None)


# -- select
def _do_select(t: Task, nfds: int, rp: int, wp: int, ep: int, timeout: float | None,
               tv_out: int = 0) -> int:
    n = s32(nfds)
    if n < 0:
        raise Errno(errno.EINVAL)
    n = min(n, t.files.limit)
    nbytes = (n + 63) // 64 * 8
    sets = [int.from_bytes(t.mm.copy_in(p, nbytes), "little") if p and nbytes else 0
            for p in (rp, wp, ep)]
    res = [0, 0, 0]
    count = 0
    queues: list[WaitQueue] = []
    wanted = sets[0] | sets[1] | sets[2]
    fd = 0
    while wanted >> fd:
        if not (wanted >> fd) & 1:
            fd += 1
            continue
        f = t.files.fds.get(fd)
        if f is None:
            raise Errno(errno.EBADF)
        m = _mask(f)
        queues.extend(f.poll_queues())
        bit = 1 << fd
        for i, cond in enumerate((POLL_IN, POLL_OUT, POLLPRI)):
            if sets[i] & bit and m & cond:
                res[i] |= bit
                count += 1
        fd += 1
    if count or timeout == 0 or t.timed_out:
        for p, v in zip((rp, wp, ep), res):
            if p and nbytes:
                t.mm.copy_out(p, v.to_bytes(nbytes, "little"))
        if tv_out and t.timed_out and not count:
            t.mm.copy_out(tv_out, _TV.pack(0, 0))
        return count
    _wait(queues, timeout)
    return 0


def sys_select(t: Task, nfds: int, readfds: int, writefds: int, exceptfds: int,
               timeout: int) -> int:
    """select(2)"""
    secs = None
    if timeout:
        sec, usec = _TV.unpack(t.mm.copy_in(timeout, 16))
        if sec < 0 or usec < 0:
            raise Errno(errno.EINVAL)
        secs = sec + usec / 1e6
    return _do_select(t, nfds, readfds, writefds, exceptfds, secs, timeout)


def sys_pselect6(t: Task, nfds: int, readfds: int, writefds: int, exceptfds: int,
                 tsp: int, sig: int) -> int:
    """pselect6(2)"""
    secs = timespec_secs(t, tsp) if tsp else None
    return _do_select(t, nfds, readfds, writefds, exceptfds, secs, tsp)


# -- epoll
def _epoll(t: Task, epfd: int) -> EpollFile:
    f = t.files.get(s32(epfd))
    if not isinstance(f, EpollFile):
        raise Errno(errno.EINVAL)
    return f


def sys_epoll_create1(t: Task, flags: int) -> int:
    """epoll_create1(2)"""
    fl = s32(flags)
    if fl & ~O_CLOEXEC:
        raise Errno(errno.EINVAL)
    return t.files.install(EpollFile(), bool(fl & O_CLOEXEC))


def sys_epoll_create(t: Task, size: int) -> int:
    """epoll_create(2)"""
    if s32(size) <= 0:
        raise Errno(errno.EINVAL)
    return t.files.install(EpollFile())


def sys_epoll_ctl(t: Task, epfd: int, op: int, fd: int, event: int) -> int:
    """epoll_ctl(2)"""
    ep_file = t.files.get(s32(epfd))
    f = t.files.get(s32(fd))
    if not isinstance(ep_file, EpollFile) or s32(epfd) == s32(fd):
        raise Errno(errno.EINVAL)
    o = s32(op)
    events = data = 0
    if o in (EPOLL_CTL_ADD, EPOLL_CTL_MOD):
        events, data = _EPEV.unpack(t.mm.copy_in(event, 12))
        if events & EPOLLEXCLUSIVE and isinstance(f, EpollFile):
            raise Errno(errno.EINVAL)
    ep_file.ctl(o, s32(fd), f, events, data)
    return 0


def _do_epoll_wait(t: Task, epfd: int, events: int, maxevents: int,
                   timeout: float | None) -> int:
    m = s32(maxevents)
    if m <= 0 or m > EP_MAX_EVENTS:
        raise Errno(errno.EINVAL)
    ep = _epoll(t, epfd)
    if events == 0:
        raise Errno(errno.EFAULT)
    if timeout != 0 and not t.timed_out and not ep.poll():
        _wait(ep.poll_queues(), timeout)
    got = ep.collect(m)
    if got:
        t.mm.copy_out(events, b"".join(_EPEV.pack(ev, d) for ev, d in got))
    return len(got)


def sys_epoll_wait(t: Task, epfd: int, events: int, maxevents: int, timeout: int) -> int:
    """epoll_wait(2)"""
    return _do_epoll_wait(t, epfd, events, maxevents, _ms(timeout))


def sys_epoll_pwait(t: Task, epfd: int, events: int, maxevents: int, timeout: int,
                    sigmask: int, sigsetsize: int) -> int:
    """epoll_pwait(2)"""
    if sigmask and sigsetsize != 8:
        raise Errno(errno.EINVAL)
    return _do_epoll_wait(t, epfd, events, maxevents, _ms(timeout))


def sys_epoll_pwait2(t: Task, epfd: int, events: int, maxevents: int, tsp: int,
                     sigmask: int, sigsetsize: int) -> int:
    """epoll_pwait2(2)"""
    if sigmask and sigsetsize != 8:
        raise Errno(errno.EINVAL)
    return _do_epoll_wait(t, epfd, events, maxevents, timespec_secs(t, tsp) if tsp else None)


# -- eventfd
def sys_eventfd2(t: Task, initval: int, flags: int) -> int:
    """eventfd2(2)"""
    fl = s32(flags)
    if fl & ~(O_CLOEXEC | O_NONBLOCK | EFD_SEMAPHORE):
        raise Errno(errno.EINVAL)
    return t.files.install(EventFd(initval & 0xFFFFFFFF, fl), bool(fl & O_CLOEXEC))


def sys_eventfd(t: Task, initval: int) -> int:
    """eventfd(2)"""
    return sys_eventfd2(t, initval, 0)


SYSCALLS = [
    ("poll", sys_poll, "supported", ""),
    ("ppoll", sys_ppoll, "partial", "sigmask ignored; timeout not updated"),
    ("select", sys_select, "partial", "timeout updated only when it expires"),
    ("pselect6", sys_pselect6, "partial", "sigmask ignored"),
    ("epoll_create", sys_epoll_create, "supported", ""),
    ("epoll_create1", sys_epoll_create1, "supported", ""),
    ("epoll_ctl", sys_epoll_ctl, "partial", "EPOLLEXCLUSIVE/EPOLLWAKEUP accepted, no effect"),
    ("epoll_wait", sys_epoll_wait, "supported", ""),
    ("epoll_pwait", sys_epoll_pwait, "partial", "sigmask ignored"),
    ("epoll_pwait2", sys_epoll_pwait2, "partial", "sigmask ignored"),
    ("eventfd", sys_eventfd, "supported", ""),
    ("eventfd2", sys_eventfd2, "supported", ""),
]
