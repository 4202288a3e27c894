"""Garbage syscalls never crash the kernel or produce a Python traceback (issue 2)."""
from __future__ import annotations

import os
import subprocess

from tests.integration.console import USERMODE
from usermode.tools.busybox_root import build

HERE = os.path.dirname(os.path.abspath(__file__))


def test_random_syscalls_keep_the_kernel_alive(tmp_path) -> None:
    root = build(str(tmp_path / "root"))       # disposable: the fuzzer may scribble on it
    exe = os.path.join(root, "sysfuzz")
    subprocess.run(["gcc", "-O1", "-static", "-o", exe, os.path.join(HERE, "sysfuzz.c")],
                   check=True)
    p = subprocess.run([USERMODE, "run", "-v", "--root", root, "--", "/sysfuzz", "2", "7"],
                       capture_output=True, timeout=900, stdin=subprocess.DEVNULL)
    err = p.stderr.decode(errors="replace")
    assert "Traceback" not in err and "kernel bug" not in err, err[-3000:]
    assert b"fuzz done" in p.stdout, (p.stdout[-500:], err[-2000:])
    assert p.returncode == 0
