"""Pseudo-terminals: /dev/ptmx masters, /dev/pts/N slaves, devpts."""
from __future__ import annotations

import errno
import struct

import pytest
from test_fs_fakes import FakeKernel, FakeTask, call, user_creds

from usermode.drivers import pty
from usermode.drivers.tty import (ICANON, TCGETS, TCSETS, TERMIOS, TIOCGPTN, TIOCGPTPEER,
                                  TIOCGWINSZ, TIOCSPTLCK, TIOCSWINSZ, FIONREAD)
from usermode.fs.file import O_NOCTTY, O_NONBLOCK, O_RDWR, POLLHUP, POLLIN, POLLOUT
from usermode.fs.stat import S_IFCHR, major, minor
from usermode.fs.tmpfs import TmpFS
from usermode.fs.vfs import VFS
from usermode.kernel.errors import Block, Errno
from usermode.kernel.syscalls import sys_file as F
from usermode.kernel.syscalls import sys_fs as S


class PtyKernel(FakeKernel):
    def __init__(self, vfs: VFS) -> None:
        super().__init__(vfs)
        self.procs: dict = {}
        self.pgrp_signals: list[tuple[int, int]] = []

    def signal_pgrp(self, pgid: int, sig: int) -> None:
        self.pgrp_signals.append((pgid, sig))


@pytest.fixture
def env():
    root = TmpFS()
    root.root.mkdir(b"dev", 0o755, 0, 0)
    vfs = VFS(root)
    k = PtyKernel(vfs)
    vfs.mount(vfs.fstypes["devtmpfs"](b"devtmpfs", 0, b"", None), "/dev", source="devtmpfs")
    driver = pty.register(vfs, k)
    t = FakeTask(k, creds=user_creds(1000, 1000))
    p = t.process
    p.sid, p.pgid, p.ctty = 1, 1, None
    k.procs[1] = p
    return t, driver


def ioctl_int(t, f, cmd, val=None):
    a = t.mm.alloc(4)
    if val is not None:
        t.mm.write_i32(a, val)
    assert f.ioctl(t, cmd, a) == 0
    return t.mm.read_i32(a)


def open_pair(t, driver, flags=O_RDWR | O_NOCTTY):
    m = driver.open_ptmx(t, O_RDWR)
    ioctl_int(t, m, TIOCSPTLCK, 0)
    n = ioctl_int(t, m, TIOCGPTN)
    s = driver.open_pts(t, n, flags)
    return m, s


def test_ptmx_node_and_devpts_mount(env):
    t, driver = env
    st = t.kernel.vfs.lookup_kernel("/dev/ptmx").dentry.inode.getattr()
    assert st.mode & S_IFCHR and (major(st.rdev), minor(st.rdev)) == (5, 2)
    pts = t.kernel.vfs.lookup_kernel("/dev/pts")
    assert pts.mount.sb is driver.devpts
    assert t.kernel.vfs.lookup_kernel("/dev/pts/ptmx").dentry.inode.rdev == st.rdev


def test_open_creates_node_owned_by_opener_locked_until_unlockpt(env):
    t, driver = env
    m = driver.open_ptmx(t, O_RDWR)
    assert ioctl_int(t, m, TIOCGPTN) == 0
    node = t.kernel.vfs.lookup_kernel("/dev/pts/0").dentry.inode
    st = node.getattr()
    assert (st.uid, st.gid, st.mode & 0o7777) == (1000, 1000, 0o620)
    assert (major(st.rdev), minor(st.rdev)) == (136, 0)
    with pytest.raises(Errno) as e:
        driver.open_pts(t, 0, O_RDWR)
    assert e.value.errno == errno.EIO
    ioctl_int(t, m, TIOCSPTLCK, 0)
    s = driver.open_pts(t, 0, O_RDWR | O_NOCTTY)
    assert s.name() == b"/dev/pts/0"
    m2 = driver.open_ptmx(t, O_RDWR)
    assert ioctl_int(t, m2, TIOCGPTN) == 1


