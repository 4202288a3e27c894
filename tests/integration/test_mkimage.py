"""usermode mkimage: images from a directory that the host's e2fsck finds clean and the
guest mounts read-write with the same contents; bad input is a one-line error."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.console import USERMODE, Console
from usermode.tools.busybox_root import default_root
from usermode.tools.mkimage import MkimageError, build_image

E2FSCK = shutil.which("e2fsck", path="/usr/sbin:/sbin:/usr/bin:/bin")


@pytest.fixture(scope="module")
def root() -> str:
    return default_root()


def mkimage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([USERMODE, "mkimage", *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def fsck_ok(img: Path) -> None:
    p = subprocess.run([E2FSCK, "-fn", str(img)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_busybox_root_image_is_clean_and_mounts_rw_in_the_guest(tmp_path, root):
    img = tmp_path / "root.img"
    p = mkimage(root, str(img))
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""                       # no progress bar when stderr is no tty
    fsck_ok(img)
    want = hashlib.md5(Path(root, "bin", "busybox").read_bytes()).hexdigest()
    g = subprocess.run([USERMODE, "run", "--root", root, "--ubd", f"ubdb={img}", "--",
                        "/bin/sh", "-c", "mount -t ext2 /dev/ubdb /mnt && "
                        "md5sum /mnt/bin/busybox && echo new > /mnt/new && umount /mnt"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert g.returncode == 0, g.stdout + g.stderr
    assert g.stdout.split()[0] == want
    fsck_ok(img)


@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_library_call_with_size(tmp_path, fstype):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(os.urandom(300_000))
    os.symlink("d/f", src / "link")
    img = tmp_path / "x.img"
    assert build_image(str(src), str(img), size=32 << 20, fstype=fstype,
                       progress=False) == 32 << 20
    assert img.stat().st_size == 32 << 20
    fsck_ok(img)


def test_progress_bar_on_a_terminal(tmp_path, root):
    img = tmp_path / "tty.img"
    c = Console(["mkimage", root, str(img)])
    out = c.read_until(b"MiB from", timeout=60)
    c.proc.wait(timeout=30)
    assert b"100%" in out and b"\r" in out
    assert c.proc.returncode == 0
    fsck_ok(img)


def test_bad_input_is_one_line(tmp_path, root):
    img = tmp_path / "i.img"
    img.write_bytes(b"keep")
    cases = [
        ([str(tmp_path / "missing"), str(tmp_path / "o.img")], "no such directory"),
        ([root, str(img)], "already exists"),
        (["--size", "1M", "--force", root, str(tmp_path / "s.img")], "too small"),
        (["--size", "lots", root, str(tmp_path / "s.img")], "bad size"),
        (["--type", "xfs", root, str(tmp_path / "s.img")], "unsupported"),
    ]
    for args, msg in cases:
        p = mkimage(*args)
        assert p.returncode == 1, args
        assert msg in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "Traceback" not in p.stderr
    assert img.read_bytes() == b"keep"
    assert not (tmp_path / "s.img").exists()


def test_tree_bigger_than_the_image_fails_cleanly(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}").write_bytes(os.urandom(1 << 20))
    img = tmp_path / "small.img"
    with pytest.raises(MkimageError) as ei:
        build_image(str(src), str(img), size=6 << 20, progress=False)
    assert "\n" not in str(ei.value)
    assert not img.exists()
