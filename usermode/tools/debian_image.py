"""Build a Debian bookworm guest tree with debootstrap (issue 7).

    usermode-debian-image [--dest DIR] [--mirror URL] [--force]

The tree is a plain host directory booted through hostfs (root=/dev/root
rootfstype=hostfs rootflags=DIR). It is cached under $XDG_CACHE_HOME/usermode/
debian-bookworm and reused when its stamp file lists the same packages.
debootstrap's output is summarised into one progress line.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

from usermode.tools.busybox_root import cache_dir

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
VERSION = "2"       # bump when the image layout changes
PACKAGES = ("python3", "python3-venv", "gcc", "libc6-dev", "make", "procps", "sysvinit-core",
            "login", "passwd", "less", "vim-tiny", "bsdutils", "util-linux", "file")
STAMP = "usermode-debian-stamp"
ROOT_PASSWORD = "root"
# sysvinit on the usermode console: a getty on /dev/console, no rc scripts
# beyond mounting the kernel filesystems (they would try to manage hardware);
# runlevels 0 and 6 end in reboot(2), so `poweroff` and `reboot` halt the machine.
INITTAB = """\
# usermode inittab: one getty on the console
id:2:initdefault:
si::sysinit:/etc/init.d/usermode-rcS
co:2345:respawn:/sbin/agetty --noclear -L console 115200 linux
l0:0:wait:/sbin/halt -d -f -p
l6:6:wait:/sbin/reboot -d -f
"""
RCS = """\
#!/bin/sh
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t tmpfs tmpfs /tmp 2>/dev/null
mount -t tmpfs tmpfs /run 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
hostname usermode
"""


def stamp_text() -> str:
    return f"version {VERSION}\nsuite {SUITE}\npackages {' '.join(PACKAGES)}\n"


def default_dest() -> str:
    return os.path.join(cache_dir(), f"debian-{SUITE}")


def is_complete(dest: str) -> bool:
    try:
        with open(os.path.join(dest, STAMP)) as f:
            return f.read() == stamp_text()
    except OSError:
        return False


class Progress:
    """One status line summarising debootstrap's 'I: ...' messages."""

    STEP = re.compile(r"^I: (Retrieving|Validating|Extracting|Unpacking|Configuring|Installing)"
                      r"\s*(\S*)")

    def __init__(self, out=sys.stderr) -> None:
        self.out, self.start, self.counts = out, time.monotonic(), {}
        self.tty = out.isatty()

    def feed(self, line: str) -> None:
        m = self.STEP.match(line)
        if not m:
            return
        verb = m.group(1)
        self.counts[verb] = self.counts.get(verb, 0) + 1
        self.show(f"{verb.lower()} {m.group(2)}")

    def show(self, what: str) -> None:
        done = " ".join(f"{k[:4].lower()}:{v}" for k, v in self.counts.items())
        text = f"debian-image: {time.monotonic() - self.start:5.0f}s [{done}] {what}"
        if self.tty:
            self.out.write("\r\x1b[K" + text[:120])
        elif sum(self.counts.values()) % 50 == 1:
            self.out.write(text + "\n")
        self.out.flush()

    def finish(self, what: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[K")
        self.out.write(f"debian-image: {what} in {time.monotonic() - self.start:.0f}s\n")


def run_debootstrap(tmp: str, mirror: str, progress: Progress) -> None:
    argv = ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
            "--exclude=systemd-sysv", SUITE, tmp, mirror]
    log: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True, errors="replace") as p:
        for line in p.stdout:
            log.append(line)
            progress.feed(line)
    if p.returncode != 0:
        tail = "".join(log[-15:])
        raise RuntimeError(f"debootstrap failed (status {p.returncode}):\n{tail}")


def chroot(tmp: str, *argv: str, stdin: str | None = None) -> None:
    subprocess.run(["chroot", tmp, *argv], input=stdin, text=True, check=True,
                   capture_output=True)


def configure(tmp: str) -> None:
    """usermode-specific touches: console getty, root password, no apt cache."""
    files = {"etc/inittab": INITTAB, "etc/init.d/usermode-rcS": RCS,
             "etc/hostname": "usermode\n"}
    for name, text in files.items():
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    os.chmod(os.path.join(tmp, "etc/init.d/usermode-rcS"), 0o755)
    chroot(tmp, "chpasswd", stdin=f"root:{ROOT_PASSWORD}\n")
    chroot(tmp, "apt-get", "clean")
    with open(os.path.join(tmp, STAMP), "w") as f:
        f.write(stamp_text())


def build(dest: str, mirror: str = MIRROR) -> str:
    if shutil.which("debootstrap") is None:
        raise FileNotFoundError("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise PermissionError("building a Debian tree needs root (debootstrap, chroot)")
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    progress = Progress()
    run_debootstrap(tmp, mirror, progress)
    configure(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)
    progress.finish(f"built {dest}")
    return dest


def ensure(dest: str | None = None, force: bool = False) -> str:
    """The cached tree, built when missing or stale."""
    dest = dest or default_dest()
    if not force and is_complete(dest):
        return dest
    return build(dest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="usermode-debian-image",
                                 description="build (or reuse) a Debian bookworm guest tree")
    ap.add_argument("--dest", default=None, help="directory (default: the cache)")
    ap.add_argument("--mirror", default=MIRROR)
    ap.add_argument("--force", action="store_true", help="rebuild even if complete")
    a = ap.parse_args(argv)
    dest = a.dest or default_dest()
    try:
        if not a.force and is_complete(dest):
            print(f"debian-image: {dest} is complete (cached)", file=sys.stderr)
        else:
            build(dest, a.mirror)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
        print(f"usermode-debian-image: {e}".rstrip(), file=sys.stderr)
        return 1
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
