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


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for tid in Path(f"/proc/{p}/task").iterdir():
            try:
                kids = (Path(f"/proc/{p}/task/{tid.name}/children").read_text()).split()
            except OSError:
                continue
            for k in map(int, kids):
                out.append(k)
                todo.append(k)
    return out


def test_instance_runs_on_one_host_cpu() -> None:
    """Every host process of a default (ncpus=1) instance shares one host CPU: a trap is
    then a context switch rather than a cross-CPU wakeup (host/cpus.py)."""
    import os
    import time
    p = subprocess.Popen([USERMODE, "run", "--", "/bin/sh", "-c", "sleep 5 & sleep 5; wait"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        procs: list[int] = []
        while time.monotonic() < deadline and len(procs) < 3:
            time.sleep(0.2)
            procs = _descendants(p.pid)
        assert len(procs) >= 3, procs             # sh and its two sleeps
        masks = {frozenset(os.sched_getaffinity(x)) for x in [p.pid, *procs]}
        assert len(masks) == 1 and len(next(iter(masks))) == 1, masks
    finally:
        p.kill()
        p.wait()


def test_ncpus_and_taskset() -> None:
    """ncpus=2: two guest CPUs; a task confined to guest CPU 1 says so everywhere, and a
    mask naming no guest CPU is EINVAL."""
    script = ("nproc; taskset -p 2 $$ >/dev/null; taskset -p $$; "
              "grep Cpus_allowed_list /proc/$$/status; sh -c nproc; taskset -p 4 $$")
    p = subprocess.run([USERMODE, "run", "--ncpus", "2", "--", "/bin/sh", "-c", script],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    lines = p.stdout.splitlines()
    assert lines[:4] == ["2", "pid 1's current affinity mask: 2", "Cpus_allowed_list:\t1", "1"], p
    assert "Invalid argument" in p.stdout + p.stderr and p.returncode == 1


def test_bad_ncpus_switch() -> None:
    p = subprocess.run([USERMODE, "ncpus=0"], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "ncpus=0" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([USERMODE, "run", "--ncpus", "65", "--", "/bin/true"], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1 and "ncpus=65" in p.stderr and "Traceback" not in p.stderr
