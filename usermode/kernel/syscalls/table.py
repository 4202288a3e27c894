"""The one syscall table: number -> name, handler, support level (gVisor's linux64.go).

Each family module declares `SYSCALLS = [(name, handler, level, note), ...]`; this module
combines them with the calls the seccomp filter runs natively and the ones we refuse, so
`usermode --syscalls` and the README's compatibility table come from one place.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

from usermode.host.seccomp import NATIVE as NATIVE_CALLS
from usermode.kernel.syscalls.numbers import NAMES, NR


class _Native:
    """Returned by a handler: let the (possibly rewritten) call run on the host."""

    def __repr__(self) -> str:
        return "NATIVE"


NATIVE = _Native()

FAMILIES = ["sys_proc", "sys_cred", "sys_signal", "sys_mm", "sys_time", "sys_info", "sys_exec",
            "sys_file", "sys_fs", "sys_xattr", "sys_poll", "sys_socket", "sys_tty",
            "sys_fdtimers"]

# native by the filter, sometimes only for some arguments (see host/seccomp.py)
NATIVE_PARTIAL = {
    "mmap": "anonymous mappings under 1 MiB run natively; larger ones are accounted against "
            "mem=; file mappings are served by the kernel",
    "munmap": "under 1 MiB natively; larger ones release mem= accounting",
    "mremap": "under 1 MiB natively; larger ones are accounted against mem=",
    "madvise": "native for advice that only affects the caller's pages",
    "futex": "native except PI futexes (ENOSYS: they name owners by host tid)",
    "arch_prctl": "ARCH_SET/GET_FS/GS native; others ENOSYS",
}

REFUSED = {
    "io_uring_setup": "io_uring would bypass the syscall filter",
    "io_uring_enter": "io_uring would bypass the syscall filter",
    "io_uring_register": "io_uring would bypass the syscall filter",
    "ptrace": "ptrace of guest tasks is not emulated yet",
    "process_vm_readv": "cross-process memory access is not emulated yet",
    "process_vm_writev": "cross-process memory access is not emulated yet",
    "kexec_load": "no kexec in a user-mode kernel",
    "kexec_file_load": "no kexec in a user-mode kernel",
    "init_module": "no loadable modules",
    "finit_module": "no loadable modules",
    "delete_module": "no loadable modules",
    "bpf": "no eBPF",
    "perf_event_open": "no perf events",
    "userfaultfd": "not supported",
    "clone3": "glibc falls back to clone",
    "iopl": "no port I/O",
    "ioperm": "no port I/O",
    "modify_ldt": "no LDT",
    "pidfd_getfd": "would take host fds",
    "open_by_handle_at": "no file handles",
    "name_to_handle_at": "no file handles",
    "fanotify_init": "not supported",
    "quotactl": "not supported",
    "swapon": "no swap",
    "swapoff": "no swap",
    "vhangup": "not supported",
    "lookup_dcookie": "obsolete",
}


@dataclass(slots=True)
class Entry:
    nr: int
    name: str
    handler: Callable[..., int]
    nargs: int
    level: str
    note: str


class Table:
    def __init__(self) -> None:
        self.entries: list[Entry | None] = [None] * (max(NAMES) + 1)
        self.levels: dict[int, tuple[str, str]] = {}
        for fam in FAMILIES:
            try:
                mod = importlib.import_module(f"usermode.kernel.syscalls.{fam}")
            except ModuleNotFoundError as e:
                if e.name == f"usermode.kernel.syscalls.{fam}":
                    continue
                raise
            for name, handler, level, note in mod.SYSCALLS:
                nr = NR[name]
                n = len(inspect.signature(handler).parameters) - 1
                self.entries[nr] = Entry(nr, name, handler, n, level, note)
                self.levels[nr] = (level, note)
        for name in NATIVE_CALLS:
            self.levels.setdefault(NR[name], ("native", "runs on the host: touches only the caller"))
        for name, note in NATIVE_PARTIAL.items():
            if NR[name] not in self.levels or self.levels[NR[name]][0] == "native":
                self.levels[NR[name]] = ("native", note)
            else:
                lv, n0 = self.levels[NR[name]]
                self.levels[NR[name]] = (lv, note + ("; " + n0 if n0 else ""))
        for name, why in REFUSED.items():
            if name in NR and NR[name] not in self.levels:
                self.levels[NR[name]] = ("enosys", why)

    def name(self, nr: int) -> str:
        return NAMES.get(nr, f"syscall_{nr}")

    def reason(self, nr: int) -> str:
        return self.levels.get(nr, ("enosys", ""))[1]

    def rows(self) -> list[tuple[int, str, str, str]]:
        out = []
        for nr in sorted(NAMES):
            level, note = self.levels.get(nr, ("enosys", "not implemented yet"))
            out.append((nr, NAMES[nr], level, note))
        return out
