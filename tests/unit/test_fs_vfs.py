"""VFS + tmpfs through the syscall handlers: path walk rules, namespace ops, stat."""
from __future__ import annotations

import errno
import struct

import pytest
from test_fs_fakes import FakeTask, call, make_task, user_creds

from usermode.fs.file import O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_PATH, O_RDONLY, \
    O_RDWR, O_TRUNC, O_WRONLY
from usermode.fs.stat import STAT_SIZE, S_IFDIR, S_IFLNK, S_IFREG, Stat
from usermode.fs.tmpfs import TmpFS
from usermode.kernel.errors import Errno
from usermode.kernel.syscalls import sys_file as F
from usermode.kernel.syscalls import sys_fs as S

AT = -100


@pytest.fixture
def t() -> FakeTask:
    return make_task()


def P(t, s):
    return t.mm.cstr(s)


def opn(t, path, flags=O_RDONLY, mode=0o644):
    return call(S.sys_openat, t, AT, P(t, path), flags, mode)


def write(t, fd, data: bytes) -> int:
    return call(F.sys_write, t, fd, t.mm.alloc(len(data), data), len(data))


def read(t, fd, n=4096) -> bytes | int:
    buf = t.mm.alloc(n)
    r = call(F.sys_read, t, fd, buf, n)
    return r if r < 0 else t.mm.copy_in(buf, r)


def stat(t, path, fn=S.sys_stat) -> tuple:
    buf = t.mm.alloc(STAT_SIZE)
    r = call(fn, t, P(t, path), buf)
    if r < 0:
        return (r,)
    return struct.unpack("<QQQIIIiQqqqqqqqqq24x", t.mm.copy_in(buf, STAT_SIZE))


def mkfile(t, path, data=b"", mode=0o644):
    fd = opn(t, path, O_WRONLY | O_CREAT | O_TRUNC, mode)
    assert fd >= 0, fd
    if data:
        assert write(t, fd, data) == len(data)
    call(F.sys_close, t, fd)


def test_struct_stat_layout():
    assert STAT_SIZE == 144
    b = Stat(dev=1, ino=2, mode=S_IFREG | 0o644, nlink=3, uid=4, gid=5, size=6,
             mtime_ns=7_000_000_008).pack()
    assert struct.unpack_from("<QQQIII", b) == (1, 2, 3, S_IFREG | 0o644, 4, 5)
    assert struct.unpack_from("<q", b, 48)[0] == 6
    assert struct.unpack_from("<qq", b, 88) == (7, 8)
    sx = Stat(ino=9, mode=S_IFDIR | 0o755, size=10).pack_statx(0xFFF)
    assert len(sx) == 256
    assert struct.unpack_from("<H", sx, 28)[0] == S_IFDIR | 0o755
    assert struct.unpack_from("<QQ", sx, 32) == (9, 10)


def test_create_write_read_seek_stat(t):
    fd = opn(t, "/f", O_RDWR | O_CREAT, 0o666)
    assert fd == 0
    assert write(t, fd, b"hello world") == 11
    assert call(F.sys_lseek, t, fd, 6, 0) == 6
    assert read(t, fd) == b"world"
    assert call(F.sys_lseek, t, fd, -1, 0) == -errno.EINVAL
    assert call(F.sys_lseek, t, fd, 0, 9) == -errno.EINVAL
    st = stat(t, "/f")
    assert st[3] == S_IFREG | 0o644          # umask 022 applied
    assert st[8] == 11
    assert call(F.sys_close, t, fd) == 0
    assert call(F.sys_close, t, fd) == -errno.EBADF


