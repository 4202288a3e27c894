"""ext2 read-write, differentially: ext2_rw_suite.sh run by the same busybox natively in a
host directory and in the guest on an ext2 image mounted rw on /dev/ubdb must leave the
same tree (an `ls -l` of every path, times dropped, directory sizes dropped) and the same
md5sums; then the host's e2fsck -fn finds the image clean and debugfs reads the same
files back."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.console import USERMODE
from usermode.tools.busybox_root import default_root

SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"
MKE2FS = shutil.which("mke2fs", path=SBIN)
E2FSCK = shutil.which("e2fsck", path=SBIN)
DEBUGFS = shutil.which("debugfs", path=SBIN)
SUITE = Path(__file__).with_name("ext2_rw_suite.sh")
# every path but lost+found, `ls -ldn` of each, then md5sums of the regular files
REPORT = ("cd {d} && find . -path ./lost+found -prune -o -print | sort > {scratch} && "
          "xargs ls -ldn < {scratch} && "
          "find . -path ./lost+found -prune -o -type f -print | sort | xargs md5sum")


@pytest.fixture(scope="module")
def root() -> str:
    return default_root()


def normalise(out: str) -> list[str]:
    """ls -l lines without the times (and sizes of directories)."""
    lines = []
    for ln in out.splitlines():
        f = ln.split()
        if len(f) >= 9 and f[0][0] in "-dlpcbs" and f[0][1] in "r-":
            keep = f[:4] + ([] if f[0][0] == "d" else [f[4]]) + f[8:]
            if f[8:] == ["."]:
                keep[1] = "-"           # lost+found is one more subdirectory on ext2
            lines.append(" ".join(keep))
        else:
            lines.append(ln)
    return lines


def native(root: str, tmp_path: Path) -> list[str]:
    d = tmp_path / "native"
    d.mkdir()
    bb = os.path.join(root, "bin", "busybox")
    p = subprocess.run([bb, "sh", str(SUITE), str(d)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and p.stdout.endswith("done\n"), p.stdout + p.stderr
    p = subprocess.run([bb, "sh", "-c", REPORT.format(d=d, scratch=tmp_path / "paths")],
                       capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return normalise(p.stdout)


def guest(root: str, img: Path, fstype: str) -> tuple[list[str], str]:
    # scratch files go to a guest tmpfs, not into the shared busybox tree
    script = (f"mount -t {fstype} /dev/ubdb /mnt || exit 1; "
              f"sh /tmp/suite.sh /mnt || exit 2; " +
              REPORT.format(d="/mnt", scratch="/tmp/paths") +
              "; cd /; umount /mnt || exit 3; dmesg | grep -v 'command line' | grep 'EXT4-fs (ubdb)'")
    p = subprocess.run([USERMODE, "run", "--root", root, "--ubd", f"ubdb={img}", "--",
                        "/bin/sh", "-c", "mount -t tmpfs none /tmp && "
                        f"cat > /tmp/suite.sh <<'EOS'\n{SUITE.read_text()}EOS\n" + script],
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout
    assert out.startswith("done\n"), out[:2000]
    body, _, log = out[len("done\n"):].partition("EXT4-fs (ubdb)")
    return normalise(body), "EXT4-fs (ubdb)" + log


def debugfs(img: Path, cmd: str) -> str:
    return subprocess.run([DEBUGFS, "-R", cmd, str(img)], capture_output=True,
                          text=True).stdout


@pytest.mark.parametrize("fstype,opts", [("ext2", ["-b", "1024"]), ("ext2", ["-b", "4096"]),
                                         ("ext3", [])])
def test_workload_matches_native_and_fsck_is_clean(tmp_path, root, fstype, opts):
    img = tmp_path / "fs.img"
    subprocess.run([MKE2FS, "-q", "-t", fstype, *opts, str(img), "64M"], check=True,
                   capture_output=True)
    want = native(root, tmp_path)
    got, log = guest(root, img, fstype)
    assert got == want
    assert "r/w" in log
    p = subprocess.run([E2FSCK, "-fn", str(img)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    # debugfs, an independent reader, sees the same names and contents
    names = set(debugfs(img, "ls -p /").replace("/", " ").split())
    for name in ("big", "big2", "sparse", "c", "soft", "slow", "fifo", "deep", "x", "r2"):
        assert name in names
    nat = tmp_path / "native"
    for rel in ("big", "big2", "sparse", "deep/a/b/keep/a-longer-name-to-fill-blocks-1", "c"):
        data = subprocess.run([DEBUGFS, "-R", f"cat /{rel}", str(img)], capture_output=True
                              ).stdout
        assert hashlib.md5(data).digest() == hashlib.md5((nat / rel).read_bytes()).digest(), rel
    assert "Fast link dest" not in debugfs(img, "stat /slow")      # a slow symlink


def test_shutdown_without_umount_writes_back_and_marks_clean(tmp_path, root):
    img = tmp_path / "fs.img"
    subprocess.run([MKE2FS, "-q", "-t", "ext2", str(img), "16M"], check=True,
                   capture_output=True)
    script = ("mount -t ext2 /dev/ubdb /mnt && echo kept > /mnt/f && "
              "mount -o remount,ro /mnt && (echo no > /mnt/g) 2>/dev/null || echo ro-ok; "
              "mount -o remount,rw /mnt && echo again > /mnt/g && sync && echo synced")
    p = subprocess.run([USERMODE, "run", "--root", root, "--ubd", f"ubdb={img}", "--",
                        "/bin/sh", "-c", script], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert p.stdout.split() == ["ro-ok", "synced"], p.stdout + p.stderr
    fsck = subprocess.run([E2FSCK, "-fn", str(img)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout
    state = debugfs(img, "stats").split("Filesystem state:")[1].split("\n")[0]
    assert state.strip() == "clean"
    assert debugfs(img, "cat /f") == "kept\n" and debugfs(img, "cat /g") == "again\n"
