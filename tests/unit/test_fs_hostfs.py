"""hostfs: host files seen by the guest, and confinement to the exported directory."""
from __future__ import annotations

import errno
import os
import stat as st
import struct

import pytest
from test_fs_fakes import FakeTask, FakeKernel, call

from usermode.fs.file import O_CREAT, O_DIRECTORY, O_RDONLY, O_RDWR, O_WRONLY
from usermode.fs.hostfs import HostFS, hostfs_factory
from usermode.fs.pipe import PipeFile
from usermode.fs.stat import STAT_SIZE
from usermode.fs.tmpfs import TmpFS
from usermode.fs.vfs import VFS
from usermode.host import hostfs_ops
from usermode.kernel.errors import Errno
from usermode.kernel.syscalls import sys_file as F
from usermode.kernel.syscalls import sys_fs as S

ROOT = os.geteuid() == 0


@pytest.fixture
def env(tmp_path):
    """Host layout: tmp/secret (outside), tmp/export/{hello, sub/}; the export is
    mounted at /host in a tmpfs root that has no /secret."""
    (tmp_path / "secret").write_bytes(b"host secret")
    exp = tmp_path / "export"
    (exp / "sub").mkdir(parents=True)
    (exp / "hello").write_bytes(b"hello from host")
    vfs = VFS(TmpFS())
    t = FakeTask(FakeKernel(vfs))
    call(S.sys_mkdir, t, t.mm.cstr("/host"), 0o755)
    vfs.mount(HostFS(str(exp)), "/host")
    return t, tmp_path, exp


def opn(t, path, flags=O_RDONLY, mode=0o644):
    return call(S.sys_openat, t, -100, t.mm.cstr(path), flags, mode)


def read(t, fd, n=4096):
    if fd < 0:
        return fd
    buf = t.mm.alloc(n)
    r = call(F.sys_read, t, fd, buf, n)
    return r if r < 0 else t.mm.copy_in(buf, r)


def write(t, fd, data):
    return call(F.sys_write, t, fd, t.mm.alloc(len(data), data), len(data))


def stat(t, path, fn=S.sys_stat):
    buf = t.mm.alloc(STAT_SIZE)
    r = call(fn, t, t.mm.cstr(path), buf)
    return (r,) if r < 0 else struct.unpack("<QQQIIIiQqqqqqqqqq24x", t.mm.copy_in(buf, 144))


def test_read_write_create(env):
    t, tmp, exp = env
    assert read(t, opn(t, "/host/hello")) == b"hello from host"
    fd = opn(t, "/host/sub/new", O_CREAT | O_WRONLY, 0o640)
    assert write(t, fd, b"from guest") == 10
    assert (exp / "sub" / "new").read_bytes() == b"from guest"
    assert st.S_IMODE(os.stat(exp / "sub" / "new").st_mode) == 0o640
    assert call(S.sys_mkdir, t, t.mm.cstr("/host/d"), 0o755) == 0
    assert (exp / "d").is_dir()
    assert call(S.sys_rename, t, t.mm.cstr("/host/sub/new"), t.mm.cstr("/host/d/n")) == 0
    assert (exp / "d" / "n").exists() and not (exp / "sub" / "new").exists()
    assert call(S.sys_unlink, t, t.mm.cstr("/host/d/n")) == 0
    assert call(S.sys_rmdir, t, t.mm.cstr("/host/d")) == 0
    assert not (exp / "d").exists()
    assert call(S.sys_symlink, t, t.mm.cstr("hello"), t.mm.cstr("/host/ln")) == 0
    assert os.readlink(exp / "ln") == "hello"
    assert read(t, opn(t, "/host/ln")) == b"hello from host"


def test_dotdot_at_export_root_stays_in_guest(env):
    t, tmp, exp = env
    assert opn(t, "/host/../secret") == -errno.ENOENT
    assert opn(t, "/host/sub/../../secret") == -errno.ENOENT
    # as the guest's root filesystem: ".." at / stays at /
    vfs = VFS(HostFS(str(exp)))
    r = FakeTask(FakeKernel(vfs))
    assert opn(r, "/../secret") == -errno.ENOENT
    assert read(r, opn(r, "/../../hello")) == b"hello from host"


def test_symlinks_resolve_in_guest_namespace(env):
    t, tmp, exp = env
    os.symlink(str(tmp / "secret"), exp / "abs")            # absolute, to a host path
    os.symlink("../secret", exp / "rel")                     # relative, climbing out
    os.symlink("../../../../../../secret", exp / "deep")
    os.symlink("/", exp / "rootlink")
    assert opn(t, "/host/abs") == -errno.ENOENT
    assert opn(t, "/host/rel") == -errno.ENOENT
    assert opn(t, "/host/deep") == -errno.ENOENT
    assert opn(t, "/host/rootlink/secret") == -errno.ENOENT
    # the guest's own /secret is what they reach
    fd = opn(t, "/secret", O_CREAT | O_WRONLY)
    write(t, fd, b"guest secret")
    assert read(t, opn(t, "/host/rel")) == b"guest secret"
    assert read(t, opn(t, "/host/deep")) == b"guest secret"
    assert read(t, opn(t, "/host/rootlink/secret")) == b"guest secret"
    # writing through a link never touches the host target
    assert opn(t, "/host/abs", O_WRONLY | O_CREAT) == -errno.ENOENT  # no such guest dir
    assert (tmp / "secret").read_bytes() == b"host secret"