def test_open_flags(t):
    mkfile(t, "/f", b"abc")
    assert opn(t, "/f", O_CREAT | O_EXCL | O_WRONLY) == -errno.EEXIST
    assert opn(t, "/nope") == -errno.ENOENT
    assert opn(t, "/f/x") == -errno.ENOTDIR
    assert opn(t, "/f/") == -errno.ENOTDIR
    assert opn(t, "/f", O_DIRECTORY) == -errno.ENOTDIR
    assert opn(t, "/", O_WRONLY) == -errno.EISDIR
    assert opn(t, "/newdir/", O_CREAT | O_WRONLY) == -errno.EISDIR
    fd = opn(t, "/f", O_WRONLY | O_TRUNC)
    assert stat(t, "/f")[8] == 0
    assert read(t, fd) == -errno.EBADF
    fd2 = opn(t, "/f", O_RDONLY)
    assert write(t, fd2, b"x") == -errno.EBADF
    assert call(S.sys_openat, t, AT, 0, 0, 0) == -errno.EFAULT
    assert opn(t, "") == -errno.ENOENT
    assert opn(t, "/" + "a" * 256) == -errno.ENAMETOOLONG
    assert opn(t, "/a" * 2100) == -errno.ENAMETOOLONG


def test_fgetfl_shows_largefile_and_no_creation_flags(t):
    fd = opn(t, "/f", O_RDWR | O_CREAT | O_TRUNC)
    assert call(F.sys_fcntl, t, fd, 3, 0) == O_RDWR | 0o100000


def test_symlinks(t):
    mkfile(t, "/target", b"data")
    assert call(S.sys_symlink, t, P(t, "/target"), P(t, "/abs")) == 0
    assert call(S.sys_symlink, t, P(t, "target"), P(t, "/rel")) == 0
    assert call(S.sys_symlink, t, P(t, "/missing"), P(t, "/dangling")) == 0
    assert read(t, opn(t, "/abs")) == b"data"
    assert read(t, opn(t, "/rel")) == b"data"
    assert opn(t, "/abs", O_NOFOLLOW) == -errno.ELOOP
    assert opn(t, "/dangling") == -errno.ENOENT
    assert stat(t, "/abs", S.sys_lstat)[3] == S_IFLNK | 0o777
    buf = t.mm.alloc(64)
    assert call(S.sys_readlink, t, P(t, "/abs"), buf, 64) == 7
    assert t.mm.copy_in(buf, 7) == b"/target"
    assert call(S.sys_readlink, t, P(t, "/abs"), buf, 3) == 3
    assert call(S.sys_readlink, t, P(t, "/target"), buf, 64) == -errno.EINVAL
    # O_CREAT through a dangling link creates its target
    fd = opn(t, "/dangling", O_CREAT | O_WRONLY)
    assert fd >= 0 and stat(t, "/missing")[0] != -errno.ENOENT
    assert opn(t, "/abs", O_CREAT | O_EXCL | O_WRONLY) == -errno.EEXIST


def test_symlink_loop(t):
    call(S.sys_symlink, t, P(t, "/b"), P(t, "/a"))
    call(S.sys_symlink, t, P(t, "/a"), P(t, "/b"))
    assert opn(t, "/a") == -errno.ELOOP
    # a chain of 40 links resolves, 41 does not
    call(S.sys_mkdir, t, P(t, "/d"), 0o755)
    for i in range(41):
        call(S.sys_symlink, t, P(t, f"/l{i + 1}" if i < 40 else "/d"), P(t, f"/l{i}"))
    assert stat(t, "/l1")[3] & S_IFDIR
    assert stat(t, "/l0")[0] == -errno.ELOOP


