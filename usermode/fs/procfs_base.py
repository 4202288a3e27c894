"""Generated filesystems (the kernfs/seq_file part of procfs and sysfs).

Files are rendered from kernel state when read: a read at offset 0 (the first read, or a
read after lseek(0), which is how top and free re-read /proc/stat and /proc/meminfo)
renders anew; later offsets continue in that snapshot, as seq_file does. Directories
compute their entries on each lookup/readdir, so trusted_dcache is off.

Every callback gets the task being served (kernel.current; None for kernel-internal
reads), since /proc answers depend on who asks (/proc/self, permissions, d_path roots).
"""
from __future__ import annotations

import errno
import secrets
import weakref
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from usermode.fs.files import VfsFile
from usermode.fs.inode import FileSystem, Inode, Path
from usermode.fs.stat import DT_DIR, S_IFDIR, S_IFLNK, S_IFREG, dtype_of
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.fs.file import File
    from usermode.kernel.task import Task

Render = Callable[["Task | None"], bytes]
Writer = Callable[["Task | None", bytes], None]
Check = Callable[["Task | None"], None]       # raises Errno(EACCES) to refuse
Owner = Callable[[], tuple[int, int]]


class PseudoFS(FileSystem):
    trusted_dcache = False

    def __init__(self, kernel) -> None:
        super().__init__()
        self.kernel = kernel

    @property
    def current(self) -> "Task | None":
        return self.kernel.current


class PseudoInode(Inode):
    """Base of generated inodes: ownership may follow a process (owner())."""

    sb: PseudoFS

    def __init__(self, sb: PseudoFS, mode: int, owner: Owner | None = None,
                 check: Check | None = None) -> None:
        super().__init__(sb, sb.new_ino(), mode)
        self.owner = owner
        self.check = check
        self.refresh()

    def refresh(self) -> None:
        if self.owner is not None:
            self.uid, self.gid = self.owner()

    def setattr(self, *args, **kwargs) -> None:
        raise Errno(errno.EPERM)

    def allow(self, t: "Task | None") -> None:
        if self.check is not None:
            self.check(t)


class GenFile(PseudoInode):
    """A regular file rendered on read; writable when given a writer."""

    def __init__(self, sb: PseudoFS, render: Render, mode: int = 0o444,
                 writer: Writer | None = None, owner: Owner | None = None,
                 check: Check | None = None, size: int = 0) -> None:
        super().__init__(sb, S_IFREG | mode, owner, check)
        self.render = render
        self.writer = writer
        self.size = size            # 0 for proc (programs must read to EOF); sysfs 4096

    def read_at(self, off: int, n: int) -> bytes:
        t = self.sb.current
        self.allow(t)
        return self.render(t)[off:off + n]

    def write_at(self, off: int, data: bytes) -> int:
        t = self.sb.current
        if self.writer is None:
            raise Errno(errno.EIO)
        self.allow(t)
        self.writer(t, data)
        return len(data)

    def truncate(self, size: int) -> None:
        """O_TRUNC of a proc file (`echo 1 > /proc/sys/...`) is accepted and ignored."""

    def open_file(self, t: "Task", flags: int, path: Path) -> "File":
        self.allow(t)
        return GenHandle(path, flags, self)


