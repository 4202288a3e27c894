"""epoll(7): interest lists over our File objects, level- and edge-triggered.

Readiness is computed from File.poll() at epoll_wait time. Edge-triggered watches report
again only after the file's wait queue was notified since the last report (every state
change notifies), which is the observable contract of EPOLLET.
"""
from __future__ import annotations

import errno

from usermode.fs.file import O_RDWR, POLLERR, POLLHUP, POLLIN, File
from usermode.fs.files import VfsFile
from usermode.kernel.errors import Errno
from usermode.kernel.wait import WaitQueue

EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET = 1 << 28, 1 << 29, 1 << 30, 1 << 31
ALWAYS = POLLERR | POLLHUP


class Watch:
    __slots__ = ("fd", "file", "events", "data", "armed", "disabled", "listening")

    def __init__(self, fd: int, file: File, events: int, data: int) -> None:
        self.fd = fd
        self.file = file
        self.events = events
        self.data = data
        self.armed = True          # EPOLLET: something may have changed since last report
        self.disabled = False      # EPOLLONESHOT fired
        self.listening = False

    def _changed(self) -> None:
        self.armed = True
        self.listening = False

    def listen(self) -> None:
        if not self.listening:
            self.listening = True
            self.file.waitq.add(self._changed)


class EpollFile(File):
    def __init__(self, flags: int = 0) -> None:
        super().__init__(O_RDWR | flags)
        self.watches: dict[tuple[int, int], Watch] = {}

    def name(self) -> bytes:
        return b"anon_inode:[eventpoll]"

    def ctl(self, op: int, fd: int, f: File, events: int, data: int) -> None:
        key = (fd, id(f))
        if f is self:
            raise Errno(errno.EINVAL)
        if isinstance(f, VfsFile) and not isinstance(f, EpollFile):
            raise Errno(errno.EPERM)         # regular files and directories are not pollable
        w = self.watches.get(key)
        if op == EPOLL_CTL_ADD:
            if w is not None:
                raise Errno(errno.EEXIST)
            if isinstance(f, EpollFile) and f.reaches(self):
                raise Errno(errno.ELOOP)
            self.watches[key] = Watch(fd, f, events | ALWAYS, data)
        elif op == EPOLL_CTL_DEL:
            if w is None:
                raise Errno(errno.ENOENT)
            w.file.waitq.remove(w._changed)
            del self.watches[key]
        elif op == EPOLL_CTL_MOD:
            if w is None:
                raise Errno(errno.ENOENT)
            if events & EPOLLEXCLUSIVE or w.events & EPOLLEXCLUSIVE:
                raise Errno(errno.EINVAL)
            w.events, w.data = events | ALWAYS, data
            w.disabled, w.armed = False, True
        else:
            raise Errno(errno.EINVAL)
        self.waitq.notify()

    def reaches(self, other: "EpollFile", depth: int = 0) -> bool:
        if depth > 5:
            return True
        for w in self.watches.values():
            if w.file is other or isinstance(w.file, EpollFile) and \
                    w.file.reaches(other, depth + 1):
                return True
        return False

    def _live(self) -> list[Watch]:
        dead = [k for k, w in self.watches.items() if w.file.refs <= 0]
        for k in dead:        # every fd of that file was closed: the watch goes too
            del self.watches[k]
        return list(self.watches.values())

    def pending(self, w: Watch) -> int:
        if w.disabled or (w.events & EPOLLET and not w.armed):
            return 0
        return w.file.poll() & w.events

    def collect(self, maxevents: int) -> list[tuple[int, int]]:
        """(events, data) of ready watches; consumes edge/one-shot state of reported ones."""
        out = []
        for w in self._live():
            if len(out) >= maxevents:
                break
            ev = self.pending(w)
            if not ev:
                continue
            out.append((ev & 0xFFFFFFFF, w.data))
            if w.events & EPOLLONESHOT:
                w.disabled = True
            if w.events & EPOLLET:
                w.armed = False
                w.listen()
        return out

    def poll(self) -> int:
        return POLLIN if any(self.pending(w) for w in self._live()) else 0

    def poll_queues(self) -> list[WaitQueue]:
        qs = [self.waitq]
        for w in self._live():
            qs.extend(w.file.poll_queues())
        return qs

    def release(self) -> None:
        for w in self.watches.values():
            w.file.waitq.remove(w._changed)
        self.watches.clear()