def test_dirs_and_getdents(t):
    assert call(S.sys_mkdir, t, P(t, "/d"), 0o755) == 0
    assert call(S.sys_mkdir, t, P(t, "/d"), 0o755) == -errno.EEXIST
    assert call(S.sys_mkdir, t, P(t, "/x/y"), 0o755) == -errno.ENOENT
    for n in ("a", "b", "c"):
        mkfile(t, f"/d/{n}")
    fd = opn(t, "/d", O_RDONLY | O_DIRECTORY)
    buf = t.mm.alloc(4096)
    n = call(F.sys_getdents64, t, fd, buf, 4096)
    data = t.mm.copy_in(buf, n)
    names, off = [], 0
    while off < len(data):
        ino, doff, reclen, dtype = struct.unpack_from("<QqHB", data, off)
        names.append(data[off + 19:off + reclen].rstrip(b"\0"))
        assert reclen % 8 == 0
        off += reclen
    assert sorted(names) == [b".", b"..", b"a", b"b", b"c"]
    assert call(F.sys_getdents64, t, fd, buf, 4096) == 0
    assert call(F.sys_lseek, t, fd, 0, 0) == 0
    assert call(F.sys_getdents64, t, fd, buf, 10) == -errno.EINVAL
    assert read(t, fd) == -errno.EISDIR
    assert call(S.sys_rmdir, t, P(t, "/d")) == -errno.ENOTEMPTY
    assert call(S.sys_unlink, t, P(t, "/d")) == -errno.EISDIR
    assert call(S.sys_rmdir, t, P(t, "/d/a")) == -errno.ENOTDIR
    assert call(S.sys_rmdir, t, P(t, "/d/.")) == -errno.EINVAL
    for n in ("a", "b", "c"):
        assert call(S.sys_unlink, t, P(t, f"/d/{n}")) == 0
    assert call(S.sys_rmdir, t, P(t, "/d/")) == 0
    assert stat(t, "/d")[0] == -errno.ENOENT


def test_nlink_counts(t):
    call(S.sys_mkdir, t, P(t, "/d"), 0o755)
    call(S.sys_mkdir, t, P(t, "/d/s"), 0o755)
    assert stat(t, "/d")[2] == 3
    mkfile(t, "/d/f")
    assert call(S.sys_link, t, P(t, "/d/f"), P(t, "/d/g")) == 0
    assert stat(t, "/d/f")[2] == 2
    assert stat(t, "/d/f")[1] == stat(t, "/d/g")[1]
    assert call(S.sys_link, t, P(t, "/d/s"), P(t, "/d/s2")) == -errno.EPERM


def test_rename(t):
    call(S.sys_mkdir, t, P(t, "/a"), 0o755)
    call(S.sys_mkdir, t, P(t, "/a/sub"), 0o755)
    mkfile(t, "/f", b"1")
    mkfile(t, "/g", b"2")
    assert call(S.sys_rename, t, P(t, "/f"), P(t, "/g")) == 0
    assert read(t, opn(t, "/g")) == b"1"
    assert call(S.sys_rename, t, P(t, "/a"), P(t, "/a/sub/x")) == -errno.EINVAL
    assert call(S.sys_rename, t, P(t, "/g"), P(t, "/a")) == -errno.EISDIR
    assert call(S.sys_rename, t, P(t, "/a"), P(t, "/g")) == -errno.ENOTDIR
    mkfile(t, "/h", b"3")
    assert call(S.sys_renameat2, t, AT, P(t, "/g"), AT, P(t, "/h"), 1) == -errno.EEXIST
    assert call(S.sys_renameat2, t, AT, P(t, "/g"), AT, P(t, "/h"), 2) == 0
    assert read(t, opn(t, "/h")) == b"1" and read(t, opn(t, "/g")) == b"3"
    assert call(S.sys_rename, t, P(t, "/nope"), P(t, "/x")) == -errno.ENOENT
    assert call(S.sys_rename, t, P(t, "/a/."), P(t, "/x")) == -errno.EBUSY


def test_cwd_follows_rename_and_dotdot_at_root(t):
    call(S.sys_mkdir, t, P(t, "/a"), 0o755)
    call(S.sys_mkdir, t, P(t, "/a/b"), 0o755)
    assert call(S.sys_chdir, t, P(t, "/a/b")) == 0
    buf = t.mm.alloc(256)
    assert call(S.sys_getcwd, t, buf, 256) == 5
    assert t.mm.read_cstr(buf) == b"/a/b"
    call(S.sys_rename, t, P(t, "/a"), P(t, "/z"))
    call(S.sys_getcwd, t, buf, 256)
    assert t.mm.read_cstr(buf) == b"/z/b"
    assert call(S.sys_getcwd, t, buf, 3) == -errno.ERANGE
    mkfile(t, "rel")                      # relative to cwd
    assert stat(t, "/z/b/rel")[0] != -errno.ENOENT
    assert stat(t, "../../../../z/b/rel")[0] != -errno.ENOENT
    assert call(S.sys_rmdir, t, P(t, "/z/b/rel")) == -errno.ENOTDIR
    call(S.sys_unlink, t, P(t, "/z/b/rel"))
    call(S.sys_rmdir, t, P(t, "/z/b"))
    assert call(S.sys_getcwd, t, buf, 256) == -errno.ENOENT