def test_swapped_directory_race_is_confined(env):
    t, tmp, exp = env
    (exp / "sub" / "inner").write_bytes(b"inner")
    dfd = opn(t, "/host/sub", O_RDONLY | O_DIRECTORY)
    # a host process swaps the directory for a symlink to the host root
    os.rename(exp / "sub", tmp / "moved")
    os.symlink("/", exp / "sub")
    assert read(t, call(S.sys_openat, t, dfd, t.mm.cstr("inner"), 0, 0)) == b"inner"
    assert call(S.sys_openat, t, dfd, t.mm.cstr("etc/passwd"), 0, 0) == -errno.ENOENT
    assert opn(t, "/host/sub/etc/passwd") == -errno.ENOENT
    with pytest.raises(Errno):
        hostfs_ops.lstat_at(os.open(str(exp), os.O_PATH), b"..")


def test_host_changes_are_seen(env):
    t, tmp, exp = env
    assert stat(t, "/host/hello")[8] == 15
    (exp / "hello").write_bytes(b"longer content now")
    assert stat(t, "/host/hello")[8] == 18
    fd = opn(t, "/host/hello")
    assert read(t, fd) == b"longer content now"
    (exp / "late").write_bytes(b"")
    dfd = opn(t, "/host", O_RDONLY | O_DIRECTORY)
    buf = t.mm.alloc(4096)
    n = call(F.sys_getdents64, t, dfd, buf, 4096)
    assert b"late" in t.mm.copy_in(buf, n)
    os.unlink(exp / "late")
    assert stat(t, "/host/late")[0] == -errno.ENOENT


def test_chmod_never_sets_setuid_on_host(env):
    t, tmp, exp = env
    assert call(S.sys_chmod, t, t.mm.cstr("/host/hello"), 0o4755) == 0
    m = os.stat(exp / "hello").st_mode
    assert st.S_IMODE(m) == 0o755
    os.symlink("hello", exp / "l")
    assert call(S.sys_fchmodat2, t, -100, t.mm.cstr("/host/l"), 0o600, 0x100) == \
        -errno.EOPNOTSUPP


@pytest.mark.skipif(not ROOT, reason="needs host root to make device nodes")
def test_host_device_nodes_become_guest_devices(env):
    t, tmp, exp = env
    os.mknod(exp / "sda", st.S_IFBLK | 0o600, os.makedev(8, 0))
    os.mknod(exp / "mynull", st.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(exp / "odd", st.S_IFCHR | 0o666, os.makedev(42, 42))
    assert opn(t, "/host/sda", O_RDWR) == -errno.ENXIO       # not the host's disk
    assert opn(t, "/host/odd", O_RDWR) == -errno.ENXIO
    fd = opn(t, "/host/mynull", O_RDWR)
    assert write(t, fd, b"x") == 1 and read(t, fd) == b""
    assert stat(t, "/host/sda")[7] == os.makedev(8, 0)
    # the guest cannot create device nodes on the host
    assert call(S.sys_mknod, t, t.mm.cstr("/host/newdev"), 0o020600, 0x0103) == -errno.EPERM
    assert not (exp / "newdev").exists()


def test_host_fifo_is_a_guest_pipe(env):
    t, tmp, exp = env
    os.mkfifo(exp / "fifo")
    fd = opn(t, "/host/fifo", O_RDWR)
    assert isinstance(t.files.get(fd), PipeFile)
    assert write(t, fd, b"ping") == 4 and read(t, fd) == b"ping"


def test_mount_syscall_is_confined_to_allowed_root(env):
    t, tmp, exp = env
    vfs = t.kernel.vfs
    call(S.sys_mkdir, t, t.mm.cstr("/m"), 0o755)
    args = (t.mm.cstr("none"), t.mm.cstr("/m"), t.mm.cstr("hostfs"), 0)
    assert call(S.sys_mount, t, *args, t.mm.cstr("/")) == -errno.ENODEV
    vfs.register_fstype("hostfs", hostfs_factory(None))
    assert call(S.sys_mount, t, *args, t.mm.cstr("/")) == -errno.EPERM
    vfs.register_fstype("hostfs", hostfs_factory(str(exp)))
    assert call(S.sys_mount, t, *args, t.mm.cstr("../..")) == -errno.EPERM
    assert call(S.sys_mount, t, *args, t.mm.cstr("/sub")) == 0
    fd = opn(t, "/m/x", O_CREAT | O_WRONLY)
    assert fd >= 0 and (exp / "sub" / "x").exists()


def test_fifo_rendezvous_survives_inode_cache_and_counts_waiting_writer(env):
    import gc
    from usermode.kernel.errors import Block
    t, tmp, exp = env
    os.mkfifo(exp / "rv")
    w = FakeTask(t.kernel, 2, fs=t.fs)
    wpath = w.mm.cstr("/host/rv")
    with pytest.raises(Block):
        S.sys_openat(w, -100, wpath, O_WRONLY, 0)        # the writer waits for a reader
    gc.collect()                                          # nothing else holds the inode
    rfd = opn(t, "/host/rv")
    assert rfd >= 0
    with pytest.raises(Block):                            # not EOF: a writer is coming
        F.sys_read(t, rfd, t.mm.alloc(8), 8)
    wfd = call(S.sys_openat, w, -100, wpath, O_WRONLY, 0)
    assert wfd >= 0
    assert write(w, wfd, b"rv") == 2 and read(t, rfd) == b"rv"
    call(F.sys_close, w, wfd)
    assert read(t, rfd) == b""
