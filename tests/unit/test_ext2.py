"""The read-only ext2/3/4 reader against images made by the host's mke2fs from a directory:
every name, attribute, file content and link target must match the source tree."""
from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from usermode.fs import ext2_disk
from usermode.fs.ext2 import Ext2FS, Ext2Inode
from usermode.fs.ext2_disk import Ext2FormatError
from usermode.kernel.errors import Errno

MKE2FS = shutil.which("mke2fs", path="/usr/sbin:/sbin:/usr/bin:/bin")
E2FSCK = shutil.which("e2fsck", path="/usr/sbin:/sbin:/usr/bin:/bin")
pytestmark = pytest.mark.skipif(MKE2FS is None, reason="mke2fs not installed")
ROOT = os.geteuid() == 0
SLOW_TARGET = "some/rather/long/target/" + "x" * 70          # > 60 bytes: a slow symlink
DEBUGFS = shutil.which("debugfs", path="/usr/sbin:/sbin:/usr/bin:/bin")
HELLO_S = 1_600_000_000
# mke2fs -d stores whole seconds only: debugfs then sets nanoseconds and an epoch bit (2106)
HELLO_EXTRA = (987_654_321 << 2) | 1
HELLO_NS = (HELLO_S + (1 << 32)) * 10**9 + 987_654_321


