"""The ext2 writer on images made by the host's mke2fs: every change must read back, and the
host's e2fsck -fn must find the image clean afterwards (its exit status is 0)."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from usermode.fs.ext2 import Ext2FS
from usermode.fs.stat import makedev
from usermode.kernel.errors import Errno

SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"
MKE2FS = shutil.which("mke2fs", path=SBIN)
E2FSCK = shutil.which("e2fsck", path=SBIN)
DEBUGFS = shutil.which("debugfs", path=SBIN)


def make(tmp_path: Path, *opts: str, size: str = "64M") -> Path:
    img = tmp_path / "fs.img"
    subprocess.run([MKE2FS, "-q", "-F", *opts, str(img), size], check=True,
                   capture_output=True)
    return img


class Image:
    def __init__(self, path: Path, fstype: str = "ext2") -> None:
        self.fd = os.open(path, os.O_RDWR)
        self.fs = Ext2FS(lambda o, n: os.pread(self.fd, n, o), os.fstat(self.fd).st_size,
                         fstype, "test", self.log.append,
                         lambda o, d: os.pwrite(self.fd, d, o), lambda: os.fsync(self.fd))

    log: list[str] = []

    def close(self) -> None:
        self.fs.release()
        os.close(self.fd)


def fsck(img: Path) -> subprocess.CompletedProcess:
    return subprocess.run([E2FSCK, "-fn", str(img)], capture_output=True, text=True)


def assert_clean(img: Path) -> None:
    p = fsck(img)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("block", ["1024", "4096"])
def test_tree_operations_leave_a_clean_image(tmp_path, block):
    img = make(tmp_path, "-t", "ext2", "-b", block)
    im = Image(img)
    fs = im.fs
    assert fs.rw_refusal() is None
    fs.mount_rw()
    r = fs.root
    d = r.mkdir(b"dir", 0o755, 0, 0)
    f = d.create(b"file", 0o644, 1000, 1000)
    assert f.write_at(0, b"hello\n") == 6
    data = os.urandom(5 << 20)               # through single and double indirect blocks
    big = r.create(b"big", 0o644, 0, 0)
    big.write_at(0, data)
    assert big.read_at(0, len(data)) == data
    sp = r.create(b"sparse", 0o644, 0, 0)
    sp.write_at(3 << 30, b"tail")            # triple indirect with 1 KiB blocks
    assert sp.read_at(3 << 30, 10) == b"tail"
    assert sp.read_at(1 << 30, 4) == bytes(4)
    sp.truncate(100)
    sp.truncate(5000)
    assert sp.read_at(0, 5000) == bytes(5000)
    r.symlink(b"fast", b"dir/file", 0, 0)
    r.symlink(b"slow", b"x" * 100, 0, 0)
    r.link(b"hard", f)
    r.mknod(b"fifo", 0o10644, 0, 0, 0)
    r.mknod(b"chr", 0o20644, makedev(1, 3), 0, 0)
    r.mknod(b"blk", 0o60644, makedev(300, 70000), 0, 0)
    e = r.mkdir(b"e", 0o755, 0, 0)
    d.rename(b"file", e, b"moved")
    r.rename(b"dir", e, b"dir2")              # a directory changes parent: ".." and links
    for i in range(3000):
        e.create(b"n%05d" % i, 0o644, 0, 0)
    for i in range(0, 3000, 2):
        e.unlink(b"n%05d" % i)
    e.rename(b"n00001", e, b"n00003")         # replaces a file
    with pytest.raises(Errno) as ei:
        r.rmdir(b"e")
    assert ei.value.errno == errno.ENOTEMPTY
    big.truncate(70000)
    assert big.read_at(0, 70000) == data[:70000]
    r.unlink(b"big")
    del big
    assert r.nlink == 4 and e.nlink == 3
    im.close()
    assert_clean(img)
    im = Image(img)
    r = im.fs.root
    assert r.lookup(b"fast").readlink() == b"dir/file"
    assert r.lookup(b"slow").readlink() == b"x" * 100
    assert r.lookup(b"hard").read_at(0, 10) == b"hello\n"
    assert r.lookup(b"hard").nlink == 2
    assert r.lookup(b"blk").rdev == makedev(300, 70000)
    assert len(r.lookup(b"e").listdir()) == 1500 - 1 + 2
    os.close(im.fd)


def test_unlinked_but_open_file_is_freed_at_last_reference(tmp_path):
    img = make(tmp_path, "-t", "ext2")
    im = Image(img)
    im.fs.mount_rw()
    r = im.fs.root
    f = r.create(b"f", 0o644, 0, 0)
    f.write_at(0, b"x" * 100000)
    free = im.fs.sbi.free_blocks_count
    r.unlink(b"f")
    assert f.read_at(0, 3) == b"xxx"          # still readable while open
    assert im.fs.sbi.free_blocks_count == free
    del f
    r.create(b"g", 0o644, 0, 0)               # the next operation reaps it
    assert im.fs.sbi.free_blocks_count > free
    im.close()
    assert_clean(img)


def test_dir_index_directory_becomes_linear(tmp_path):
    src = tmp_path / "src"
    (src / "many").mkdir(parents=True)
    for i in range(400):
        (src / "many" / f"a-rather-long-file-name-{i:04d}").write_bytes(b"")
    img = make(tmp_path, "-t", "ext2", "-O", "dir_index", "-d", str(src))
    subprocess.run([E2FSCK, "-fyD", str(img)], capture_output=True)
    im = Image(img)
    im.fs.mount_rw()
    many = im.fs.root.lookup(b"many")
    assert many.iflags & 0x1000
    many.create(b"new", 0o644, 0, 0)
    many.unlink(b"a-rather-long-file-name-0007")
    assert not many.iflags & 0x1000
    im.close()
    assert_clean(img)


def test_ext3_with_empty_journal_is_writable_and_stays_clean(tmp_path):
    img = make(tmp_path, "-t", "ext3")
    im = Image(img, "ext3")
    assert im.fs.rw_refusal() is None
    im.fs.mount_rw()
    im.fs.root.mkdir(b"d", 0o755, 0, 0).create(b"f", 0o644, 0, 0).write_at(0, b"data")
    im.close()
    assert_clean(img)


def test_ext4_features_are_refused_read_write(tmp_path):
    img = make(tmp_path, "-t", "ext4", "-O", "^has_journal")
    im = Image(img, "ext4")
    why = im.fs.rw_refusal()
    assert why is not None and "extent" in why
    with pytest.raises(Errno) as ei:
        im.fs.root.create(b"x", 0o644, 0, 0)
    assert ei.value.errno == errno.EROFS
    os.close(im.fd)


def test_mount_state_and_count(tmp_path):
    img = make(tmp_path, "-t", "ext2")

    def field(name: str) -> str:
        out = subprocess.run([DEBUGFS, "-R", "stats", str(img)], capture_output=True,
                             text=True).stdout
        return next(ln.split(":", 1)[1].strip() for ln in out.splitlines()
                    if ln.startswith(name + ":"))
    assert field("Filesystem state") == "clean"
    im = Image(img)
    im.fs.mount_rw()
    assert field("Filesystem state") == "not clean"
    assert field("Mount count") == "1"
    im.close()
    assert field("Filesystem state") == "clean"


def test_full_filesystem_gives_enospc_and_stays_clean(tmp_path):
    img = make(tmp_path, "-t", "ext2", size="2M")
    im = Image(img)
    im.fs.mount_rw()
    f = im.fs.root.create(b"fill", 0o644, 0, 0)
    chunk = b"z" * 65536
    with pytest.raises(Errno) as ei:
        for i in range(100):
            n = f.write_at(i * 65536, chunk)
            if n < len(chunk):
                f.write_at(i * 65536 + n, chunk[n:])
    assert ei.value.errno == errno.ENOSPC
    im.close()
    assert_clean(img)


def test_remount_switches_between_ro_and_rw(tmp_path):
    img = make(tmp_path, "-t", "ext2")
    im = Image(img)
    fs = im.fs
    with pytest.raises(Errno):
        fs.root.create(b"x", 0o644, 0, 0)
    fs.remount(0)
    fs.root.create(b"x", 0o644, 0, 0)
    fs.remount(1)                             # MS_RDONLY: written back and clean
    assert_clean(img)
    with pytest.raises(Errno) as ei:
        fs.root.create(b"y", 0o644, 0, 0)
    assert ei.value.errno == errno.EROFS
    os.close(im.fd)
