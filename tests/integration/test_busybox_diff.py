"""busybox applets give the same output in usermode as natively on the same tree (issue 3)."""
from __future__ import annotations

import os
import shutil
import subprocess

from tests.integration.console import ROOT, USERMODE
from usermode.tools.busybox_root import build, find_busybox

SUITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "busybox_suite.sh")


def test_busybox_suite_matches_native(tmp_path) -> None:
    busybox = find_busybox()
    assert busybox, "busybox-static must be installed (scripts/setup.sh installs it)"
    native_dir = tmp_path / "native"
    native_dir.mkdir()
    native = subprocess.run([busybox, "sh", SUITE, str(native_dir)], capture_output=True,
                            env={"BB": busybox, "PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                            timeout=120)
    assert native.returncode == 0, native.stderr
    root = build(str(tmp_path / "root"))
    shutil.copy(SUITE, os.path.join(root, "suite.sh"))
    os.mkdir(os.path.join(root, "work"))
    guest = subprocess.run([USERMODE, "run", "--root", root, "--env", "BB=/bin/busybox",
                            "--env", "LC_ALL=C", "--", "/bin/sh", "/suite.sh", "/work"],
                           capture_output=True, timeout=300, stdin=subprocess.DEVNULL, cwd=ROOT)
    assert guest.returncode == 0, guest.stderr.decode(errors="replace")
    assert guest.stdout.decode() == native.stdout.decode()
    assert b"Traceback" not in guest.stderr
