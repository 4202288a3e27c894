"""Partitions on ubd: an image with an MS-DOS partition table gives /dev/ubdb1.. in the
guest (major 98, minor 16 + n), listed in /proc/partitions; an ext2 filesystem in a
partition mounts read-write and stays clean for e2fsck; a table that runs past the disk
is truncated, as Linux does."""
from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from tests.integration.console import USERMODE
from usermode.tools.busybox_root import default_root

MiB = 1 << 20
SECTOR = 512


def mbr(entries: list[tuple[int, int, int]]) -> bytes:
    """A boot sector with (type, first sector, sectors) primary entries."""
    b = bytearray(SECTOR)
    for i, (ptype, first, count) in enumerate(entries):
        struct.pack_into("<B3sB3sII", b, 446 + 16 * i, 0, b"\0\0\0", ptype, b"\0\0\0",
                         first, count)
    b[510:512] = b"\x55\xaa"
    return bytes(b)


def make_disk(path: Path, tmp: Path) -> None:
    """32 MiB: p1 = 16 MiB ext2 at 1 MiB holding hello.txt, p2 = 8 MiB raw."""
    src = tmp / "p1-src"
    src.mkdir()
    (src / "hello.txt").write_text("from partition one\n")
    part = tmp / "p1.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-d", str(src), str(part), "16M"],
                   check=True)
    with open(path, "wb") as f:
        f.truncate(32 * MiB)
        f.write(mbr([(0x83, 2048, 32768), (0x83, 34816, 16384)]))
        f.seek(2048 * SECTOR)
        f.write(part.read_bytes())


def run(spec: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run([USERMODE, "run", "--root", default_root(), "--ubd", spec, "--",
                           "/bin/sh", "-c", script], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_partitions_appear_and_mount(tmp_path):
    disk = tmp_path / "disk.img"
    make_disk(disk, tmp_path)
    p = run(f"ubdb={disk}",
            "cat /proc/partitions; ls -l /dev/ubdb1 /dev/ubdb2 | sed 's/  */ /g'; "
            "mkdir -p /mnt/p1 && mount -t ext2 /dev/ubdb1 /mnt/p1 && cat /mnt/p1/hello.txt && "
            "echo written > /mnt/p1/new.txt && umount /mnt/p1 && echo unmounted; "
            "blockdev --getsize64 /dev/ubdb2")
    out = p.stdout
    assert "Traceback" not in p.stderr + out
    lines = [ln.split() for ln in out.splitlines()]
    assert ["98", "16", "32768", "ubdb"] in lines
    assert ["98", "17", "16384", "ubdb1"] in lines
    assert ["98", "18", "8192", "ubdb2"] in lines
    assert "brw-rw---- 1 root root 98, 17" in out
    assert "from partition one" in out and "unmounted" in out
    assert str(8 * MiB) in out
    # the partition's filesystem, cut out of the disk, is clean and has the new file
    part = tmp_path / "p1-after.img"
    with open(disk, "rb") as f:
        f.seek(2048 * SECTOR)
        part.write_bytes(f.read(16 * MiB))
    assert subprocess.run(["e2fsck", "-fn", str(part)], capture_output=True).returncode == 0
    cat = subprocess.run(["debugfs", "-R", "cat /new.txt", str(part)], capture_output=True,
                         text=True)
    assert cat.stdout == "written\n"


def test_partition_past_the_end_is_truncated(tmp_path):
    disk = tmp_path / "short.img"
    with open(disk, "wb") as f:
        f.truncate(4 * MiB)
        f.write(mbr([(0x83, 2048, 100000)]))
    p = run(f"ubdb={disk}", "grep ubdb1 /proc/partitions")
    assert p.stdout.split() == ["98", "17", "3072", "ubdb1"]


def test_no_table_no_partitions(tmp_path):
    disk = tmp_path / "plain.img"
    with open(disk, "wb") as f:
        f.truncate(4 * MiB)
    p = run(f"ubdb={disk}", "grep -c ubdb /proc/partitions; ls /dev/ubdb1 2>&1")
    assert p.stdout.splitlines()[0] == "1"
    assert "No such file" in p.stdout
