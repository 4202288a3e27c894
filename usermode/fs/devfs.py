"""devfs (/dev): a tmpfs whose device nodes follow the device registry, plus the memory
devices every system has (null, zero, full, random, urandom: major 1, mem(4))."""
from __future__ import annotations

import errno
import secrets
from typing import TYPE_CHECKING

from usermode.fs.devices import DeviceRegistry
from usermode.fs.file import POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM, File
from usermode.fs.stat import S_IFBLK, S_IFCHR
from usermode.fs.tmpfs import TmpFS, TmpInode
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.kernel.task import Task

DEVTMPFS_MAGIC = 0x01021994
MAX_READ = 1 << 24          # one read of /dev/zero returns at most this much


class MemFile(File):
    """Base of the mem devices: seekable to 0, always ready."""

    def lseek(self, off: int, whence: int) -> int:
        self.pos = 0
        return 0

    def poll(self) -> int:
        return POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM

    def read(self, t: "Task", n: int) -> bytes:
        return self.fill(min(n, MAX_READ))

    def pread(self, t: "Task", n: int, off: int) -> bytes:
        return self.read(t, n)

    def pwrite(self, t: "Task", data: bytes, off: int) -> int:
        return self.write(t, data)

    def write(self, t: "Task", data: bytes) -> int:
        return len(data)

    def fill(self, n: int) -> bytes:
        return bytes(n)


class NullFile(MemFile):
    def fill(self, n: int) -> bytes:
        return b""


class ZeroFile(MemFile):
    mappable = True

    pass


class FullFile(MemFile):
    def write(self, t: "Task", data: bytes) -> int:
        raise Errno(errno.ENOSPC)


class RandomFile(MemFile):
    def fill(self, n: int) -> bytes:
        return secrets.token_bytes(n)


MEM_DEVICES = {"null": (3, NullFile), "zero": (5, ZeroFile), "full": (7, FullFile),
               "random": (8, RandomFile), "urandom": (9, RandomFile)}


def register_mem_devices(reg: DeviceRegistry) -> None:
    for name, (minor, cls) in MEM_DEVICES.items():
        reg.register_chrdev(1, minor, lambda t, flags, cls=cls: cls(flags), name, 0o666)


class DevFS(TmpFS):
    """The nodes of every registered, named device appear here (and later ones too)."""

    fstype = "devtmpfs"
    magic = DEVTMPFS_MAGIC
    trusted_dcache = False      # drivers add and replace nodes directly

    def __init__(self, devices: DeviceRegistry) -> None:
        super().__init__(size_limit=1 << 24, mode=0o755)
        self.devices = devices
        if "null" not in devices.names:
            register_mem_devices(devices)
        root = self.root
        assert isinstance(root, TmpInode)
        for d in (b"pts", b"shm"):
            root.mkdir(d, 0o755 if d == b"pts" else 0o1777, 0, 0)
        for name, target in ((b"fd", b"/proc/self/fd"), (b"stdin", b"/proc/self/fd/0"),
                             (b"stdout", b"/proc/self/fd/1"), (b"stderr", b"/proc/self/fd/2")):
            root.symlink(name, target, 0, 0)
        for name, (block, dev, mode) in list(devices.names.items()):
            self.add_node(name, block, dev, mode)
        devices.listeners.append(self.add_node)
        devices.removers.append(self.remove_node)

    def add_node(self, name: str, block: bool, dev: int, mode: int) -> None:
        """Make /dev/<name> (subdirectories such as "input/event0" are created)."""
        parts = name.encode().split(b"/")
        d = self.root
        assert isinstance(d, TmpInode)
        for p in parts[:-1]:
            nxt = d.entries.get(p)
            if nxt is None:
                nxt = d.mkdir(p, 0o755, 0, 0)
            assert isinstance(nxt, TmpInode)
            d = nxt
        old = d.entries.get(parts[-1])
        if old is not None and not old.is_dir:
            d.unlink(parts[-1])
        if parts[-1] not in d.entries:
            d.mknod(parts[-1], (S_IFBLK if block else S_IFCHR) | (mode & 0o7777), dev, 0, 0)

    def remove_node(self, name: str) -> None:
        """Drop /dev/<name> (a hot-removed device)."""
        *dirs, last = name.encode().split(b"/")
        d = self.root
        for p in dirs:
            d = d.entries.get(p) if isinstance(d, TmpInode) else None
            if d is None:
                return
        assert isinstance(d, TmpInode)
        node = d.entries.get(last)
        if node is not None and not node.is_dir:
            d.unlink(last)