def test_open_by_path_through_syscalls(env):
    t, driver = env
    fd = call(S.sys_openat, t, -100, t.mm.cstr("/dev/ptmx"), O_RDWR | O_NOCTTY, 0)
    assert fd >= 0
    a = t.mm.alloc(4)
    assert call(F.sys_ioctl, t, fd, TIOCSPTLCK, t.mm.alloc(4, b"\0" * 4)) == 0
    assert call(F.sys_ioctl, t, fd, TIOCGPTN, a) == 0
    n = t.mm.read_u32(a)
    sfd = call(S.sys_openat, t, -100, t.mm.cstr(f"/dev/pts/{n}"), O_RDWR | O_NOCTTY, 0)
    assert sfd >= 0
    buf = t.mm.alloc(144)
    assert call(S.sys_fstat, t, sfd, buf) == 0
    buf2 = t.mm.alloc(144)
    assert call(S.sys_newfstatat, t, -100, t.mm.cstr(f"/dev/pts/{n}"), buf2, 0) == 0
    assert t.mm.copy_in(buf, 16) == t.mm.copy_in(buf2, 16)          # st_dev, st_ino
    msg = b"x\n"
    assert call(F.sys_write, t, sfd, t.mm.alloc(2, msg), 2) == 2
    out = t.mm.alloc(16)
    assert call(F.sys_read, t, fd, out, 16) == 3
    assert t.mm.copy_in(out, 3) == b"x\r\n"


def test_slave_output_goes_through_opost(env):
    t, driver = env
    m, s = open_pair(t, driver)
    assert m.poll() & POLLIN == 0
    assert s.write(t, b"hi\n") == 3
    assert m.poll() & POLLIN
    assert ioctl_int(t, m, FIONREAD) == 4
    assert m.read(t, 10) == b"hi\r\n"


def test_master_input_is_edited_and_echoed(env):
    t, driver = env
    m, s = open_pair(t, driver)
    with pytest.raises(Block):
        s.read(t, 100)
    assert m.write(t, b"abx\x7fc\n") == 6
    assert s.read(t, 100) == b"abc\n"
    assert m.read(t, 100) == b"abx\b \bc\r\n"


def test_master_read_blocks_or_eagain(env):
    t, driver = env
    m, s = open_pair(t, driver)
    with pytest.raises(Block):
        m.read(t, 10)
    m.flags |= O_NONBLOCK
    with pytest.raises(Errno) as e:
        m.read(t, 10)
    assert e.value.errno == errno.EAGAIN


def test_output_limit_blocks_slave_writer(env):
    t, driver = env
    m, s = open_pair(t, driver)
    big = b"x" * (pty.OUTPUT_MAX - 100)
    assert s.write(t, big) == len(big)
    assert s.write(t, b"y" * 300) == 300        # a blocking write completes once it fits
    assert not s.poll() & POLLOUT
    with pytest.raises(Block):
        s.write(t, b"more")
    s.flags |= O_NONBLOCK
    with pytest.raises(Errno) as e:
        s.write(t, b"more")
    assert e.value.errno == errno.EAGAIN
    assert len(m.read(t, 1000)) == 1000
    assert s.poll() & POLLOUT
    assert s.write(t, b"z" * 1000) == 800       # O_NONBLOCK takes what fits
    with pytest.raises(Errno):
        s.write(t, b"more")


def test_input_limit_blocks_master_writer_in_raw_mode(env):
    t, driver = env
    m, s = open_pair(t, driver)
    a = t.mm.alloc(TERMIOS.size)
    assert m.ioctl(t, TCGETS, a) == 0          # the slave's termios, through the master
    vals = list(TERMIOS.unpack(t.mm.copy_in(a, TERMIOS.size)))
    vals[3] &= ~(ICANON | 8)                    # -icanon -echo
    t.mm.copy_out(a, TERMIOS.pack(*vals))
    assert m.ioctl(t, TCSETS, a) == 0
    assert not s.tty.lflag & ICANON
    m.flags |= O_NONBLOCK
    assert m.write(t, b"y" * 5000) == pty.INPUT_MAX
    assert not m.poll() & POLLOUT
    with pytest.raises(Errno) as e:
        m.write(t, b"z")
    assert e.value.errno == errno.EAGAIN
    m.flags &= ~O_NONBLOCK
    with pytest.raises(Block):
        m.write(t, b"z")
    assert s.read(t, 100) == b"y" * 100
    assert m.write(t, b"z" * 200) == 200


