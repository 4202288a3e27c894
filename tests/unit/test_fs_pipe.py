"""Pipes, FIFOs, poll/select/epoll, eventfd and the fd table."""
from __future__ import annotations

import errno
import struct

import pytest
from test_fs_fakes import FakeTask, call, make_task

from usermode.fs.fdtable import FdTable
from usermode.fs.file import O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, POLLHUP, POLLIN, \
    POLLOUT, File
from usermode.fs.pipe import PIPE_BUF
from usermode.kernel.errors import Block
from usermode.kernel.syscalls import sys_file as F
from usermode.kernel.syscalls import sys_fs as S
from usermode.kernel.syscalls import sys_poll as PL


@pytest.fixture
def t() -> FakeTask:
    return make_task()


def pipe(t, flags=0) -> tuple[int, int]:
    buf = t.mm.alloc(8)
    assert call(F.sys_pipe2, t, buf, flags) == 0
    return struct.unpack("<ii", t.mm.copy_in(buf, 8))


def write(t, fd, data):
    return call(F.sys_write, t, fd, t.mm.alloc(len(data), data), len(data))


def read(t, fd, n=65536):
    buf = t.mm.alloc(n)
    r = call(F.sys_read, t, fd, buf, n)
    return r if r < 0 else t.mm.copy_in(buf, r)


def test_pipe_basics(t):
    r, w = pipe(t)
    assert (r, w) == (0, 1)
    assert write(t, w, b"abc") == 3
    assert read(t, r) == b"abc"
    with pytest.raises(Block):
        F.sys_read(t, r, t.mm.alloc(10), 10)
    assert read(t, w) == -errno.EBADF and write(t, r, b"x") == -errno.EBADF
    assert call(F.sys_fcntl, t, r, 3, 0) == O_RDONLY
    assert call(F.sys_fcntl, t, w, 1032, 0) == 65536
    call(F.sys_close, t, w)
    assert read(t, r) == b""                      # EOF once no writer is left
    assert call(F.sys_pipe2, t, t.mm.alloc(8), 0o7) == -errno.EINVAL
    assert call(F.sys_pipe2, t, 0, 0) == -errno.EFAULT


def test_pipe_nonblock_and_atomicity(t):
    r, w = pipe(t, O_NONBLOCK)
    assert read(t, r) == -errno.EAGAIN
    assert write(t, w, b"x" * 65536) == 65536
    assert write(t, w, b"y") == -errno.EAGAIN
    assert len(read(t, r, 100)) == 100
    # 100 bytes free: an atomic (<= PIPE_BUF) write of 200 must not be split
    assert write(t, w, b"z" * 200) == -errno.EAGAIN
    read(t, r, 65536)
    assert write(t, w, b"a" * (PIPE_BUF + 10)) == PIPE_BUF + 10
    assert len(read(t, r)) == PIPE_BUF + 10


def test_blocking_large_write_is_partial_then_blocks(t):
    r, w = pipe(t)
    write(t, w, b"x" * 65000)
    assert write(t, w, b"y" * 10000) == 536
    with pytest.raises(Block):
        F.sys_write(t, w, t.mm.alloc(10, b"q" * 10), 10)


def test_epipe_sends_sigpipe(t):
    r, w = pipe(t)
    call(F.sys_close, t, r)
    assert write(t, w, b"x") == -errno.EPIPE
    assert t.kernel.signals == [(t.tid, 13)]


def test_pipe_refs_across_fork_and_dup(t):
    r, w = pipe(t)
    c = t.fork(2)
    call(F.sys_close, t, w)
    assert write(c, w, b"still") == 5          # the child's copy keeps the writer alive
    assert read(t, r) == b"still"
    c.files.close_all()
    assert read(t, r) == b""


def test_fifo_open_semantics(t):
    assert call(S.sys_mknod, t, t.mm.cstr("/fifo"), 0o010644, 0) == 0
    path = t.mm.cstr("/fifo")
    assert call(S.sys_open, t, path, O_WRONLY | O_NONBLOCK, 0) == -errno.ENXIO
    rfd = call(S.sys_open, t, path, O_RDONLY | O_NONBLOCK, 0)
    assert rfd >= 0
    wfd = call(S.sys_open, t, path, O_WRONLY, 0)
    assert wfd >= 0
    assert write(t, wfd, b"via fifo") == 8
    assert read(t, rfd) == b"via fifo"
    # a blocking reader waits for a writer...
    u = FakeTask(t.kernel, 2, fs=t.fs)
    upath = u.mm.cstr("/fifo")
    call(F.sys_close, t, wfd)
    call(F.sys_close, t, rfd)
    with pytest.raises(Block):
        S.sys_open(u, upath, O_RDONLY, 0)
    # ...and a writer opening meanwhile does not wait for it, then the reader proceeds
    wfd = call(S.sys_open, t, path, O_WRONLY, 0)
    assert wfd >= 0
    call(F.sys_close, t, wfd)                  # even if the writer already left
    assert call(S.sys_open, u, upath, O_RDONLY, 0) >= 0
    assert call(S.sys_open, t, path, O_RDWR, 0) >= 0