def test_chroot_confines_dotdot_and_absolute_links(t):
    call(S.sys_mkdir, t, P(t, "/jail"), 0o755)
    mkfile(t, "/secret", b"host")
    mkfile(t, "/jail/secret", b"jail")
    call(S.sys_symlink, t, P(t, "/secret"), P(t, "/jail/link"))
    assert call(S.sys_chroot, t, P(t, "/jail")) == 0
    assert read(t, opn(t, "/../../secret")) == b"jail"
    assert read(t, opn(t, "/link")) == b"jail"
    u = FakeTask(t.kernel, 2, creds=user_creds())
    assert call(S.sys_chroot, u, P(u, "/jail")) == -errno.EPERM


def test_permissions_for_users(t):
    call(S.sys_mkdir, t, P(t, "/priv"), 0o700)
    mkfile(t, "/priv/f", b"x")
    mkfile(t, "/ro", b"r", 0o644)
    mkfile(t, "/noexec", b"#!", 0o644)
    u = FakeTask(t.kernel, 2, creds=user_creds())
    assert opn(u, "/priv/f") == -errno.EACCES
    assert opn(u, "/ro", O_WRONLY) == -errno.EACCES
    assert read(u, opn(u, "/ro")) == b"r"
    assert call(S.sys_unlink, u, P(u, "/ro")) == -errno.EPERM      # sticky tmpfs root
    assert call(S.sys_unlink, u, P(u, "/priv/f")) == -errno.EACCES
    assert call(S.sys_chmod, u, P(u, "/ro"), 0o777) == -errno.EPERM
    assert call(S.sys_chown, u, P(u, "/ro"), 1000, 1000) == -errno.EPERM
    assert call(S.sys_access, u, P(u, "/ro"), 2) == -errno.EACCES
    assert call(S.sys_access, u, P(u, "/ro"), 4) == 0
    # root bypasses r/w but exec needs an x bit
    assert opn(t, "/priv/f", O_RDWR) >= 0
    assert call(S.sys_access, t, P(t, "/noexec"), 1) == -errno.EACCES
    vfs = t.kernel.vfs
    with pytest.raises(Errno) as e:
        vfs.open_exec(t, b"/noexec")
    assert e.value.errno == errno.EACCES
    with pytest.raises(Errno) as e:
        vfs.open_exec(t, b"/priv")
    assert e.value.errno == errno.EACCES
    call(S.sys_chmod, t, P(t, "/noexec"), 0o755)
    f, inode, path = vfs.open_exec(t, b"/noexec")
    assert vfs.read_all(t, f) == b"#!" and path == b"/noexec"
    # a user-owned file in a sticky dir
    call(S.sys_mkdir, t, P(t, "/tmp"), 0o1777)
    assert stat(t, "/tmp")[3] == S_IFDIR | 0o1755             # umask applies
    call(S.sys_chmod, t, P(t, "/tmp"), 0o1777)
    mkfile(u, "/tmp/mine")
    assert stat(t, "/tmp/mine")[4:6] == (1000, 1000)
    v = FakeTask(t.kernel, 3, creds=user_creds(1001))
    assert call(S.sys_unlink, v, P(v, "/tmp/mine")) == -errno.EPERM
    assert call(S.sys_unlink, u, P(u, "/tmp/mine")) == 0


