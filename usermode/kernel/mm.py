"""A guest address space: guest memory access, brk, and the mappings we keep for /proc."""
from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from usermode.host.platform import Memory
from usermode.kernel.errors import Errno

PAGE = 4096


def page_up(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


def page_down(x: int) -> int:
    return x & ~(PAGE - 1)


@dataclass(slots=True)
class Mapping:
    """A mapping the kernel made or knows of (file-backed ones, the image, stack, brk)."""
    start: int
    end: int
    prot: int
    name: str = ""
    offset: int = 0


class MM:
    """Guest memory through the host's /proc/<tid>/mem. All guest pointers go through here,
    so a bad pointer becomes EFAULT, never an exception in the kernel."""

    def __init__(self, host_tid: int) -> None:
        self.mem = Memory(host_tid)
        self.brk_start = 0
        self.brk = 0
        self.mappings: list[Mapping] = []
        self.users = 1
        self.exe_path = ""
        self.arg_start = self.arg_end = self.env_start = self.env_end = 0
        self.stack_top = 0
        self.vdso = 0

    # -- copy in / out
    def copy_in(self, addr: int, n: int) -> bytes:
        if n == 0:
            return b""
        if n < 0 or addr <= 0:
            raise Errno(errno.EFAULT)
        data = self.mem.read(addr, n)
        if data is None:
            raise Errno(errno.EFAULT)
        return data

    def copy_out(self, addr: int, data: bytes) -> None:
        if not data:
            return
        if addr <= 0 or not self.mem.write(addr, data):
            raise Errno(errno.EFAULT)

    def read_cstr(self, addr: int, maxlen: int = 4096) -> bytes:
        """A NUL-terminated string; ENAMETOOLONG past maxlen, EFAULT if unreadable."""
        if addr <= 0:
            raise Errno(errno.EFAULT)
        chunk = self.mem.read_upto(addr, min(maxlen + 1, PAGE - (addr & (PAGE - 1))))
        i = chunk.find(b"\0")
        if i >= 0:
            return chunk[:i]
        data = chunk
        while len(data) <= maxlen:
            more = self.mem.read_upto(addr + len(data), min(PAGE, maxlen + 1 - len(data)))
            if not more:
                raise Errno(errno.EFAULT)
            i = more.find(b"\0")
            if i >= 0:
                return data + more[:i]
            data += more
        raise Errno(errno.ENAMETOOLONG)

    def read_ptr_array(self, addr: int, limit: int = 1 << 17) -> list[int]:
        """A NULL-terminated array of pointers (argv, envp)."""
        out: list[int] = []
        if addr == 0:
            return out
        while True:
            chunk = self.mem.read_upto(addr + 8 * len(out), 512)
            if len(chunk) < 8:
                raise Errno(errno.EFAULT)
            for (p,) in struct.iter_unpack("<Q", chunk[: len(chunk) // 8 * 8]):
                if p == 0:
                    return out
                out.append(p)
                if len(out) > limit:
                    raise Errno(errno.E2BIG)

    def read_u32(self, addr: int) -> int:
        return struct.unpack("<I", self.copy_in(addr, 4))[0]

    def read_i32(self, addr: int) -> int:
        return struct.unpack("<i", self.copy_in(addr, 4))[0]

    def read_u64(self, addr: int) -> int:
        return struct.unpack("<Q", self.copy_in(addr, 8))[0]

    def write_u32(self, addr: int, v: int) -> None:
        self.copy_out(addr, struct.pack("<I", v & 0xFFFFFFFF))

    def write_i32(self, addr: int, v: int) -> None:
        self.copy_out(addr, struct.pack("<i", v))

    def write_u64(self, addr: int, v: int) -> None:
        self.copy_out(addr, struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF))

    def close(self) -> None:
        self.mem.close()
