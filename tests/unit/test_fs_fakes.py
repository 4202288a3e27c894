"""Fakes shared by the fs unit tests (no tests here): a guest memory over a bytearray,
a kernel that records signals, and a task with a VFS."""
from __future__ import annotations

import errno
import struct

from usermode.fs.fdtable import FdTable
from usermode.fs.tmpfs import TmpFS
from usermode.fs.vfs import VFS
from usermode.kernel.creds import Creds
from usermode.kernel.errors import Errno

BASE = 0x10000
SIZE = 1 << 22


class FakeMM:
    def __init__(self) -> None:
        self.mem = bytearray(SIZE)
        self.brk = BASE

    def alloc(self, n: int, data: bytes = b"") -> int:
        a = self.brk
        self.brk += (max(n, len(data)) + 15) & ~15
        if data:
            self.copy_out(a, data)
        return a

    def cstr(self, s: bytes | str) -> int:
        if isinstance(s, str):
            s = s.encode()
        return self.alloc(len(s) + 1, s + b"\0")

    def _chk(self, addr: int, n: int) -> int:
        off = addr - BASE
        if addr <= 0 or off < 0 or off + n > SIZE:
            raise Errno(errno.EFAULT)
        return off

    def copy_in(self, addr: int, n: int) -> bytes:
        if n == 0:
            return b""
        off = self._chk(addr, n)
        return bytes(self.mem[off:off + n])

    def copy_out(self, addr: int, data: bytes) -> None:
        if not data:
            return
        off = self._chk(addr, len(data))
        self.mem[off:off + len(data)] = data

    def read_cstr(self, addr: int, maxlen: int = 4096) -> bytes:
        off = self._chk(addr, 1)
        end = self.mem.find(b"\0", off, off + maxlen + 1)
        if end < 0:
            raise Errno(errno.ENAMETOOLONG)
        return bytes(self.mem[off:end])

    def read_u32(self, a: int) -> int:
        return struct.unpack("<I", self.copy_in(a, 4))[0]

    def read_i32(self, a: int) -> int:
        return struct.unpack("<i", self.copy_in(a, 4))[0]

    def read_u64(self, a: int) -> int:
        return struct.unpack("<Q", self.copy_in(a, 8))[0]

    def write_u32(self, a: int, v: int) -> None:
        self.copy_out(a, struct.pack("<I", v & 0xFFFFFFFF))

    def write_i32(self, a: int, v: int) -> None:
        self.copy_out(a, struct.pack("<i", v))

    def write_u64(self, a: int, v: int) -> None:
        self.copy_out(a, struct.pack("<Q", v & (2**64 - 1)))


class FakeKernel:
    def __init__(self, vfs: VFS) -> None:
        self.vfs = vfs
        self.signals: list[tuple[int, int]] = []

    def send_signal_to_task(self, t, sig: int) -> None:
        self.signals.append((t.tid, sig))


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.threads: list = []
        self.zombie = False
        self.reaped = False


class FakeTask:
    def __init__(self, kernel: FakeKernel, tid: int = 1, fs=None, files=None,
                 creds: Creds | None = None) -> None:
        self.kernel = kernel
        self.tid = tid
        self.process = FakeProcess(tid)
        self.process.threads.append(self)
        self.mm = FakeMM()
        self.fs = fs or kernel.vfs.new_context()
        self.files = files or FdTable()
        self.creds = creds or Creds()
        self.timed_out = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def fork(self, tid: int) -> "FakeTask":
        c = FakeTask(self.kernel, tid, self.fs.fork(), self.files.fork(), self.creds.copy())
        c.mm = self.mm
        return c


def user_creds(uid: int = 1000, gid: int = 1000) -> Creds:
    return Creds(uid, uid, uid, uid, gid, gid, gid, gid, [])


def make_task(rootfs=None) -> FakeTask:
    vfs = VFS(rootfs or TmpFS())
    return FakeTask(FakeKernel(vfs))


def call(fn, t, *args) -> int:
    """Run a handler like the dispatcher: Errno -> -errno, args as raw u64."""
    raw = [a & (2**64 - 1) if isinstance(a, int) else a for a in args]
    try:
        return fn(t, *raw)
    except Errno as e:
        return -e.errno
