"""Machine-level behaviour: reboot restarts, hostfs mounts are confined to hostfs=DIR."""
from __future__ import annotations

import os
import subprocess

from tests.integration.console import Console, USERMODE

PROMPT = b"usermode:/$ "


def test_reboot_boots_again_and_poweroff_ends() -> None:
    c = Console(["quiet"])
    try:
        c.read_until(PROMPT, 60)
        c.send(b"reboot\r")
        c.read_until(b"Requesting system reboot", 30)
        c.read_until(b"busybox guest ready", 60)
        c.read_until(PROMPT, 30)
        assert c.run("echo second boot", PROMPT).strip() == b"second boot"
        c.send(b"poweroff\r")
        c.read_until(b"Requesting system poweroff", 30)
        assert c.wait(30) == 0
    finally:
        c.kill()


def test_guest_hostfs_mount_is_confined(tmp_path) -> None:
    export = tmp_path / "export"
    (export / "sub").mkdir(parents=True)
    (export / "sub" / "file").write_text("exported\n")
    (tmp_path / "secret").write_text("host only\n")
    script = ("mkdir -p /mnt/h; mount -t hostfs none /mnt/h -o sub && cat /mnt/h/file; "
              "ls /mnt/h/..; cat /mnt/h/../../secret 2>&1 | head -1; "
              "mount -t hostfs none /mnt/h -o ../ 2>&1; echo rc=$?; poweroff -f\n")
    p = subprocess.run([USERMODE, f"hostfs={export}", "quiet"], input=script.encode(),
                       capture_output=True, timeout=120)
    out = p.stdout.decode()
    assert "exported" in out
    assert "host only" not in out
    assert "rc=1" in out
    # without hostfs= the guest may not mount host directories at all
    p = subprocess.run([USERMODE, "quiet"], capture_output=True, timeout=120,
                       input=b"mkdir -p /mnt/h; mount -t hostfs none /mnt/h -o /; echo rc=$?; poweroff -f\n")
    assert "rc=1" in p.stdout.decode()
