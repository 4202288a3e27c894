"""Every way a guest counts CPUs agrees with the machine's ncpus: nproc (sched_getaffinity),
getconf (sysconf: /sys/devices/system/cpu/online), /proc/cpuinfo and python's os.cpu_count.
The host has more CPUs than the guest's default of one, so a native sched_getaffinity
showed through (make -j$(nproc) and multiprocessing then disagreed)."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
USERMODE = REPO / ".venv" / "bin" / "usermode"

SCRIPT = ("nproc; getconf _NPROCESSORS_ONLN; grep -c ^processor /proc/cpuinfo; "
          "python3 -c 'import os; print(os.cpu_count(), len(os.sched_getaffinity(0)))'")


def test_cpu_counts_agree() -> None:
    p = subprocess.run([USERMODE, "run", "--", "/bin/sh", "-c", SCRIPT], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1", "1", "1", "1", "1"]
