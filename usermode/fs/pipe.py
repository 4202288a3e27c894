"""Pipes and FIFOs (pipe(7)): a 64 KiB byte buffer shared by read and write ends.

Writes of at most PIPE_BUF bytes are atomic (all or nothing); larger blocking writes
return what fit once there is room (a short write, which write loops handle). Readers get
EOF once no writers remain; writers get SIGPIPE + EPIPE once no readers remain.
Every change notifies the pipe's wait queue, which is also the files' `waitq`.
"""
from __future__ import annotations

import errno
import itertools
import weakref
from typing import TYPE_CHECKING

from usermode.fs.file import (O_ACCMODE, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, POLLERR,
                              POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM, File)
from usermode.fs.stat import S_IFIFO, Stat, makedev
from usermode.kernel.errors import Block, Errno
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.fs.inode import Inode, Path
    from usermode.kernel.task import Task

PIPE_BUF = 4096
PIPE_DEF_SIZE = 65536
PIPE_MAX_SIZE = 1 << 20          # /proc/sys/fs/pipe-max-size
PIPEFS_DEV = makedev(0, 12)
SIGPIPE = 13
FIONREAD = 0x541B

_pipe_ino = itertools.count(100000)
# FIFO inodes kept alive while tasks wait in open(): hostfs inodes live only while
# referenced, and a blocked open holds no reference of its own (the retry starts over)
_PINNED: set["Inode"] = set()


PIPEFS_MAGIC = 0x50495045


class Pipe:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.capacity = PIPE_DEF_SIZE
        self.readers = 0
        self.writers = 0
        self.r_counter = 0          # opens of each kind ever, for FIFO open/poll rules
        self.w_counter = 0
        self.waitq = WaitQueue()
        self.ino = next(_pipe_ino)
        # tasks blocked in a FIFO open -> (was reader, the peer counter they saw)
        self.open_waiters: weakref.WeakKeyDictionary[Task, tuple[bool, int]] = \
            weakref.WeakKeyDictionary()

    def has_writers(self) -> bool:
        """A writer blocked in open() already counts, as in Linux (else the reader it
        let through would see EOF before the writer's open completes)."""
        return self.writers > 0 or any(not r for r, _ in self.open_waiters.values())

    def has_readers(self) -> bool:
        return self.readers > 0 or any(r for r, _ in self.open_waiters.values())

    @property
    def free(self) -> int:
        return max(0, self.capacity - len(self.buf))

    def set_capacity(self, size: int) -> int:
        if size <= 0 or size > PIPE_MAX_SIZE:
            raise Errno(errno.EINVAL if size <= 0 else errno.EPERM)
        cap = 4096
        while cap < size:
            cap <<= 1
        if cap < len(self.buf):
            raise Errno(errno.EBUSY)
        self.capacity = cap
        self.waitq.notify()
        return cap


