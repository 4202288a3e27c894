"""A guest address space: guest memory access, brk, and the mappings we keep for /proc."""
from __future__ import annotations

import errno
import struct
from bisect import bisect_right
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


class Intervals:
    """Disjoint, merged [start, end) byte ranges, kept as two sorted lists.

    The commit records of one address space: every change returns how many bytes the
    covered total changed by, so the kernel-wide counter moves by exactly that much and
    a partial munmap/mremap subtracts only the overlap."""
    __slots__ = ("starts", "ends", "total")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.total = 0

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self):
        return iter(zip(self.starts, self.ends))

    def copy(self) -> "Intervals":
        c = Intervals()
        c.starts, c.ends, c.total = list(self.starts), list(self.ends), self.total
        return c

    def _span(self, start: int, end: int) -> tuple[int, int]:
        """Indices [i, j) of the ranges that overlap or touch [start, end)."""
        i = bisect_right(self.ends, start - 1)      # first range with end >= start
        j = bisect_right(self.starts, end)          # ranges with start <= end
        return i, j

    def overlap(self, start: int, end: int) -> int:
        if end <= start or not self.starts:
            return 0
        i = bisect_right(self.ends, start)          # first range with end > start
        n = 0
        starts, ends = self.starts, self.ends
        while i < len(starts) and starts[i] < end:
            n += min(ends[i], end) - max(starts[i], start)
            i += 1
        return n

    def add(self, start: int, end: int) -> int:
        """Cover [start, end); returns the bytes newly covered."""
        if end <= start:
            return 0
        i, j = self._span(start, end)
        covered = 0
        lo, hi = start, end
        for k in range(i, j):
            s, e = self.starts[k], self.ends[k]
            covered += max(0, min(e, end) - max(s, start))
            lo, hi = min(lo, s), max(hi, e)
        self.starts[i:j] = [lo]
        self.ends[i:j] = [hi]
        grown = (end - start) - covered
        self.total += grown
        return grown

    def pieces(self, start: int, end: int) -> list[tuple[int, int]]:
        """The covered parts of [start, end), in order."""
        if end <= start or not self.starts:
            return []
        i = bisect_right(self.ends, start)          # first range with end > start
        j = bisect_right(self.starts, end - 1)      # ranges with start < end
        return [(max(self.starts[k], start), min(self.ends[k], end)) for k in range(i, j)]

    def take(self, start: int, end: int) -> list[tuple[int, int]]:
        """Uncover [start, end); returns the pieces that were covered, in order."""
        if end <= start or not self.starts:
            return []
        i = bisect_right(self.ends, start)          # first range with end > start
        j = bisect_right(self.starts, end - 1)      # ranges with start < end
        if i >= j:
            return []
        pieces = [(max(self.starts[k], start), min(self.ends[k], end)) for k in range(i, j)]
        keep_s: list[int] = []
        keep_e: list[int] = []
        if self.starts[i] < start:
            keep_s.append(self.starts[i])
            keep_e.append(start)
        if self.ends[j - 1] > end:
            keep_s.append(end)
            keep_e.append(self.ends[j - 1])
        self.starts[i:j] = keep_s
        self.ends[i:j] = keep_e
        self.total -= sum(e - s for s, e in pieces)
        return pieces

    def remove(self, start: int, end: int) -> int:
        """Uncover [start, end); returns the bytes that were covered."""
        return sum(e - s for s, e in self.take(start, end))

    def clear(self) -> int:
        n = self.total
        self.starts, self.ends, self.total = [], [], 0
        return n


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
        self.auxv = b""                  # the auxiliary vector exec put on the stack
        self.stub_sealed = False         # exec sealed the stub's code and data pages
        self.stack_top = 0
        self.vdso = 0
        self.commit = Intervals()        # accounted ranges (mem= limit, see sys_mm.py)

    # -- commit accounting: kernel.committed is the sum of every live MM's commit.total
    def charge(self, kernel, start: int, end: int) -> None:
        kernel.committed += self.commit.add(start, end)

    def uncharge(self, kernel, start: int, end: int) -> None:
        if self.commit.starts:
            kernel.committed = max(0, kernel.committed - self.commit.remove(start, end))

    def take_commit(self, kernel, start: int, end: int) -> list[tuple[int, int]]:
        """Uncharge [start, end) and return the pieces that were charged (mremap moves)."""
        pieces = self.commit.take(start, end)
        if pieces:
            kernel.committed = max(0, kernel.committed - sum(e - s for s, e in pieces))
        return pieces

    def inherit_commit(self, kernel, parent: "MM") -> None:
        """fork: the child's private copies are committed again, as Linux counts them."""
        self.commit = parent.commit.copy()
        kernel.committed += self.commit.total

    def release_commit(self, kernel) -> None:
        """The address space is gone (last user exited or exec'd): drop its records."""
        kernel.committed = max(0, kernel.committed - self.commit.clear())

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
