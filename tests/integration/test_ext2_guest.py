"""ext4/ext2 images on ubd, mounted read-only by busybox in the guest: the listing and
checksums inside match the source tree on the host."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.console import USERMODE
from usermode.tools.busybox_root import default_root

MKE2FS = shutil.which("mke2fs", path="/usr/sbin:/sbin:/usr/bin:/bin")
pytestmark = pytest.mark.skipif(MKE2FS is None, reason="mke2fs not installed")


@pytest.fixture(scope="module")
def root() -> str:
    return default_root()


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    s = tmp_path_factory.mktemp("ext2guest") / "src"
    (s / "a" / "b" / "c").mkdir(parents=True)
    (s / "a" / "b" / "c" / "deep.txt").write_bytes(b"deep\n")
    (s / "hello").write_bytes(b"hello\n")
    os.link(s / "hello", s / "hardlink")
    os.symlink("hello", s / "fast")
    os.symlink("a/b/c/" + "y" * 80, s / "slow")
    (s / "big").write_bytes(os.urandom(1 << 20))
    with open(s / "sparse", "wb") as f:
        f.seek(2 << 20)
        f.write(b"tail")
    os.mkfifo(s / "fifo")
    many = s / "many"
    many.mkdir()
    for i in range(200):
        (many / f"entry-{i:03d}").write_bytes(b"")
    return s


def run(root: str, img: Path, script: str) -> subprocess.CompletedProcess:
    return subprocess.run([USERMODE, "run", "--root", root, "--ubd", f"ubdb={img}", "--",
                           "/bin/sh", "-c", script], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def native_listing(src: Path) -> list[str]:
    paths = ["/mnt", "/mnt/lost+found"]
    for dirpath, dirnames, filenames in os.walk(src):
        for name in dirnames + filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            paths.append("/mnt/" + rel)
    return sorted(paths, key=os.fsencode)


@pytest.mark.parametrize("fstype", ["ext4", "ext2"])
def test_find_and_md5sum_match_host(tmp_path, root, src, fstype):
    img = tmp_path / "fs.img"
    subprocess.run([MKE2FS, "-q", "-t", fstype, "-d", str(src), str(img), "8M"], check=True,
                   capture_output=True)
    p = run(root, img, f"mount -t {fstype} -o ro /dev/ubdb /mnt && find /mnt | sort && "
                       "md5sum /mnt/big")
    assert p.returncode == 0, p.stdout + p.stderr
    md5 = hashlib.md5((src / "big").read_bytes()).hexdigest()
    assert p.stdout.splitlines() == native_listing(src) + [f"{md5}  /mnt/big"]


def test_contents_links_and_read_only(tmp_path, root, src):
    img = tmp_path / "fs.img"
    subprocess.run([MKE2FS, "-q", "-t", "ext4", "-d", str(src), str(img), "8M"], check=True,
                   capture_output=True)
    before = hashlib.md5(img.read_bytes()).hexdigest()
    script = ("mount -t ext4 -o ro /dev/ubdb /mnt || exit 1; "
              "readlink /mnt/fast; readlink /mnt/slow; cat /mnt/hardlink; "
              "md5sum < /mnt/sparse; stat -c '%i %h' /mnt/hello /mnt/hardlink; "
              "grep ubdb /proc/mounts; "
              "(echo x > /mnt/new) 2>/dev/null || echo write-refused; "
              "umount /mnt; mount -t ext4 -o rw /dev/ubdb /mnt 2>&1; "
              "dmesg | grep -c 'mount read-write'")
    p = run(root, img, script)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "hello"
    assert lines[1] == "a/b/c/" + "y" * 80
    assert lines[2] == "hello"
    assert lines[3].split()[0] == hashlib.md5((src / "sparse").read_bytes()).hexdigest()
    ino1, n1 = lines[4].split()
    ino2, n2 = lines[5].split()
    assert ino1 == ino2 and n1 == n2 == "2"
    assert lines[6].startswith("/dev/ubdb /mnt ext4 ro")
    assert lines[7] == "write-refused"
    assert int(lines[-1]) >= 1          # the read-write attempt was logged
    assert hashlib.md5(img.read_bytes()).hexdigest() == before


def test_garbage_image_refused(tmp_path, root):
    img = tmp_path / "junk.img"
    img.write_bytes(os.urandom(1 << 20))
    p = run(root, img, "mount -t ext4 -o ro /dev/ubdb /mnt; echo rc=$?")
    assert "rc=0" not in p.stdout
    assert "Traceback" not in p.stdout + p.stderr
