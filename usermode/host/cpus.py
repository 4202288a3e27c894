"""The host CPUs an instance runs on.

A guest syscall is a ptrace round trip between a guest task and the kernel process. When
the two sit on different host CPUs, every trap wakes an idle CPU (an IPI, and in a VM an
exit to the hypervisor); on one CPU it is a plain context switch. Measured on this
project's machine (2 vCPUs, nested VM): getppid 85-210 us across CPUs, 16-18 us on one.
So an instance with ncpus=N runs all its host processes on N host CPUs, as UML's N
virtual CPUs; its guest CPU i is host CPU cpus[i].
"""
from __future__ import annotations

import os

from usermode.host.procinfo import HostInfo


def current_cpu() -> int | None:
    """The host CPU this process last ran on ("processor", field 39 of /proc/self/stat)."""
    fields = HostInfo().stat(os.getpid())
    return int(fields[36]) if len(fields) > 36 else None


def choose(ncpus: int) -> list[int]:
    """ncpus host CPUs from those this process may use, starting with the one it runs on
    (the host scheduler's own choice spreads instances over the machine). Fewer when
    the host allows fewer."""
    allowed = sorted(os.sched_getaffinity(0))
    if ncpus >= len(allowed):
        return allowed
    here = current_cpu()
    start = allowed.index(here) if here in allowed else 0
    return [allowed[(start + i) % len(allowed)] for i in range(ncpus)]


def pin(cpus: list[int], tid: int = 0) -> bool:
    """Confine host task tid (0: this one, inherited by its children) to cpus."""
    try:
        os.sched_setaffinity(tid, cpus)
        return True
    except OSError:
        return False        # a cpuset that forbids it: run unpinned