def test_chmod_chown_utimes_truncate(t):
    mkfile(t, "/f", b"12345")
    assert call(S.sys_chmod, t, P(t, "/f"), 0o4755) == 0
    assert stat(t, "/f")[3] == S_IFREG | 0o4755
    assert call(S.sys_chown, t, P(t, "/f"), 5, 6) == 0
    st = stat(t, "/f")
    assert st[4:6] == (5, 6) and st[3] == S_IFREG | 0o755      # setuid dropped
    assert call(S.sys_chown, t, P(t, "/f"), -1, 7) == 0
    assert stat(t, "/f")[4:6] == (5, 7)
    ts = t.mm.alloc(32, struct.pack("<qqqq", 100, 5, 200, (1 << 30) - 2))
    assert call(S.sys_utimensat, t, AT, P(t, "/f"), ts, 0) == 0
    st = stat(t, "/f")
    assert (st[11], st[12]) == (100, 5)
    bad = t.mm.alloc(32, struct.pack("<qqqq", 1, 10**9, 0, 0))
    assert call(S.sys_utimensat, t, AT, P(t, "/f"), bad, 0) == -errno.EINVAL
    assert call(S.sys_truncate, t, P(t, "/f"), 2) == 0
    assert stat(t, "/f")[8] == 2
    assert call(S.sys_truncate, t, P(t, "/"), 2) == -errno.EISDIR
    fd = opn(t, "/f", O_RDONLY)
    assert call(F.sys_ftruncate, t, fd, 0) == -errno.EINVAL
    fd = opn(t, "/f", O_RDWR)
    assert call(F.sys_ftruncate, t, fd, 10) == 0
    assert read(t, fd) == b"12" + bytes(8)


def test_umask_mknod_fifo_and_devices(t):
    assert call(S.sys_umask, t, 0o077) == 0o022
    mkfile(t, "/f")
    assert stat(t, "/f")[3] == S_IFREG | 0o600
    assert call(S.sys_mknod, t, P(t, "/fifo"), 0o010666, 0) == 0
    assert stat(t, "/fifo")[3] == 0o010600
    assert call(S.sys_mknod, t, P(t, "/null"), 0o020666, (1 << 8) | 3) == 0
    st = stat(t, "/null")
    assert st[7] == (1 << 8) | 3
    fd = opn(t, "/null", O_RDWR)
    assert write(t, fd, b"gone") == 4 and read(t, fd) == b""
    assert call(S.sys_mknod, t, P(t, "/nodev"), 0o020666, (99 << 8) | 1) == 0
    assert opn(t, "/nodev") == -errno.ENXIO
    u = FakeTask(t.kernel, 2, creds=user_creds())
    assert call(S.sys_mknod, u, P(u, "/x"), 0o020666, 0) == -errno.EPERM


def test_mounts_and_dotdot_across_them(t):
    vfs = t.kernel.vfs
    call(S.sys_mkdir, t, P(t, "/mnt"), 0o755)
    mkfile(t, "/top", b"top")
    tgt, kind = P(t, "/mnt"), P(t, "tmpfs")
    assert call(S.sys_mount, t, P(t, "none"), tgt, kind, 0, 0) == 0
    mkfile(t, "/mnt/inner", b"in")
    assert read(t, opn(t, "/mnt/../top")) == b"top"
    assert stat(t, "/mnt")[0] != stat(t, "/")[0]            # another st_dev
    assert call(S.sys_rmdir, t, P(t, "/mnt")) == -errno.EBUSY
    assert call(S.sys_link, t, P(t, "/top"), P(t, "/mnt/l")) == -errno.EXDEV
    assert call(S.sys_rename, t, P(t, "/top"), P(t, "/mnt/top")) == -errno.EXDEV
    call(S.sys_chdir, t, P(t, "/mnt"))
    buf = t.mm.alloc(64)
    call(S.sys_getcwd, t, buf, 64)
    assert t.mm.read_cstr(buf) == b"/mnt"
    assert read(t, opn(t, "../top")) == b"top"
    call(S.sys_chdir, t, P(t, "/"))
    assert call(S.sys_umount2, t, P(t, "/mnt"), 0) == 0
    assert stat(t, "/mnt/inner")[0] == -errno.ENOENT
    assert call(S.sys_mount, t, 0, P(t, "/mnt"), P(t, "nosuchfs"), 0, 0) == -errno.ENODEV
    u = FakeTask(t.kernel, 2, creds=user_creds())
    assert call(S.sys_mount, u, 0, P(u, "/mnt"), P(u, "tmpfs"), 0, 0) == -errno.EPERM
    # read-only bind mount
    call(S.sys_mkdir, t, P(t, "/ro"), 0o755)
    assert call(S.sys_mount, t, P(t, "/mnt"), P(t, "/ro"), 0, 4096 | 1, 0) == 0
    assert opn(t, "/ro/new", O_CREAT | O_WRONLY) == -errno.EROFS
    assert call(S.sys_mkdir, t, P(t, "/ro/d"), 0o755) == -errno.EROFS
    assert len(vfs.mounts) == 2