class GenHandle(VfsFile):
    """An open generated file: a snapshot rendered at offset 0."""

    inode: GenFile

    def __init__(self, path: Path, flags: int, inode: GenFile) -> None:
        super().__init__(path, flags)
        self.data: bytes | None = None

    def _snap(self, t: "Task | None", off: int) -> bytes:
        if off == 0 or self.data is None:
            self.data = self.inode.render(t)
        return self.data

    def read(self, t: "Task", n: int) -> bytes:
        out = self._snap(t, self.pos)[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def pread(self, t: "Task", n: int, off: int) -> bytes:
        if off < 0:
            raise Errno(errno.EINVAL)
        return self._snap(t, off)[off:off + n]

    def write(self, t: "Task", data: bytes) -> int:
        if self.inode.writer is None:
            raise Errno(errno.EIO)
        self.inode.writer(t, data)
        self.pos += len(data)
        return len(data)

    def pwrite(self, t: "Task", data: bytes, off: int) -> int:
        if self.inode.writer is None:
            raise Errno(errno.EIO)
        self.inode.writer(t, data)
        return len(data)

    def lseek(self, off: int, whence: int) -> int:
        new = off if whence == 0 else self.pos + off if whence == 1 else -1
        if new < 0:                      # SEEK_END and friends: EINVAL, as seq_file
            raise Errno(errno.EINVAL)
        self.pos = new
        return new


class Link(PseudoInode):
    """A symlink whose target is computed. `jump` makes it a magic link (/proc/<pid>/fd/N,
    cwd, exe): following it lands on the object itself, not on a re-walk of its text."""

    def __init__(self, sb: PseudoFS, target: Callable[["Task | None"], bytes],
                 jump: Callable[["Task | None"], Path | None] | None = None,
                 owner: Owner | None = None, check: Check | None = None,
                 mode: int = 0o777, size: int = 0) -> None:
        super().__init__(sb, S_IFLNK | mode, owner, check)
        self.target = target
        self.jump = jump
        self.size = size

    def readlink(self) -> bytes:
        t = self.sb.current
        self.allow(t)
        return self.target(t)

    def follow_link(self) -> Path | None:
        """The magic-link hook for namei's follow(): a Path to land on, or None to
        resolve readlink()'s text."""
        if self.jump is None:
            return None
        t = self.sb.current
        self.allow(t)
        return self.jump(t)


class Dir(PseudoInode):
    """A directory: fixed children (`entries`) plus optional dynamic ones (`dynamic`
    returns name -> inode for what exists now, e.g. pids or fds)."""

    def __init__(self, sb: PseudoFS, entries: Mapping[bytes, Inode] | None = None,
                 dynamic: Callable[[], Mapping[bytes, Inode]] | None = None,
                 mode: int = 0o555, owner: Owner | None = None,
                 check: Check | None = None) -> None:
        super().__init__(sb, S_IFDIR | mode, owner, check)
        fixed = dict(entries or {})
        self.entries: dict[bytes, Inode] = fixed
        self.dynamic = dynamic
        self.nlink = 2 + sum(1 for i in fixed.values() if i.is_dir)

    def add(self, name: str | bytes, inode: Inode) -> Inode:
        key = name.encode() if isinstance(name, str) else name
        old = self.entries.get(key)
        self.entries[key] = inode
        self.nlink += inode.is_dir - (old is not None and old.is_dir)
        return inode

    def children(self) -> Mapping[bytes, Inode]:
        if self.dynamic is None:
            return self.entries
        return {**self.entries, **self.dynamic()}

    def lookup(self, name: bytes) -> Inode:
        self.allow(self.sb.current)
        node = self.entries.get(name)
        if node is None and self.dynamic is not None:
            node = self.lookup_dynamic(name)
        if node is None:
            raise Errno(errno.ENOENT)
        return node

    def lookup_dynamic(self, name: bytes) -> Inode | None:
        """Subclasses with many dynamic names (pids) find one without listing all."""
        assert self.dynamic is not None
        return self.dynamic().get(name)

    def listdir(self) -> list[tuple[bytes, int, int]]:
        self.allow(self.sb.current)
        return [(n, i.ino, DT_DIR if i.is_dir else dtype_of(i.mode))
                for n, i in self.children().items()]


def kb(n_bytes: int) -> int:
    return n_bytes >> 10


def cpu_list(n: int) -> bytes:
    """The cpulist format of sysfs and Cpus_allowed_list: "0", "0-3"."""
    return b"0\n" if n <= 1 else b"0-%d\n" % (n - 1)


def mangle(path: bytes) -> bytes:
    """Escape space, tab, newline and backslash as octal, as /proc/mounts does."""
    for c in b"\\ \t\n":
        path = path.replace(bytes([c]), b"\\%03o" % c)
    return path


def const(text: bytes | str) -> Render:
    data = text.encode() if isinstance(text, str) else text
    return lambda t: data


class ProcState:
    """What /proc keeps per kernel (shared by every proc mount): per-process tunables the
    kernel has no field for yet, and the tables other drivers feed (disks, /proc/net)."""

    def __init__(self) -> None:
        self.oom_score_adj: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.loginuid: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # name -> (major, minor, size in 1K blocks, stats() -> 17 diskstats counters)
        self.disks: dict[str, tuple[int, int, int, Callable[[], Sequence[int]]]] = {}
        self.net: dict[bytes, Render] = {}            # /proc/<pid>/net/<name>
        # name -> (render, writer, mode): files drivers add at the top (/proc/mconsole)
        self.extra: dict[str, tuple[Render, Writer | None, int]] = {}
        self.load = [0.0, 0.0, 0.0, -1.0]              # 1/5/15-minute loads, when sampled
        self.cpu_seen = [0, 0]                         # user/system ticks ever reported
        self.boot_id = uuid_text(secrets.token_bytes(16))


def uuid_text(b: bytes) -> str:
    """A random (version 4) UUID in its text form."""
    b = bytearray(b)
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_states: "weakref.WeakKeyDictionary[object, ProcState]" = weakref.WeakKeyDictionary()


def proc_state(kernel) -> ProcState:
    """The ProcState of a kernel, made on first use."""
    st = _states.get(kernel)
    if st is None:
        st = _states[kernel] = ProcState()
    return st
