"""What the host kernel knows about a guest task, for the guest's procfs.

A guest task is a real host thread, so its memory use, CPU times, context switches and
signal masks are the host's numbers (from /proc/<host_tid>/...). Its address space also
holds our stub (STUB_BASE): that mapping is left out here, so no layer above sees it.
Host file names are never passed up for file mappings: every guest file mapping is an
anonymous host mapping, named by the kernel's own records (see fs/procfs_task.py).
Every reader returns an empty result when the task is gone (ESRCH races are normal).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

from usermode.host.stub import STUB_BASE

STUB_END = STUB_BASE + 0x3000         # the stub: code at STUB_BASE + 0x1000, data page after


class HostMap(NamedTuple):
    start: int
    end: int
    perms: str
    offset: int
    name: str            # only the kernel's special names ([stack], [vdso], ...) or ""


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


@functools.cache
def _cpuinfo() -> tuple[tuple[str, ...], ...]:
    text = _read("/proc/cpuinfo").decode(errors="replace")
    return tuple(tuple(b.splitlines()) for b in text.strip("\n").split("\n\n") if b)


class HostInfo:
    """The host /proc readers procfs uses; tests substitute a fake with the same methods."""

    def status(self, tid: int) -> dict[str, str]:
        """/proc/<tid>/status as key -> value text ("VmRSS" -> "1708 kB")."""
        out: dict[str, str] = {}
        for line in _read(f"/proc/{tid}/status").decode(errors="replace").splitlines():
            k, sep, v = line.partition(":")
            if sep:
                out[k] = v.strip()
        return out

    def stat(self, tid: int, thread: bool = False) -> list[str]:
        """The fields after comm in /proc/<tid>/stat: [0] is the state letter, [11] utime
        ... (man 5 proc numbering minus 3). thread=True reads the thread's own counters
        (/proc/<tid>/task/<tid>/stat) instead of the thread group's."""
        path = f"/proc/{tid}/task/{tid}/stat" if thread else f"/proc/{tid}/stat"
        data = _read(path)
        i = data.rfind(b")")
        return data[i + 2:].decode().split() if i >= 0 else []

    def statm(self, tid: int) -> list[int]:
        return [int(x) for x in _read(f"/proc/{tid}/statm").split()]

    def maps(self, tid: int) -> list[HostMap]:
        out = []
        for line in _read(f"/proc/{tid}/maps").decode(errors="replace").splitlines():
            parts = line.split(None, 5)
            if len(parts) < 5:
                continue
            lo, _, hi = parts[0].partition("-")
            start, end = int(lo, 16), int(hi, 16)
            if start >= STUB_BASE and end <= STUB_END:
                continue
            name = parts[5].strip() if len(parts) > 5 else ""
            out.append(HostMap(start, end, parts[1], int(parts[2], 16),
                               name if name.startswith("[") else ""))
        return out

    def wchan(self, tid: int) -> str:
        return _read(f"/proc/{tid}/wchan").decode(errors="replace") or "0"

    def cpuinfo(self) -> tuple[tuple[str, ...], ...]:
        """The host's processor blocks, each a tuple of raw "key\\t: value" lines."""
        return _cpuinfo()