def test_devfs_registry():
    t = make_task()
    vfs = t.kernel.vfs
    call(S.sys_mkdir, t, P(t, "/dev"), 0o755)
    assert call(S.sys_mount, t, 0, P(t, "/dev"), P(t, "devtmpfs"), 0, 0) == 0
    fd = opn(t, "/dev/zero")
    assert read(t, fd, 8) == bytes(8)
    fd = opn(t, "/dev/full", O_WRONLY)
    assert write(t, fd, b"x") == -errno.ENOSPC
    assert len(read(t, opn(t, "/dev/urandom"), 16)) == 16
    from usermode.fs.devfs import NullFile
    opened = []

    def console(t, flags):
        opened.append(flags)
        return NullFile(flags)
    vfs.register_chrdev(5, 1, console, "console", 0o600)
    fd = opn(t, "/dev/console", O_RDWR)
    assert fd >= 0 and opened
    buf = t.mm.alloc(STAT_SIZE)
    assert call(S.sys_fstat, t, fd, buf) == 0
    st = struct.unpack("<QQQIIIiQ", t.mm.copy_in(buf, 48))
    assert st[3] == 0o020600 and st[7] == (5 << 8) | 1
    assert stat(t, "/dev/fd", S.sys_lstat)[3] == S_IFLNK | 0o777


def test_fdtable_via_dup_fcntl(t):
    mkfile(t, "/f", b"abcdef")
    fd = opn(t, "/f")
    assert call(F.sys_dup2, t, fd, 10) == 10
    assert call(F.sys_fcntl, t, fd, 0, 5) == 5
    assert call(F.sys_fcntl, t, fd, 1030, 5) == 6
    assert call(F.sys_fcntl, t, 6, 1, 0) == 1
    assert call(F.sys_dup3, t, fd, fd, 0) == -errno.EINVAL
    assert call(F.sys_dup2, t, fd, fd) == fd
    assert call(F.sys_dup2, t, 99, 3) == -errno.EBADF
    # shared offset between duplicates
    assert read(t, fd, 2) == b"ab" and read(t, 10, 2) == b"cd"
    assert call(F.sys_close_range, t, 5, 10, 0) == 0
    assert call(F.sys_fcntl, t, 10, 1, 0) == -errno.EBADF
    assert call(F.sys_fcntl, t, fd, 12345, 0) == -errno.EINVAL


def test_locks(t):
    mkfile(t, "/f", b"x" * 100)
    fd = opn(t, "/f", O_RDWR)
    other = FakeTask(t.kernel, 2, fs=t.fs)
    ofd = opn(other, "/f", O_RDWR)
    fl = struct.Struct("<hh4xqqi4x")
    lk = t.mm.alloc(32, fl.pack(1, 0, 0, 10, 0))
    assert call(F.sys_fcntl, t, fd, 6, lk) == 0
    lk2 = other.mm.alloc(32, fl.pack(1, 0, 5, 10, 0))
    assert call(F.sys_fcntl, other, ofd, 6, lk2) == -errno.EAGAIN
    assert call(F.sys_fcntl, other, ofd, 5, lk2) == 0
    assert fl.unpack(other.mm.copy_in(lk2, 32))[0] == 1
    assert fl.unpack(other.mm.copy_in(lk2, 32))[4] == t.pid
    from usermode.kernel.errors import Block
    with pytest.raises(Block):
        F.sys_fcntl(other, ofd, 7, lk2)
    assert call(F.sys_close, t, fd) == 0                 # POSIX: any close drops them
    assert call(F.sys_fcntl, other, ofd, 6, lk2) == 0
    assert call(F.sys_flock, other, ofd, 2) == 0
    fd = opn(t, "/f")
    assert call(F.sys_flock, t, fd, 2 | 4) == -errno.EWOULDBLOCK
    assert call(F.sys_flock, other, ofd, 8) == 0
    assert call(F.sys_flock, t, fd, 1) == 0


