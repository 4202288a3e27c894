"""devpts (/dev/pts): one node per live pty pair, plus ptmx (Linux's fs/devpts).

The pty driver (usermode/drivers/pty.py) adds /dev/pts/N when /dev/ptmx is opened and
removes it when the master is closed. Nodes belong to the opener (uid, and gid unless the
`gid=` mount option says otherwise), mode 0620 (`mode=`); ptmx is 0666 (`ptmxmode=`).
Every mount of type devpts shows the same instance (the kernel's one set of ptys).
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from usermode.fs.inode import FileSystem, Inode, now_ns
from usermode.fs.stat import S_IFCHR, S_IFDIR, dtype_of, makedev
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.fs.vfs import VFS
    from usermode.kernel.task import Task

DEVPTS_SUPER_MAGIC = 0x1CD1
PTMX_MAJOR, PTMX_MINOR = 5, 2
PTS_MAJOR = 136


class DevPtsDir(Inode):
    """The root directory: its entries are exactly the live ptys (and ptmx)."""

    def __init__(self, sb: "DevPtsFS") -> None:
        super().__init__(sb, 1, S_IFDIR | 0o755)
        self.entries: dict[bytes, Inode] = {}

    def lookup(self, name: bytes) -> Inode:
        try:
            return self.entries[name]
        except KeyError:
            raise Errno(errno.ENOENT) from None

    def listdir(self) -> list[tuple[bytes, int, int]]:
        return [(n, i.ino, dtype_of(i.mode)) for n, i in self.entries.items()]


class DevPtsFS(FileSystem):
    fstype = "devpts"
    magic = DEVPTS_SUPER_MAGIC
    trusted_dcache = False          # the driver adds and removes nodes

    def __init__(self) -> None:
        super().__init__()
        self.root = root = DevPtsDir(self)
        self.gid: int | None = None       # gid= option; None: the opener's gid
        self.mode = 0o620
        self.ptmx = Inode(self, 2, S_IFCHR | 0o666, 0, 0, makedev(PTMX_MAJOR, PTMX_MINOR))
        root.entries[b"ptmx"] = self.ptmx

    def apply_options(self, data: bytes) -> None:
        """gid=, mode=, ptmxmode= (others, such as newinstance, are accepted and ignored)."""
        for opt in data.split(b","):
            key, _, val = opt.partition(b"=")
            try:
                if key == b"gid":
                    self.gid = int(val)
                elif key == b"mode":
                    self.mode = int(val, 8) & 0o777
                elif key == b"ptmxmode":
                    self.ptmx.mode = S_IFCHR | (int(val, 8) & 0o777)
            except ValueError:
                raise Errno(errno.EINVAL) from None

    def add(self, index: int, uid: int, gid: int) -> Inode:
        """Make /dev/pts/<index> for a new pair (owned by the opener)."""
        node = Inode(self, index + 3, S_IFCHR | self.mode, uid,
                     gid if self.gid is None else self.gid, makedev(PTS_MAJOR, index))
        root = self.root
        assert isinstance(root, DevPtsDir)
        root.entries[str(index).encode()] = node
        root.mtime_ns = root.ctime_ns = now_ns()
        return node

    def remove(self, index: int) -> None:
        root = self.root
        assert isinstance(root, DevPtsDir)
        if root.entries.pop(str(index).encode(), None) is not None:
            root.mtime_ns = root.ctime_ns = now_ns()

    def node(self, index: int) -> Inode | None:
        root = self.root
        assert isinstance(root, DevPtsDir)
        return root.entries.get(str(index).encode())


def register(vfs: "VFS", fs: DevPtsFS) -> None:
    """Make `devpts` a filesystem type of vfs showing fs (mount -t devpts devpts /dev/pts)."""
    def factory(source: bytes, flags: int, data: bytes, t: "Task | None") -> FileSystem:
        if data:
            fs.apply_options(data)
        return fs
    vfs.register_fstype("devpts", factory)