def test_full_canonical_line_drops_characters_but_not_newline(env):
    t, driver = env
    m, s = open_pair(t, driver)
    s.tty.t[3] &= ~8                            # -echo
    m.flags |= O_NONBLOCK
    assert m.write(t, b"y" * 5000) == pty.INPUT_MAX
    assert m.write(t, b"yyy\n") == 4
    line = s.read(t, 10000)
    assert line == b"y" * pty.INPUT_MAX + b"\n"


def test_slave_close_gives_master_eio_after_queued_output(env):
    t, driver = env
    m, s = open_pair(t, driver)
    s.write(t, b"bye\n")
    s.release()
    assert m.poll() & POLLHUP
    assert m.read(t, 100) == b"bye\r\n"
    with pytest.raises(Errno) as e:
        m.read(t, 100)
    assert e.value.errno == errno.EIO
    s2 = driver.open_pts(t, 0, O_RDWR | O_NOCTTY)       # reopening clears the hangup
    assert not m.poll() & POLLHUP
    s2.release()


def test_master_close_hangs_up_slave(env):
    t, driver = env
    p = t.process
    m, s = open_pair(t, driver, O_RDWR)         # no O_NOCTTY: becomes the ctty
    assert p.ctty is s.tty and s.tty.session == 1
    m.release()
    assert (1, 1) in t.kernel.pgrp_signals      # SIGHUP to the foreground group
    assert p.ctty is None
    assert s.read(t, 10) == b""
    assert s.poll() & POLLHUP
    with pytest.raises(Errno) as e:
        s.write(t, b"x")
    assert e.value.errno == errno.EIO
    with pytest.raises(Errno):
        t.kernel.vfs.lookup_kernel("/dev/pts/0")
    assert 0 in driver.pairs
    s.release()
    assert 0 not in driver.pairs
    m2 = driver.open_ptmx(t, O_RDWR)
    assert ioctl_int(t, m2, TIOCGPTN) == 0      # the index is reused


def test_tiocgptpeer_installs_slave_fd(env):
    t, driver = env
    m = driver.open_ptmx(t, O_RDWR)
    with pytest.raises(Errno) as e:
        m.ioctl(t, TIOCGPTPEER, O_RDWR | O_NOCTTY)
    assert e.value.errno == errno.EIO           # still locked
    ioctl_int(t, m, TIOCSPTLCK, 0)
    fd = m.ioctl(t, TIOCGPTPEER, O_RDWR | O_NOCTTY)
    s = t.files.get(fd)
    assert isinstance(s, pty.PtsFile)
    st = s.stat()
    assert (major(st.rdev), minor(st.rdev)) == (136, 0)


def test_winsize_through_master_signals_foreground(env):
    t, driver = env
    m, s = open_pair(t, driver, O_RDWR)
    a = t.mm.alloc(8, struct.pack("<HHHH", 40, 120, 0, 0))
    assert m.ioctl(t, TIOCSWINSZ, a) == 0
    b = t.mm.alloc(8)
    assert s.ioctl(t, TIOCGWINSZ, b) == 0
    assert struct.unpack("<HHHH", t.mm.copy_in(b, 8))[:2] == (40, 120)
    assert (1, 28) in t.kernel.pgrp_signals     # SIGWINCH


def test_ctrl_c_from_master_signals_foreground(env):
    t, driver = env
    m, s = open_pair(t, driver, O_RDWR)
    m.write(t, b"\x03")
    assert (1, 2) in t.kernel.pgrp_signals
    assert m.read(t, 10) == b"^C"


def test_mount_devpts_again_shows_same_ptys(env):
    t, driver = env
    vfs = t.kernel.vfs
    vfs.root_mount.sb.root.mkdir(b"pts2", 0o755, 0, 0)
    fs = vfs.fstypes["devpts"](b"devpts", 0, b"gid=5,mode=620,ptmxmode=666", None)
    vfs.mount(fs, "/pts2", source="devpts")
    driver.open_ptmx(t, O_RDWR)
    st = vfs.lookup_kernel("/pts2/0").dentry.inode.getattr()
    assert (st.uid, st.gid) == (1000, 5)
    names = sorted(n for n, _, _ in vfs.lookup_kernel("/pts2").dentry.inode.listdir())
    assert names == [b"0", b"ptmx"]