def build_tree(src: Path) -> Path:
    """A source tree exercising what the reader must handle."""
    src.mkdir()
    (src / "a" / "b" / "c").mkdir(parents=True)
    (src / "a" / "b" / "c" / "deep.txt").write_bytes(b"deep\n")
    (src / "a" / "empty").write_bytes(b"")
    (src / "hello.txt").write_bytes(b"hello, world\n")
    os.link(src / "hello.txt", src / "hardlink")
    os.symlink("hello.txt", src / "fast")
    os.symlink(SLOW_TARGET, src / "slow")
    os.symlink("a/b/c", src / "dirlink")
    (src / "big").write_bytes(os.urandom(1 << 20))
    with open(src / "sparse", "wb") as f:       # holes at the start, between and after
        f.seek(100_000)
        f.write(b"middle")
        f.seek(3 << 20)
        f.write(b"end")
        f.truncate((3 << 20) + 9000)
    with open(src / "fragmented", "wb") as f:   # many extents: an extent tree of depth >= 1
        for i in range(12):
            f.seek(i * 65536)
            f.write(bytes([65 + i]) * 3000)
    many = src / "many"
    many.mkdir()
    for i in range(300):                        # a multi-block directory (htree after -D)
        (many / f"file-with-a-longish-name-{i:04d}").write_bytes(str(i).encode())
    os.mkfifo(src / "fifo")
    (src / "script.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(src / "script.sh", 0o4755)
    os.chmod(src / "a", 0o750)
    os.chmod(src / "hello.txt", 0o640)
    os.utime(src / "hello.txt", (HELLO_S, HELLO_S))
    if ROOT:
        os.chown(src / "hello.txt", 70000, 80000)           # needs the high 16 bits
        os.chown(src / "a", 1234, 5678)
        os.lchown(src / "slow", 4321, 8765)
        os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(src / "bigdev", stat.S_IFBLK | 0o600, os.makedev(300, 70000))
    return src


def mkfs(src: Path, img: Path, fstype: str, *extra: str, index: bool = False) -> Path:
    subprocess.run([MKE2FS, "-q", "-F", "-t", fstype, *extra, "-d", str(src), str(img), "8M"],
                   check=True, capture_output=True)
    if index and E2FSCK:
        # -D rebuilds the directories as htrees (dir_index)
        r = subprocess.run([E2FSCK, "-fyD", str(img)], capture_output=True)
        assert r.returncode in (0, 1), r.stdout + r.stderr
    if DEBUGFS and "128" not in extra:
        subprocess.run([DEBUGFS, "-w", "-R", f"sif hello.txt mtime_extra {HELLO_EXTRA}",
                        str(img)], check=True, capture_output=True)
    return img


def open_fs(img: Path, fstype: str = "ext4") -> Ext2FS:
    fd = os.open(img, os.O_RDONLY)
    size = os.fstat(fd).st_size
    return Ext2FS(lambda off, n: os.pread(fd, n, off), size, fstype, "test")


def resolve(fs: Ext2FS, rel: str) -> Ext2Inode:
    node = fs.root
    for part in rel.split("/"):
        if part:
            node = node.lookup(part.encode())
    assert isinstance(node, Ext2Inode)
    return node


VARIANTS = {
    "ext4": ("ext4", (), True),
    "ext4-4k": ("ext4", ("-b", "4096"), False),
    "ext4-32bitdesc": ("ext4", ("-O", "^64bit,^metadata_csum"), False),
    "ext2": ("ext2", (), False),
    "ext2-indexed": ("ext2", ("-b", "4096"), True),
    "ext3-128": ("ext3", ("-I", "128"), False),
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return build_tree(tmp_path_factory.mktemp("ext2src") / "src")


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def image(request, tree, tmp_path_factory) -> tuple[Ext2FS, str]:
    fstype, extra, index = VARIANTS[request.param]
    img = mkfs(tree, tmp_path_factory.mktemp("img") / "fs.img", fstype, *extra, index=index)
    return open_fs(img, fstype), request.param


def test_tree_matches_source(tree, image):
    fs, variant = image
    seen_ino: dict[int, int] = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        rel = os.path.relpath(dirpath, tree)
        node = resolve(fs, "" if rel == "." else rel)
        names = {n.decode() for n, _, _ in node.listdir()}
        expect = set(dirnames) | set(filenames)
        if rel == ".":
            expect.add("lost+found")
        assert names == expect, rel
        for name, ino, dtype in node.listdir():
            child = fs.iget(ino)
            assert dtype == stat.S_IFMT(child.mode) >> 12
        for name in dirnames + filenames + ([] if rel != "." else []):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            inode = resolve(fs, os.path.relpath(path, tree))
            a = inode.getattr()
            assert a.mode == st.st_mode, path
            assert (a.uid, a.gid) == (st.st_uid, st.st_gid), path
            if not stat.S_ISDIR(st.st_mode):
                assert a.nlink == st.st_nlink, path
            assert a.mtime_ns // 10**9 % (1 << 32) == st.st_mtime_ns // 10**9, path
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                assert (os.major(a.rdev), os.minor(a.rdev)) == \
                    (os.major(st.st_rdev), os.minor(st.st_rdev)), path
            if stat.S_ISREG(st.st_mode):
                assert a.size == st.st_size, path
                data = open(path, "rb").read()
                assert inode.read_at(0, st.st_size + 10) == data, path
                # unaligned reads across block boundaries
                assert inode.read_at(1000, 5000) == data[1000:6000], path
                seen_ino.setdefault(st.st_ino, a.ino)
                assert seen_ino[st.st_ino] == a.ino, path       # hard links share an inode
            elif stat.S_ISLNK(st.st_mode):
                assert inode.readlink() == os.readlink(path).encode(), path
                assert a.size == len(os.readlink(path)), path


def test_hard_link_is_one_inode(image):
    fs, _ = image
    a, b = resolve(fs, "hello.txt"), resolve(fs, "hardlink")
    assert a is b and a.nlink == 2


def test_sparse_file_holes(image):
    fs, _ = image
    node = resolve(fs, "sparse")
    assert node.getattr().blocks * 512 < 64 * 1024     # holes take no blocks
    assert node.read_at(0, 100_000) == bytes(100_000)
    assert node.read_at(100_000, 6) == b"middle"
    assert node.read_at(3 << 20, 20) == b"end" + bytes(17)
    assert node.read_at(node.size, 10) == b""


def test_timestamps_beyond_2038(image):
    fs, variant = image
    a = resolve(fs, "hello.txt").getattr()
    if "128" in variant or DEBUGFS is None:
        assert a.mtime_ns == HELLO_S * 10**9    # 128-byte inodes have no extra fields
    else:
        assert a.mtime_ns == HELLO_NS


def test_extent_tree_depth(image):
    fs, variant = image
    node = resolve(fs, "fragmented")
    if node.raw.flags & ext2_disk.EXT4_EXTENTS_FL:
        depth, _ = ext2_disk.parse_extent_node(node.raw.i_block)
        assert depth >= 1
        assert len(node._load_extents()) >= 12


def test_htree_directories(image):
    fs, variant = image
    node = resolve(fs, "many")
    if VARIANTS[variant][2] and E2FSCK:
        assert node.raw.flags & 0x1000      # EXT4_INDEX_FL: an htree directory
    assert len(node.listdir()) == 300
    assert node.lookup(b"file-with-a-longish-name-0123").read_at(0, 10) == b"123"


def test_lookup_errors_and_read_only(image):
    fs, _ = image
    with pytest.raises(Errno) as e:
        fs.root.lookup(b"nope")
    assert e.value.errno == errno.ENOENT
    with pytest.raises(Errno) as e:
        resolve(fs, "hello.txt").lookup(b"x")
    assert e.value.errno == errno.ENOTDIR
    with pytest.raises(Errno) as e:
        resolve(fs, "hello.txt").write_at(0, b"x")
    assert e.value.errno == errno.EROFS
    with pytest.raises(Errno) as e:
        fs.root.mkdir(b"new", 0o755, 0, 0)
    assert e.value.errno == errno.EROFS
    st = fs.statfs()
    assert st["bsize"] == fs.block_size and st["blocks"] * st["bsize"] == 8 << 20


def test_fast_and_slow_symlinks(image):
    fs, _ = image
    fast, slow = resolve(fs, "fast"), resolve(fs, "slow")
    assert fast.raw.blocks == 0                         # target inside i_block
    assert slow.raw.blocks > 0
    assert slow.readlink() == SLOW_TARGET.encode()


@pytest.mark.parametrize("feature", ["inline_data", "casefold", "encrypt"])
def test_unsupported_features_refused(tmp_path, feature):
    img = tmp_path / "f.img"
    r = subprocess.run([MKE2FS, "-q", "-F", "-t", "ext4", "-O", feature, str(img), "8M"],
                       capture_output=True)
    if r.returncode:
        pytest.skip(f"mke2fs cannot make {feature}")
    with pytest.raises(Ext2FormatError) as e:
        open_fs(img)
    assert feature in str(e.value)


def test_bad_images(tmp_path):
    junk = tmp_path / "junk.img"
    junk.write_bytes(os.urandom(1 << 16))
    with pytest.raises(Ext2FormatError, match="magic"):
        open_fs(junk)
    tiny = tmp_path / "tiny.img"
    tiny.write_bytes(b"")
    with pytest.raises(Ext2FormatError):
        open_fs(tiny)
    img = tmp_path / "trunc.img"
    subprocess.run([MKE2FS, "-q", "-F", "-t", "ext4", str(img), "8M"], check=True,
                   capture_output=True)
    os.truncate(img, 4 << 20)
    with pytest.raises(Ext2FormatError, match="geometry"):
        open_fs(img)


def test_rdev_encodings():
    old = (0x0103).to_bytes(4, "little") + bytes(56)
    assert ext2_disk.decode_rdev(old) == (1, 3)
    major, minor = 300, 70000
    new = (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)
    assert ext2_disk.decode_rdev(bytes(4) + new.to_bytes(4, "little") + bytes(52)) == \
        (major, minor)


def test_decode_time():
    assert ext2_disk.decode_time(0xFFFFFFFF, None) == -10**9
    assert ext2_disk.decode_time(5, (7 << 2) | 1) == ((1 << 32) + 5) * 10**9 + 7
