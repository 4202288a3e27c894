"""Bad input from Debian guests (issue 7, step 4): python3 allocating past mem= gets ENOMEM
(MemoryError), and a fork bomb of an unprivileged user under RLIMIT_NPROC gets EAGAIN
while the kernel stays responsive and the machine halts cleanly."""
from __future__ import annotations

import time

from tests.integration.debian import debian_root, guest  # noqa: F401 (fixture)

ALLOCATE = r"""
import errno, mmap
try:
    bytearray(200 << 20)
    print("200M: allocated")
except MemoryError:
    print("200M: MemoryError")
try:
    mmap.mmap(-1, 200 << 20)
    print("mmap 200M: ok")
except OSError as e:
    print("mmap 200M:", errno.errorcode[e.errno])
chunks = []
try:
    while True:
        chunks.append(bytearray(1 << 20))
except MemoryError:
    print("chunks before MemoryError:", "some" if 10 < len(chunks) < 64 else len(chunks))
del chunks
print("after release:", len(bytearray(16 << 20)) >> 20, "MiB")
"""

FORKS = r"""
import errno, os, resource, signal
resource.setrlimit(resource.RLIMIT_NPROC, (20, 20))
kids = []
try:
    while True:
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        kids.append(pid)
except OSError as e:
    print("fork:", errno.errorcode[e.errno], "after", "some" if 10 < len(kids) < 20 else len(kids))
for pid in kids:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
print("reaped all")
"""

# Linux counts every thread, and a zombie until it is reaped, against RLIMIT_NPROC
COUNTED = r"""
import errno, os, resource, threading, time
resource.setrlimit(resource.RLIMIT_NPROC, (2, 2))
pid = os.fork()
if pid == 0:
    os._exit(0)
time.sleep(0.5)                                 # a zombie now, not reaped
try:
    os.fork() or os._exit(0)
    print("fork beside a zombie: ok")
except OSError as e:
    print("fork beside a zombie:", errno.errorcode[e.errno])
os.waitpid(pid, 0)
ev = threading.Event()
t = threading.Thread(target=ev.wait); t.start()
try:
    threading.Thread(target=ev.wait).start()
    print("third task: ok")
except RuntimeError as e:
    print("third task:", e)
ev.set(); t.join()
"""


def test_python_past_mem_gets_enomem(debian_root) -> None:
    (debian_root / "tmp/allocate.py").write_text(ALLOCATE)
    g = guest(debian_root, "python3 /tmp/allocate.py", mem="64M")
    assert g.status == 0, g.err
    assert g.out.splitlines() == ["200M: MemoryError", "mmap 200M: ENOMEM",
                                  "chunks before MemoryError: some", "after release: 16 MiB"]


def test_rlimit_nproc_counts_threads_and_zombies(debian_root) -> None:
    (debian_root / "tmp/counted.py").write_text(COUNTED)
    g = guest(debian_root, "su -s /bin/sh nobody -c 'exec python3 /tmp/counted.py'")
    assert g.status == 0, g.err
    assert g.out.splitlines() == ["fork beside a zombie: EAGAIN", "third task: can't start new thread"]


def test_fork_bomb_under_rlimit_nproc(debian_root) -> None:
    (debian_root / "tmp/forks.py").write_text(FORKS)
    script = (
        "su -s /bin/sh nobody -c 'python3 /tmp/forks.py'; "
        # a real bomb, bounded by `ulimit -u`: bash retries forks that fail with EAGAIN
        "su -s /bin/bash nobody -c 'ulimit -u 25; b() { b | b & }; b' >/tmp/bomb.log 2>&1 & "
        "sleep 6; echo nobody has $(ps -u nobody --no-headers | wc -l); "
        "kill -9 -1; sleep 1; wait; echo left $(ps -e --no-headers | wc -l); "
        "grep -m1 -o 'Resource temporarily unavailable' /tmp/bomb.log; echo alive")
    t0 = time.monotonic()
    g = guest(debian_root, script, mem="256M", timeout=120)
    assert g.status is not None and time.monotonic() - t0 < 60, g.err
    lines = g.out.splitlines()
    assert lines[:2] == ["fork: EAGAIN after some", "reaped all"], g.out
    assert lines[2] == "nobody has 25", g.out
    assert lines[4:] == ["Resource temporarily unavailable", "alive"], g.out
    assert g.status == 0
