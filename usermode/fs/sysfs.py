"""sysfs (/sys): the small part of the device model programs look at.

glibc counts processors from /sys/devices/system/cpu/online (sysconf _SC_NPROCESSORS_ONLN)
and the cpuN directories (_SC_NPROCESSORS_CONF); udev-less tools look for the classes.
Attributes are 4096-byte files as Linux reports them; drivers may add their own
entries with add_class_device().
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from usermode.fs.inode import FileSystem
from usermode.fs.procfs_base import Dir, GenFile, Link, PseudoFS, Render, cpu_list

if TYPE_CHECKING:
    from usermode.fs.vfs import VFS
    from usermode.kernel.task import Task

SYSFS_MAGIC = 0x62656572
ATTR_SIZE = 4096
CLASSES = ("block", "mem", "misc", "net", "tty")


def register(vfs: "VFS", kernel) -> None:
    """Make `sysfs` a filesystem type of vfs (mount -t sysfs sysfs /sys)."""
    def factory(source: bytes, flags: int, data: bytes, t: "Task | None") -> FileSystem:
        return SysFS(kernel)
    vfs.register_fstype("sysfs", factory)


class SysFS(PseudoFS):
    fstype = "sysfs"
    magic = SYSFS_MAGIC

    def __init__(self, kernel) -> None:
        super().__init__(kernel)
        self.root = root = Dir(self, mode=0o555)
        for name in ("block", "bus", "dev", "devices", "firmware", "fs", "kernel", "module",
                     "power"):
            root.add(name, Dir(self, mode=0o755))
        self.dir("class")
        for c in CLASSES:
            self.dir(f"class/{c}")
        self.dir("dev/block")
        self.dir("dev/char")
        self.dir("devices/virtual")
        self.dir("fs/cgroup")
        for d in ("mm", "security", "debug"):
            self.dir(f"kernel/{d}")
        self.attr("kernel/uevent_seqnum", lambda t: b"0\n")
        self.attr("kernel/uevent_helper", lambda t: b"\n", 0o644)
        cpu = "devices/system/cpu"
        ncpus = lambda t: cpu_list(kernel.ncpus)          # noqa: E731
        for name in ("online", "possible", "present"):
            self.attr(f"{cpu}/{name}", ncpus)
        self.attr(f"{cpu}/offline", lambda t: b"\n")
        self.attr(f"{cpu}/kernel_max", lambda t: b"%d\n" % (max(kernel.ncpus, 64) - 1))
        for i in range(kernel.ncpus):
            self.dir(f"{cpu}/cpu{i}")
            if i:
                self.attr(f"{cpu}/cpu{i}/online", lambda t: b"1\n", 0o644)
        self.attr("power/state", lambda t: b"freeze mem disk\n", 0o644)

    def dir(self, path: str) -> Dir:
        """The directory at path, made (with its parents) if missing."""
        d = self.root
        assert isinstance(d, Dir)
        for part in path.split("/"):
            nxt = d.entries.get(part.encode())
            if nxt is None:
                nxt = d.add(part, Dir(self, mode=0o755))
            assert isinstance(nxt, Dir)
            d = nxt
        return d

    def attr(self, path: str, render: Render, mode: int = 0o444) -> GenFile:
        parent, _, name = path.rpartition("/")
        node = GenFile(self, render, mode, size=ATTR_SIZE)
        self.dir(parent).add(name, node)
        return node

    def add_class_device(self, cls: str, name: str,
                         attrs: dict[str, Render] | None = None) -> Dir:
        """/sys/devices/virtual/<cls>/<name>/ with attrs, linked from /sys/class/<cls>."""
        d = self.dir(f"devices/virtual/{cls}/{name}")
        for attr, render in (attrs or {}).items():
            d.add(attr, GenFile(self, render, 0o444, size=ATTR_SIZE))
        target = f"../../devices/virtual/{cls}/{name}".encode()
        self.dir(f"class/{cls}").add(name, Link(self, lambda t: target))
        return d
