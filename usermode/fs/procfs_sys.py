"""/proc/sys: the sysctls programs read (and a few they write), as Linux 6.1 prints them.

Values the kernel owns (hostname, domainname) are read from and written to it; tunables we
do not act on are remembered so a write reads back, as on a real system. Files are owned
by root with Linux's modes, so the VFS' permission check refuses writes by other users.
"""
from __future__ import annotations

import errno
import secrets
from typing import TYPE_CHECKING, Callable

from usermode.fs.procfs_base import Dir, GenFile, PseudoFS, Render, const, proc_state, uuid_text
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.kernel.task import Task

PID_MAX = 32768
NR_OPEN = 1 << 20


def file_max(kernel) -> int:
    """files_maxfiles_init: a tenth of memory in KiB, at least NR_FILE (8192)."""
    return max((kernel.mem_bytes >> 10) // 10, 8192)


def build_sys(fs: PseudoFS) -> Dir:
    k = fs.kernel
    state = proc_state(k)
    from usermode.kernel.syscalls.sys_info import RELEASE, VERSION   # one source for uname
    tunables: dict[str, bytes] = {}

    def kernel_attr(attr: str) -> tuple[Render, Callable[["Task | None", bytes], None]]:
        def write(t: "Task | None", data: bytes) -> None:
            value = data.rstrip(b"\n")
            if len(value) > 64:
                raise Errno(errno.EINVAL)
            setattr(k, attr, value)
        return (lambda t: getattr(k, attr) + b"\n"), write

    def tunable(path: str, initial: str) -> tuple[Render, Callable[["Task | None", bytes], None]]:
        tunables[path] = initial.encode() + b"\n"

        def write(t: "Task | None", data: bytes) -> None:
            if path != "vm/drop_caches":
                tunables[path] = data.strip() + b"\n"
        return (lambda t: tunables[path]), write

    def file_nr(t: "Task | None") -> bytes:
        n = sum(len(th.files) for p in k.procs.values() for th in p.threads[:1]
                if th.files is not None)
        return b"%d\t0\t%d\n" % (n, file_max(k))

    ro: dict[str, Render] = {
        "kernel/ostype": const("Linux\n"), "kernel/osrelease": const(RELEASE + b"\n"),
        "kernel/version": const(VERSION + b"\n"), "kernel/ngroups_max": const("65536\n"),
        "kernel/cap_last_cap": const("40\n"), "kernel/random/boot_id":
            lambda t: state.boot_id.encode() + b"\n",
        "kernel/random/uuid": lambda t: uuid_text(secrets.token_bytes(16)).encode() + b"\n",
        "kernel/random/entropy_avail": const("256\n"), "kernel/random/poolsize": const("256\n"),
        # set_max_threads: an eighth of memory in 16 KiB kernel stacks
        "kernel/threads-max": const(b"%d\n" % max(k.mem_bytes // (8 * 16384), 20)),
        "kernel/tainted": const("0\n"), "fs/file-nr": file_nr,
        "fs/file-max": lambda t: b"%d\n" % file_max(k),
    }
    rw: dict[str, tuple[Render, Callable[["Task | None", bytes], None]]] = {
        "kernel/hostname": kernel_attr("hostname"),
        "kernel/domainname": kernel_attr("domainname"),
    }
    for path, initial in (
            ("kernel/pid_max", str(PID_MAX)), ("kernel/printk", "4\t4\t1\t7"),
            ("kernel/randomize_va_space", "2"), ("kernel/panic", "0"),
            ("kernel/core_pattern", "core"), ("kernel/dmesg_restrict", "0"),
            ("kernel/kptr_restrict", "0"), ("kernel/sysrq", "438"),
            ("kernel/overflowuid", "65534"), ("kernel/overflowgid", "65534"),
            ("kernel/shmmax", "18446744073692774399"), ("kernel/shmall", "18446744073692774399"),
            ("kernel/shmmni", "4096"), ("kernel/sem", "32000\t1024000000\t500\t32000"),
            ("kernel/msgmax", "8192"), ("kernel/msgmnb", "16384"), ("kernel/msgmni", "32000"),
            ("vm/overcommit_memory", "0"), ("vm/overcommit_ratio", "50"),
            ("vm/overcommit_kbytes", "0"), ("vm/max_map_count", "65530"),
            ("vm/swappiness", "60"), ("vm/min_free_kbytes", "1024"),
            ("vm/dirty_ratio", "20"), ("vm/dirty_background_ratio", "10"),
            ("vm/page-cluster", "3"), ("vm/drop_caches", "0"),
            ("fs/nr_open", str(NR_OPEN)), ("fs/pipe-max-size", "1048576"),
            ("fs/protected_symlinks", "1"), ("fs/protected_hardlinks", "1"),
            ("fs/inotify/max_user_watches", "8192"), ("fs/inotify/max_user_instances", "128"),
            ("fs/inotify/max_queued_events", "16384"), ("net/core/somaxconn", "4096")):
        rw[path] = tunable(path, initial)

    root = Dir(fs)
    for sub in ("debug", "dev", "fs", "kernel", "net", "user", "vm"):
        root.add(sub, Dir(fs))

    def place(path: str, node: GenFile) -> None:
        d = root
        *dirs, name = path.split("/")
        for part in dirs:
            nxt = d.entries.get(part.encode())
            if nxt is None:
                nxt = d.add(part, Dir(fs))
            assert isinstance(nxt, Dir)
            d = nxt
        d.add(name, node)

    for path, render in ro.items():
        place(path, GenFile(fs, render, 0o444))
    for path, (render, write) in rw.items():
        place(path, GenFile(fs, render, 0o200 if path == "vm/drop_caches" else 0o644, write))
    return root
