"""Booting from an ext4 image on ubd (read-only for now), directly and through a COW file."""
from __future__ import annotations

import hashlib
import os
import subprocess

from tests.integration.console import USERMODE
from usermode.tools.busybox_root import default_root


def _image(tmp_path) -> str:
    img = str(tmp_path / "root.img")
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", default_root(), img, "32M"],
                   check=True, capture_output=True)
    return img


def _boot(args: list[str], script: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([USERMODE, "quiet", *args], input=script, capture_output=True,
                          timeout=120)


def test_boot_busybox_init_from_ext4_image(tmp_path) -> None:
    img = _image(tmp_path)
    before = hashlib.sha256(open(img, "rb").read()).hexdigest()
    p = _boot(["root=/dev/ubda", f"ubda={img}"],
              b"grep ' / ' /proc/mounts; ls /bin/busybox; touch /new || echo ro; poweroff\n")
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    assert "busybox guest ready" in out                    # rcS ran from the image
    assert "/dev/ubda / ext4 ro" in out
    assert "/bin/busybox" in out and "ro" in out.split()
    assert hashlib.sha256(open(img, "rb").read()).hexdigest() == before


def test_boot_through_a_cow_file_leaves_the_backing_image_alone(tmp_path) -> None:
    img = _image(tmp_path)
    before = hashlib.sha256(open(img, "rb").read()).hexdigest()
    cow = str(tmp_path / "root.cow")
    p = _boot(["root=/dev/ubda", f"ubda={cow},{img}", "init=/bin/sh"],
              b"echo from-cow-root; poweroff -f\n")
    assert b"from-cow-root" in p.stdout, p.stdout + p.stderr
    assert os.path.exists(cow)
    assert hashlib.sha256(open(img, "rb").read()).hexdigest() == before


def test_root_on_missing_ubd_is_one_line(tmp_path) -> None:
    p = subprocess.run([USERMODE, "root=/dev/ubda", "quiet"], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "ubda" in p.stderr
