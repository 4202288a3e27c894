"""Build the default guest root: a busybox-static tree (the README's first command boots it).

The tree is built once from Debian's busybox-static and cached under $XDG_CACHE_HOME/usermode
(or ~/.cache). Tests and `rootflags=` serve it through hostfs; the default guest boots from
an ext2 image of it (default_image), through a COW file, so the image stays pristine.
"""
from __future__ import annotations

import os
import shutil
import subprocess

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
VERSION = "1"       # bump to rebuild cached roots when the layout changes

INITTAB = """\
# usermode default inittab (busybox init)
::sysinit:/etc/init.d/rcS
console::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
"""
RCS = """\
#!/bin/sh
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t tmpfs tmpfs /tmp 2>/dev/null
hostname usermode
echo "usermode: busybox guest ready; 'poweroff' halts the machine."
"""
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
PROFILE = 'export PS1="\\h:\\w\\$ "\nexport PATH=/bin:/sbin:/usr/bin:/usr/sbin\n'


def find_busybox() -> str | None:
    for p in BUSYBOX_CANDIDATES:
        if os.path.isfile(p):
            try:
                out = subprocess.run(["file", "-b", p], capture_output=True, text=True).stdout
            except OSError:
                out = ""
            if "dynamically" not in out:
                return p
    return None


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "usermode")


def build(dest: str, busybox: str | None = None) -> str:
    """Build a busybox root at dest (replacing it); returns dest."""
    busybox = busybox or find_busybox()
    if busybox is None:
        raise FileNotFoundError("busybox-static is not installed (apt-get install busybox-static)")
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "proc", "sys", "dev", "tmp",
              "root", "var/log", "mnt", "home"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    os.chmod(os.path.join(tmp, "tmp"), 0o1777)
    shutil.copy2(busybox, os.path.join(tmp, "bin/busybox"))
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    for a in applets:
        link = os.path.join(tmp, a)
        if a == "bin/busybox" or os.path.lexists(link):
            continue
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("/bin/busybox", link)
    files = {"etc/inittab": INITTAB, "etc/init.d/rcS": RCS, "etc/passwd": PASSWD,
             "etc/group": GROUP, "etc/profile": PROFILE, "etc/hostname": "usermode\n",
             "etc/shadow": "root::19000:0:99999:7:::\n", "usermode-version": VERSION + "\n"}
    for name, text in files.items():
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    os.chmod(os.path.join(tmp, "etc/init.d/rcS"), 0o755)
    os.chmod(os.path.join(tmp, "etc/shadow"), 0o600)
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)
    return dest


def default_root() -> str:
    """The cached default root, built on first use."""
    dest = os.path.join(cache_dir(), "busybox-root")
    stamp = os.path.join(dest, "usermode-version")
    try:
        with open(stamp) as f:
            if f.read().strip() == VERSION:
                return dest
    except OSError:
        pass
    os.makedirs(cache_dir(), exist_ok=True)
    return build(dest)


IMAGE_SIZE = 64 << 20      # room for the guest to write into


def default_image() -> str:
    """The cached ext2 image of the default root, (re)built with the tree."""
    import tempfile
    from usermode.tools.mkimage import build_image
    image = os.path.join(cache_dir(), "busybox-root.ext2")
    stamp = image + ".version"
    try:
        with open(stamp) as f:
            if f.read().strip() == VERSION and os.path.exists(image):
                return image
    except OSError:
        pass
    os.makedirs(cache_dir(), exist_ok=True)
    tmp = image + ".tmp"
    with tempfile.TemporaryDirectory(dir=cache_dir()) as work:
        # from a fresh tree: the cached one is a hostfs root that guests may have written
        root = build(os.path.join(work, "root"))
        build_image(root, tmp, size=IMAGE_SIZE, fstype="ext2", progress=True, label="usermode")
    os.rename(tmp, image)
    with open(stamp, "w") as f:
        f.write(VERSION + "\n")
    return image