def test_poll_and_select(t):
    r, w = pipe(t)
    fds = t.mm.alloc(24, struct.pack("<ihhihhihh", r, POLLIN, 0, w, POLLOUT, 0, 99, POLLIN, 0))
    assert call(PL.sys_poll, t, fds, 3, 0) == 2
    res = struct.unpack("<ihhihhihh", t.mm.copy_in(fds, 24))
    assert res[2] == 0 and res[5] & POLLOUT and res[8] == 0x20      # POLLNVAL
    fds = t.mm.alloc(8, struct.pack("<ihh", r, POLLIN, 0))
    with pytest.raises(Block) as b:
        PL.sys_poll(t, fds, 1, 1000)
    assert b.value.timeout == 1.0 and b.value.queues
    t.timed_out = True
    assert call(PL.sys_poll, t, fds, 1, 1000) == 0
    t.timed_out = False
    write(t, w, b"x")
    assert call(PL.sys_poll, t, fds, 1, -1) == 1
    rs = t.mm.alloc(8, (1 << r).to_bytes(8, "little"))
    ws = t.mm.alloc(8, (1 << w).to_bytes(8, "little"))
    assert call(PL.sys_select, t, 8, rs, ws, 0, 0) == 2
    bad = t.mm.alloc(8, (1 << 50).to_bytes(8, "little"))
    assert call(PL.sys_select, t, 64, bad, 0, 0, 0) == -errno.EBADF
    call(F.sys_close, t, w)
    fds = t.mm.alloc(8, struct.pack("<ihh", r, POLLIN, 0))
    call(PL.sys_poll, t, fds, 1, 0)
    read(t, r)
    call(PL.sys_poll, t, fds, 1, 0)
    assert struct.unpack("<ihh", t.mm.copy_in(fds, 8))[2] & POLLHUP


def test_epoll_level_edge_oneshot(t):
    ep = call(PL.sys_epoll_create1, t, 0)
    r, w = pipe(t)
    ev = t.mm.alloc(12, struct.pack("<IQ", POLLIN, 0xDEADBEEF))
    assert call(PL.sys_epoll_ctl, t, ep, 1, r, ev) == 0
    assert call(PL.sys_epoll_ctl, t, ep, 1, r, ev) == -errno.EEXIST
    out = t.mm.alloc(12 * 4)
    assert call(PL.sys_epoll_wait, t, ep, out, 4, 0) == 0
    with pytest.raises(Block):
        PL.sys_epoll_wait(t, ep, out, 4, -1)
    write(t, w, b"x")
    assert call(PL.sys_epoll_wait, t, ep, out, 4, 0) == 1
    assert struct.unpack("<IQ", t.mm.copy_in(out, 12)) == (POLLIN, 0xDEADBEEF)
    assert call(PL.sys_epoll_wait, t, ep, out, 4, 0) == 1          # level-triggered
    # edge-triggered: reported once until the pipe changes again
    et = t.mm.alloc(12, struct.pack("<IQ", POLLIN | (1 << 31), 7))
    assert call(PL.sys_epoll_ctl, t, ep, 3, r, et) == 0
    assert call(PL.sys_epoll_wait, t, ep, out, 4, 0) == 1
    assert call(PL.sys_epoll_wait, t, ep, out, 4, 0) == 0
    write(t, w, b"y")
    assert call(PL.sys_epoll_wait, t, ep, out, 4, 0) == 1
    # one-shot
    os_ = t.mm.alloc(12, struct.pack("<IQ", POLLIN | (1 << 30), 8))
    assert call(PL.sys_epoll_ctl, t, ep, 3, r, os_) == 0
    assert call(PL.sys_epoll_wait, t, ep, out, 4, 0) == 1
    assert call(PL.sys_epoll_wait, t, ep, out, 4, 0) == 0
    assert call(PL.sys_epoll_ctl, t, ep, 2, r, 0) == 0
    assert call(PL.sys_epoll_ctl, t, ep, 2, r, 0) == -errno.ENOENT
    assert call(PL.sys_epoll_wait, t, r, out, 4, 0) == -errno.EINVAL
    assert call(PL.sys_epoll_wait, t, ep, out, 0, 0) == -errno.EINVAL
    fd = call(S.sys_open, t, t.mm.cstr("/"), 0, 0)
    assert call(PL.sys_epoll_ctl, t, ep, 1, fd, ev) == -errno.EPERM


def test_eventfd(t):
    fd = call(PL.sys_eventfd2, t, 3, O_NONBLOCK | 1)          # semaphore
    assert struct.unpack("<Q", read(t, fd, 8))[0] == 1
    assert read(t, fd, 4) == -errno.EINVAL
    fd2 = call(PL.sys_eventfd2, t, 0, O_NONBLOCK)
    assert read(t, fd2, 8) == -errno.EAGAIN
    assert write(t, fd2, struct.pack("<Q", 5)) == 8
    assert write(t, fd2, struct.pack("<Q", 2)) == 8
    assert struct.unpack("<Q", read(t, fd2, 8))[0] == 7
    assert write(t, fd2, struct.pack("<Q", 2**64 - 1)) == -errno.EINVAL
    assert call(PL.sys_eventfd2, t, 0, 0o1) >= 0 and call(PL.sys_eventfd2, t, 0, 2) == -errno.EINVAL


class Counted(File):
    released = 0

    def release(self) -> None:
        Counted.released += 1


def test_fdtable_refs_and_limits():
    ft = FdTable(limit=4)
    f = Counted()
    assert ft.install(f) == 0
    assert ft.install(f, lowest=2) == 2
    assert f.refs == 2
    g = Counted()
    ft.install_at(2, g)
    assert f.refs == 1 and g.refs == 1
    child = ft.fork()
    assert f.refs == 2
    ft.install(f)
    ft.install(f)
    from usermode.kernel.errors import Errno
    with pytest.raises(Errno):
        ft.install(f)
    with pytest.raises(Errno):
        ft.install_at(4, f)
    before = Counted.released
    ft.close_all()
    assert Counted.released == before          # both still open in the child
    child.close_all()
    assert Counted.released == before + 2 and f.refs == 0 and g.refs == 0
    assert [fd for fd, _ in FdTable()] == []