class PipeFile(File):
    """One end of a pipe (or both, for a FIFO opened O_RDWR)."""

    def __init__(self, pipe: Pipe, flags: int, vpath: "Path | None" = None) -> None:
        super().__init__(flags)
        self.pipe = pipe
        self.waitq = pipe.waitq
        self.vpath = vpath
        self.is_reader = (flags & O_ACCMODE) in (O_RDONLY, O_RDWR)
        self.is_writer = (flags & O_ACCMODE) in (O_WRONLY, O_RDWR)
        self.seen_w = pipe.w_counter
        if self.is_reader:
            pipe.readers += 1
            pipe.r_counter += 1
        if self.is_writer:
            pipe.writers += 1
            pipe.w_counter += 1
        pipe.waitq.notify()

    def read(self, t: "Task", n: int) -> bytes:
        p = self.pipe
        if n == 0:
            return b""
        if p.buf:
            data = bytes(p.buf[:n])
            del p.buf[:n]
            p.waitq.notify()
            return data
        if not p.has_writers():
            return b""
        if self.nonblocking:
            raise Errno(errno.EAGAIN)
        raise Block(p.waitq)

    def write(self, t: "Task", data: bytes) -> int:
        p = self.pipe
        if not p.has_readers():
            t.kernel.send_signal_to_task(t, SIGPIPE)
            raise Errno(errno.EPIPE)
        if not data:
            return 0
        free = p.free
        if len(data) <= PIPE_BUF:
            take = len(data) if free >= len(data) else 0
        else:
            take = min(free, len(data))
        if take == 0:
            if self.nonblocking:
                raise Errno(errno.EAGAIN)
            raise Block(p.waitq)
        p.buf += data[:take]
        p.waitq.notify()
        return take

    def poll(self) -> int:
        p = self.pipe
        mask = 0
        if self.is_reader:
            if p.buf:
                mask |= POLLIN | POLLRDNORM
            if not p.has_writers() and p.w_counter != self.seen_w:
                mask |= POLLHUP
        if self.is_writer:
            if p.free >= PIPE_BUF:
                mask |= POLLOUT | POLLWRNORM
            if not p.has_readers():
                mask |= POLLERR
        return mask

    def ioctl(self, t: "Task", cmd: int, arg: int) -> int:
        if cmd == FIONREAD:
            t.mm.write_i32(arg, len(self.pipe.buf))
            return 0
        raise Errno(errno.ENOTTY)

    def stat(self) -> Stat:
        if self.vpath is not None:
            st = self.vpath.dentry.inode.getattr()
            st.mnt_id = self.vpath.mount.id
            return st
        return Stat(dev=PIPEFS_DEV, ino=self.pipe.ino, mode=S_IFIFO | 0o600, nlink=1,
                    blksize=4096)

    def name(self) -> bytes:
        return b"pipe:[%d]" % self.pipe.ino

    def release(self) -> None:
        p = self.pipe
        if self.is_reader:
            p.readers -= 1
        if self.is_writer:
            p.writers -= 1
        p.waitq.notify()


def make_pipe(flags: int = 0) -> tuple[PipeFile, PipeFile]:
    """pipe2(): (read end, write end); only O_NONBLOCK of flags is kept on the files."""
    p = Pipe()
    r = PipeFile(p, O_RDONLY | (flags & O_NONBLOCK))
    w = PipeFile(p, O_WRONLY | (flags & O_NONBLOCK))
    r.seen_w = 0                 # a pipe's reader sees HUP once the writer is gone
    return r, w


def _wait_for_peer(t: "Task", inode: "Inode", p: Pipe, reader: bool) -> None:
    """Return once the other end was opened since we started waiting (or is itself
    waiting in open); otherwise register as waiting, wake the other side, and Block.
    The waiter registration is the one piece of state kept across Block retries, as
    Linux counts a reader blocked in open as a reader."""
    counter = p.w_counter if reader else p.r_counter
    if any(r != reader for r, _ in p.open_waiters.values()):
        return
    seen = p.open_waiters.get(t)
    if seen is not None and seen[0] == reader and seen[1] != counter:
        return
    if seen is None or seen[0] != reader:
        p.open_waiters[t] = (reader, counter)
        _PINNED.add(inode)
        p.waitq.notify()
    raise Block(p.waitq)


def open_fifo(t: "Task", inode: "Inode", flags: int, vpath: "Path") -> PipeFile:
    """open(2) of a FIFO: a reader waits for a writer and vice versa (fifo(7)), unless
    O_NONBLOCK (then a writer without readers gets ENXIO). O_RDWR never waits."""
    if inode.pipe is None:
        inode.pipe = Pipe()
    p: Pipe = inode.pipe
    acc = flags & O_ACCMODE
    if inode.sb.magic == PIPEFS_MAGIC:
        pass                     # reopening a pipe through /proc/<pid>/fd never waits
    elif acc == O_RDONLY and not flags & O_NONBLOCK and p.writers == 0:
        _wait_for_peer(t, inode, p, True)
    elif acc == O_WRONLY and p.readers == 0:
        if flags & O_NONBLOCK:
            if not any(r for r, _ in p.open_waiters.values()):
                raise Errno(errno.ENXIO)
        else:
            _wait_for_peer(t, inode, p, False)
    p.open_waiters.pop(t, None)
    if not p.open_waiters:
        _PINNED.discard(inode)
    return PipeFile(p, flags, vpath)
