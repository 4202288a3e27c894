"""exec loads a program with one batch of calls run by the stub (elf.load), and ld.so's
file mmaps run as one batch each; when the host will not lend the kernel's page-cache
memfds (pidfd_getfd refused, e.g. under Yama), exec's mappings are undone and a second
batch copies the program, and private file mappings become copies. Both paths must run
static and dynamic programs exactly as Linux does."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"

SCRIPT = r"""
import sys
from usermode.host import platform
from usermode.machine import Machine
if sys.argv[1] == "refused":
    init = platform.Injector.__init__
    def no_lending(self, *args):
        init(self, *args)
        self.kernel_pid = 1 << 30          # pidfd_open: ESRCH, as a refusing host answers
    platform.Injector.__init__ = no_lending
log = []
m = Machine(root="/", init=["/bin/sh", "-c", sys.argv[2]], log=log.append)
status = m.run()
sys.stderr.write("\n".join(log) + "\n")
sys.exit(status)
"""
# static busybox, dynamic coreutils and python3 (ld.so + libc + extensions), fork+exec
COMMAND = ("busybox echo static; ls -d /usr/bin; python3 -c 'import json; print(json.dumps([1]))'; "
           "for i in 1 2 3; do /bin/true; done; echo done")


def _run(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-c", SCRIPT, mode, COMMAND], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_lent_and_copied_loads_run_the_same() -> None:
    native = subprocess.run(["/bin/sh", "-c", COMMAND], capture_output=True, text=True)
    lent, copied = _run("lent"), _run("refused")
    assert lent.returncode == 0, lent.stderr
    assert copied.returncode == 0, copied.stderr
    assert lent.stdout == native.stdout == copied.stdout
    assert "refuses pidfd_getfd" in copied.stderr and "refuses" not in lent.stderr
    assert "Traceback" not in lent.stderr + copied.stderr
