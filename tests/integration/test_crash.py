"""Crash safety: kill -9 the whole usermode instance in the middle of a write-heavy
workload on a COW-backed ext2 image, five times.  Each time the COW file stays valid
(our cow.py, our uml_moo and Debian's uml_moo read it and merge it identically), the
backing file is byte-identical to before, e2fsck -fy repairs the merged image, and every
file whose fsync completed before the kill ("synced N" on the console) is intact."""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.console import USERMODE
from usermode.drivers import cow
from usermode.tools.busybox_root import default_root

SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"
MKE2FS = shutil.which("mke2fs", path=SBIN)
E2FSCK = shutil.which("e2fsck", path=SBIN)
DEBUGFS = shutil.which("debugfs", path=SBIN)
REPO = Path(__file__).resolve().parents[2]
OUR_MOO = REPO / ".venv" / "bin" / "uml_moo"
REAL_MOO = shutil.which("uml_moo", path="/usr/bin:/usr/sbin:/bin")

WORKLOAD = """mount -t ext2 /dev/ubdb /mnt || exit 1
i=0
while true; do
  seq $i $((i + 3000)) > /mnt/s$i && sync /mnt/s$i && echo synced $i
  mkdir -p /mnt/junk$i
  j=0
  while [ $j -lt 25 ]; do seq 1 $((j * 40)) > /mnt/junk$i/f$j; j=$((j + 1)); done
  dd if=/dev/zero of=/mnt/big bs=4096 seek=$((i * 7 % 2000)) count=16 conv=notrunc 2>/dev/null
  [ $((i % 3)) = 2 ] && rm -r /mnt/junk$((i - 2))
  i=$((i + 1))
done
"""


def expected(n: int) -> bytes:
    return "".join(f"{x}\n" for x in range(n, n + 3001)).encode()


def md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def run_until_killed(root: str, cow_path: Path, backing: Path, kill_after: int,
                     rng: random.Random) -> list[int]:
    """Boot, let the workload fsync kill_after files, then SIGKILL the process group a
    moment later, in the middle of whatever it does.  Returns the synced numbers."""
    p = subprocess.Popen([USERMODE, "run", "--root", root, "--ubd",
                          f"ubdb={cow_path},{backing}", "--", "/bin/sh", "-c", WORKLOAD],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    synced: list[int] = []
    deadline = time.monotonic() + 120
    try:
        assert p.stdout is not None
        while len(synced) < kill_after and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            if line.startswith(b"synced "):
                synced.append(int(line.split()[1]))
        time.sleep(rng.uniform(0.0, 0.4))
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        p.stdout.close()
    wait_group_gone(p.pid)              # no guest process outlived the kill
    assert len(synced) == kill_after, "workload stopped early"
    return synced


def wait_group_gone(pgid: int) -> None:
    for _ in range(50):
        out = subprocess.run(["ps", "-o", "pid=", "-g", str(pgid)], capture_output=True,
                             text=True).stdout.split()
        if not out:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes left in group {pgid}: {out}")


@pytest.mark.skipif(REAL_MOO is None, reason="uml-utilities not installed")
def test_kill_9_during_writes_five_times(tmp_path):
    root = default_root()
    backing = tmp_path / "backing.img"
    subprocess.run([MKE2FS, "-q", "-t", "ext2", str(backing), "32M"], check=True,
                   capture_output=True)
    before = md5(backing)
    rng = random.Random(4)
    for round_ in range(5):
        cow_path = tmp_path / f"run{round_}.cow"
        synced = run_until_killed(root, cow_path, backing, 2 + 2 * round_, rng)
        assert md5(backing) == before
        # the COW header and bitmap are valid for us and for Debian's tools
        h = cow.open_cow(str(cow_path))
        assert h.backing_file == str(backing) and h.size == backing.stat().st_size
        ours, theirs = tmp_path / "ours.img", tmp_path / "theirs.img"
        for tool, out in ((str(OUR_MOO), ours), (REAL_MOO, theirs)):
            out.unlink(missing_ok=True)
            r = subprocess.run([tool, str(cow_path), str(out)], capture_output=True,
                               timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
        assert md5(ours) == md5(theirs)
        fix = subprocess.run([E2FSCK, "-fy", str(ours)], capture_output=True, text=True)
        assert fix.returncode in (0, 1), fix.stdout + fix.stderr
        print(f"round {round_}: {len(synced)} synced, e2fsck -fy status {fix.returncode}")
        check = subprocess.run([E2FSCK, "-fn", str(ours)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
        for n in synced:
            got = subprocess.run([DEBUGFS, "-R", f"cat /s{n}", str(ours)],
                                 capture_output=True).stdout
            assert got == expected(n), f"round {round_}: /s{n} damaged"