def test_statfs_and_statx(t):
    buf = t.mm.alloc(120)
    assert call(S.sys_statfs, t, P(t, "/"), buf) == 0
    assert struct.unpack_from("<q", t.mm.copy_in(buf, 8))[0] == 0x01021994
    sx = t.mm.alloc(256)
    assert call(S.sys_statx, t, AT, P(t, "/"), 0, 0xFFF, sx) == 0
    assert struct.unpack_from("<H", t.mm.copy_in(sx, 256), 28)[0] == S_IFDIR | 0o1777
    fd = opn(t, "/", O_PATH)
    assert call(S.sys_statx, t, fd, P(t, ""), 0x1000, 0xFFF, sx) == 0
    assert read(t, fd) == -errno.EBADF


def test_openat_relative_to_dirfd_and_openat2(t):
    call(S.sys_mkdir, t, P(t, "/d"), 0o755)
    mkfile(t, "/d/f", b"in d")
    mkfile(t, "/outside", b"out")
    dfd = opn(t, "/d", O_RDONLY | O_DIRECTORY)
    assert read(t, call(S.sys_openat, t, dfd, P(t, "f"), 0, 0)) == b"in d"
    ffd = opn(t, "/d/f")
    assert call(S.sys_openat, t, ffd, P(t, "x"), 0, 0) == -errno.ENOTDIR
    how = t.mm.alloc(24, struct.pack("<QQQ", 0, 0, 0x10))      # RESOLVE_IN_ROOT
    call(S.sys_symlink, t, P(t, "/f"), P(t, "/d/abs"))
    assert read(t, call(S.sys_openat2, t, dfd, P(t, "abs"), how, 24)) == b"in d"
    assert call(S.sys_openat2, t, dfd, P(t, "../outside"), how, 24) == -errno.ENOENT
    how = t.mm.alloc(24, struct.pack("<QQQ", 0, 0, 0x08))      # RESOLVE_BENEATH
    assert call(S.sys_openat2, t, dfd, P(t, "../outside"), how, 24) == -errno.EXDEV
    how = t.mm.alloc(24, struct.pack("<QQQ", 0, 0, 0x04))      # RESOLVE_NO_SYMLINKS
    assert call(S.sys_openat2, t, dfd, P(t, "abs"), how, 24) == -errno.ELOOP
    assert call(S.sys_openat2, t, dfd, P(t, "f"), how, 8) == -errno.EINVAL


def test_fork_shares_offsets_and_cloexec(t):
    mkfile(t, "/f", b"0123456789")
    fd = call(S.sys_openat, t, AT, P(t, "/f"), 0o2000000, 0)
    assert call(F.sys_fcntl, t, fd, 1, 0) == 1
    c = t.fork(2)
    assert read(c, fd, 3) == b"012" and read(t, fd, 3) == b"345"
    c.files.close_on_exec()
    assert read(c, fd, 1) == -errno.EBADF
    assert read(t, fd, 1) == b"6"


def test_tmpfs_space_limit():
    t = make_task(TmpFS(size_limit=8192))
    fd = opn(t, "/big", O_CREAT | O_WRONLY)
    assert write(t, fd, b"x" * 8000) == 8000
    assert write(t, fd, b"x" * 8000) == -errno.ENOSPC
