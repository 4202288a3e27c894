"""System information and control: uname, sysinfo, rusage, prctl, reboot, scheduling."""
from __future__ import annotations

import errno
import struct

from usermode import __version__
from usermode.kernel.errors import Errno, s32
from usermode.kernel.task import Task

RELEASE = b"6.1.0-usermode"
VERSION = b"#1 usermode " + __version__.encode()
MACHINE = b"x86_64"
PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_SET_NAME, PR_GET_NAME, PR_GET_SECCOMP, PR_SET_SECCOMP, PR_CAPBSET_READ = 15, 16, 21, 22, 23
PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 36, 37, 38, 39
PR_SET_TIMERSLACK, PR_GET_TIMERSLACK, PR_SET_THP_DISABLE, PR_GET_THP_DISABLE = 29, 30, 41, 42
PR_SET_VMA = 0x53564D41
LINUX_REBOOT_MAGIC1 = 0xFEE1DEAD
LINUX_REBOOT_MAGIC2S = (672274793, 85072278, 369367448, 537993216)
RB_RESTART, RB_HALT, RB_POWER_OFF = 0x01234567, 0xCDEF0123, 0x4321FEDC
RB_CAD_ON, RB_CAD_OFF, RB_RESTART2 = 0x89ABCDEF, 0x00000000, 0xA1B2C3D4


def _field(s: bytes) -> bytes:
    return s[:64].ljust(65, b"\0")


def sys_uname(t: Task, buf: int) -> int:
    """uname(2): a UML-like Linux version."""
    k = t.kernel
    data = b"".join(_field(x) for x in (b"Linux", k.hostname, RELEASE, VERSION, MACHINE,
                                        k.domainname))
    t.mm.copy_out(buf, data)
    return 0


def _setname(t: Task, name: int, length: int, attr: str) -> int:
    length = s32(length)
    if not t.creds.is_root:
        raise Errno(errno.EPERM)
    if length < 0 or length > 64:
        raise Errno(errno.EINVAL)
    setattr(t.kernel, attr, t.mm.copy_in(name, length))
    return 0


def sys_sethostname(t: Task, name: int, length: int) -> int:
    """sethostname(2)"""
    return _setname(t, name, length, "hostname")


def sys_setdomainname(t: Task, name: int, length: int) -> int:
    """setdomainname(2)"""
    return _setname(t, name, length, "domainname")


def sys_sysinfo(t: Task, info: int) -> int:
    """sysinfo(2): the guest's memory (mem=) and its own process count."""
    k = t.kernel
    uptime = int(k.clock.monotonic() - k.start_monotonic)
    total = k.mem_bytes
    used = k.mem_used()
    nprocs = sum(1 for p in k.procs.values() if not p.zombie)
    data = struct.pack("<q3Q6QH6x2QI", uptime, 0, 0, 0, total, max(total - used, 0), 0, 0,
                       0, 0, min(nprocs, 0xFFFF), 0, 0, 1)
    t.mm.copy_out(info, data.ljust(112, b"\0"))
    return 0


def process_times(p, thread=None) -> tuple[float, float]:
    """CPU time of a process (or one thread): host accounting of its live threads plus
    what its exited threads used."""
    from usermode.host.platform import cpu_times
    if thread is not None:
        return cpu_times(thread.host_tid)
    u, s = p.utime, p.stime
    for th in p.alive_threads():
        tu, ts_ = cpu_times(th.host_tid)
        u, s = u + tu, s + ts_
    return u, s


def pack_rusage(u: float, s: float, maxrss: int) -> bytes:
    def tv(x: float) -> bytes:
        return struct.pack("<qq", int(x), int((x - int(x)) * 1e6))
    return tv(u) + tv(s) + struct.pack("<14q", maxrss, *([0] * 13))


def sys_getrusage(t: Task, who: int, usage: int) -> int:
    """getrusage(2): CPU time and max RSS from the host's accounting of guest tasks."""
    who = s32(who)
    p = t.process
    if who in (0, 1):                       # the live peak: exited threads left p.maxrss
        u, s = process_times(p) if who == 0 else process_times(p, t)
        data = pack_rusage(u, s, max(p.maxrss, t.kernel.platform.hwm_kb(t.host_tid)))
    elif who == -1:
        data = pack_rusage(p.cutime, p.cstime, p.cmaxrss)
    else:
        raise Errno(errno.EINVAL)
    t.mm.copy_out(usage, data)
    return 0


def sys_times(t: Task, buf: int) -> int:
    """times(2)"""
    p = t.process
    if buf:
        u, s = process_times(p)
        t.mm.copy_out(buf, struct.pack("<4q", int(u * 100), int(s * 100), int(p.cutime * 100),
                                       int(p.cstime * 100)))
    k = t.kernel
    return int((k.clock.monotonic() - k.start_monotonic) * 100)


def sys_syslog(t: Task, kind: int, buf: int, length: int) -> int:
    """syslog(2): the kernel log buffer (what the boot printed)."""
    kind, length = s32(kind), s32(length)
    log = t.kernel.dmesg()
    if kind in (2, 3, 4):
        if length < 0:
            raise Errno(errno.EINVAL)
        data = log[-length:] if length else b""
        t.mm.copy_out(buf, data)
        return len(data)
    if kind == 10:
        return 1 << 17
    if kind == 9:
        return len(log)
    if kind in (0, 1, 5, 6, 7, 8):
        return 0
    raise Errno(errno.EINVAL)


def sys_reboot(t: Task, magic1: int, magic2: int, cmd: int, arg: int) -> int:
    """reboot(2): halt, power off or restart the whole machine."""
    if not t.creds.is_root:
        raise Errno(errno.EPERM)
    if magic1 & 0xFFFFFFFF != LINUX_REBOOT_MAGIC1 or magic2 & 0xFFFFFFFF not in LINUX_REBOOT_MAGIC2S:
        raise Errno(errno.EINVAL)
    cmd &= 0xFFFFFFFF
    k = t.kernel
    if cmd in (RB_CAD_ON, RB_CAD_OFF):
        k.cad_enabled = cmd == RB_CAD_ON
        return 0
    if cmd in (RB_HALT, RB_POWER_OFF):
        k.printk("reboot: System halted" if cmd == RB_HALT else "reboot: Power down")
        k.halt(0, "halt" if cmd == RB_HALT else "poweroff")
        return 0
    if cmd in (RB_RESTART, RB_RESTART2):
        k.printk("reboot: Restarting system")
        k.halt(0, "reboot")
        return 0
    raise Errno(errno.EINVAL)


def sys_personality(t: Task, persona: int) -> int:
    """personality(2)"""
    persona &= 0xFFFFFFFF
    old = t.process.personality
    if persona != 0xFFFFFFFF:
        t.process.personality = persona
    return old


def sys_prctl(t: Task, option: int, a2: int, a3: int, a4: int, a5: int) -> int:
    """prctl(2)"""
    option = s32(option)
    p = t.process
    if option == PR_SET_NAME:
        name = t.mm.read_cstr(a2, 4096)[:15]
        t.comm = name
        if t.tid == p.pid:
            p.comm = name
        return 0
    if option == PR_GET_NAME:
        t.mm.copy_out(a2, t.comm[:15].ljust(16, b"\0"))
        return 0
    if option == PR_SET_PDEATHSIG:
        if not 0 <= a2 <= 64:
            raise Errno(errno.EINVAL)
        p.pdeath_signal = a2
        return 0
    if option == PR_GET_PDEATHSIG:
        t.mm.write_i32(a2, p.pdeath_signal)
        return 0
    if option == PR_GET_DUMPABLE:
        return 1
    if option == PR_SET_DUMPABLE:
        if a2 not in (0, 1):
            raise Errno(errno.EINVAL)
        return 0
    if option == PR_SET_CHILD_SUBREAPER:
        p.subreaper = bool(a2)
        return 0
    if option == PR_GET_CHILD_SUBREAPER:
        t.mm.write_i32(a2, int(p.subreaper))
        return 0
    if option == PR_SET_NO_NEW_PRIVS:
        if a2 != 1 or a3 or a4 or a5:
            raise Errno(errno.EINVAL)
        p.no_new_privs = True
        return 0
    if option == PR_GET_NO_NEW_PRIVS:
        return int(getattr(p, "no_new_privs", False))
    if option == PR_GET_SECCOMP:
        return 0
    if option == PR_SET_SECCOMP:
        raise Errno(errno.EINVAL)
    if option == PR_CAPBSET_READ:
        if not 0 <= a2 <= 40:
            raise Errno(errno.EINVAL)
        return 1
    if option in (PR_GET_TIMERSLACK,):
        return 50000
    if option in (PR_SET_TIMERSLACK, PR_SET_THP_DISABLE, PR_SET_VMA):
        return 0
    if option == PR_GET_THP_DISABLE:
        return 0
    raise Errno(errno.EINVAL)


def sys_getpriority(t: Task, which: int, who: int) -> int:
    """getpriority(2): returns 20 - nice, as the raw syscall does."""
    which, who = s32(which), s32(who)
    if which not in (0, 1, 2):
        raise Errno(errno.EINVAL)
    if which == 0:
        proc = t.process if who == 0 else t.kernel.procs.get(who)
        if proc is None:
            raise Errno(errno.ESRCH)
        return 20 - proc.nice
    return 20 - t.process.nice


def sys_setpriority(t: Task, which: int, who: int, prio: int) -> int:
    """setpriority(2): recorded per process (the host schedules all guest tasks alike)."""
    which, who, prio = s32(which), s32(who), s32(prio)
    if which not in (0, 1, 2):
        raise Errno(errno.EINVAL)
    prio = max(-20, min(19, prio))
    procs = [t.process if who == 0 else t.kernel.procs.get(who)] if which == 0 else [t.process]
    if not procs or procs[0] is None:
        raise Errno(errno.ESRCH)
    for proc in procs:
        if prio < proc.nice and not t.creds.is_root:
            raise Errno(errno.EACCES)
        proc.nice = prio
    return 0


IOPRIO_CLASS_RT = 1


def _ioprio_targets(t: Task, which: int, who: int) -> list:
    """ioprio_set/get(2) targets: a task's process, a process group, or a user's processes
    (0 names the caller's own), recorded per process."""
    k = t.kernel
    live = [p for p in k.procs.values() if not p.zombie]
    if which == 1:                                       # IOPRIO_WHO_PROCESS
        th = t if who == 0 else k.threads.get(who)
        procs = [th.process] if th is not None and not th.process.zombie else []
    elif which == 2:                                     # IOPRIO_WHO_PGRP
        procs = [p for p in live if p.pgid == (who or t.process.pgid)]
    elif which == 3:                                     # IOPRIO_WHO_USER
        procs = [p for p in live if p.creds.uid == (who or t.creds.uid)]
    else:
        raise Errno(errno.EINVAL)
    if not procs:
        raise Errno(errno.ESRCH)
    return procs


def sys_ioprio_get(t: Task, which: int, who: int) -> int:
    """ioprio_get(2): the best (lowest) recorded priority among the targets."""
    return min(p.ioprio for p in _ioprio_targets(t, s32(which), s32(who)))


def sys_ioprio_set(t: Task, which: int, who: int, ioprio: int) -> int:
    """ioprio_set(2): checked as Linux checks it and recorded; the host does the I/O."""
    ioprio = s32(ioprio)
    cls, data = ioprio >> 13, ioprio & 0x1FFF
    if cls == IOPRIO_CLASS_RT and not t.creds.is_root:  # before the level, as Linux
        raise Errno(errno.EPERM)
    if cls not in range(4) or (cls in (1, 2) and data >= 8) or (cls == 0 and data):
        raise Errno(errno.EINVAL)
    procs = _ioprio_targets(t, s32(which), s32(who))
    for p in procs:
        if not t.creds.is_root and p.creds.uid != t.creds.euid:
            raise Errno(errno.EPERM)
    for p in procs:
        p.ioprio = ioprio
    return 0


def _sched_target(t: Task, pid: int) -> None:
    pid = s32(pid)
    if pid < 0:
        raise Errno(errno.EINVAL)
    if pid and pid not in t.kernel.threads:
        raise Errno(errno.ESRCH)


def sys_sched_getscheduler(t: Task, pid: int) -> int:
    """sched_getscheduler(2): every guest task is SCHED_OTHER."""
    _sched_target(t, pid)
    return 0


def sys_sched_getparam(t: Task, pid: int, param: int) -> int:
    """sched_getparam(2)"""
    _sched_target(t, pid)
    t.mm.write_i32(param, 0)
    return 0


def sys_sched_setscheduler(t: Task, pid: int, policy: int, param: int) -> int:
    """sched_setscheduler(2): only SCHED_OTHER/BATCH/IDLE with priority 0."""
    _sched_target(t, pid)
    prio = t.mm.read_i32(param)
    if s32(policy) & ~0x40000000 not in (0, 3, 5) or prio != 0:
        raise Errno(errno.EINVAL if s32(policy) not in (1, 2) else errno.EPERM)
    return 0


def sys_sched_get_priority_max(t: Task, policy: int) -> int:
    """sched_get_priority_max(2)"""
    policy = s32(policy)
    if policy in (1, 2):
        return 99
    if policy in (0, 3, 5, 6):
        return 0
    raise Errno(errno.EINVAL)


def sys_sched_get_priority_min(t: Task, policy: int) -> int:
    """sched_get_priority_min(2)"""
    policy = s32(policy)
    if policy in (1, 2):
        return 1
    if policy in (0, 3, 5, 6):
        return 0
    raise Errno(errno.EINVAL)


def _affinity_task(t: Task, pid: int) -> Task:
    _sched_target(t, pid)
    return t.kernel.threads[s32(pid)] if s32(pid) else t


def sys_sched_getaffinity(t: Task, pid: int, size: int, mask: int) -> int:
    """sched_getaffinity(2): a mask of the guest's CPUs 0..ncpus-1 (nproc and
    sysconf(_SC_NPROCESSORS_ONLN) must agree), not the host's."""
    target = _affinity_task(t, pid)
    if s32(size) < 8 or size % 8:
        raise Errno(errno.EINVAL)
    t.mm.copy_out(mask, target.cpu_mask.to_bytes(8, "little"))
    return 8


def sys_sched_setaffinity(t: Task, pid: int, size: int, mask: int) -> int:
    """sched_setaffinity(2): guest CPU i is the instance's host CPU i, so a task confined
    to guest CPUs is confined to those host CPUs; it can never leave the instance's."""
    target = _affinity_task(t, pid)
    raw = t.mm.copy_in(mask, min(s32(size) & 0xFFFF, 8)) if s32(size) > 0 else b""
    want = int.from_bytes(raw, "little") & ((1 << t.kernel.ncpus) - 1)
    if not want:
        raise Errno(errno.EINVAL)
    if target.creds.uid != t.creds.euid and target.creds.euid != t.creds.euid and \
            t.creds.euid != 0:
        raise Errno(errno.EPERM)
    host = t.kernel.host_cpus
    if host:
        chosen = sorted({host[i % len(host)] for i in range(t.kernel.ncpus) if want >> i & 1})
        t.kernel.platform.set_affinity(chosen, target.host_tid)
    target.cpu_mask = want
    return 0


def sys_sched_rr_get_interval(t: Task, pid: int, ts_: int) -> int:
    """sched_rr_get_interval(2)"""
    _sched_target(t, pid)
    t.mm.copy_out(ts_, struct.pack("<qq", 0, 100_000_000))
    return 0


SYSCALLS = [
    ("uname", sys_uname, "supported", ""),
    ("sethostname", sys_sethostname, "supported", ""),
    ("setdomainname", sys_setdomainname, "supported", ""),
    ("sysinfo", sys_sysinfo, "supported", ""),
    ("getrusage", sys_getrusage, "partial", "CPU time and maxrss; fault and I/O counts are 0"),
    ("times", sys_times, "supported", ""),
    ("syslog", sys_syslog, "supported", ""),
    ("reboot", sys_reboot, "supported", ""),
    ("personality", sys_personality, "partial", "recorded, not applied"),
    ("prctl", sys_prctl, "partial", "names, pdeathsig, subreaper, no_new_privs; no seccomp"),
    ("getpriority", sys_getpriority, "supported", ""),
    ("setpriority", sys_setpriority, "partial", "recorded; the host schedules"),
    ("ioprio_get", sys_ioprio_get, "partial", "per process, as recorded"),
    ("ioprio_set", sys_ioprio_set, "partial", "checked and recorded; the host does the I/O"),
    ("sched_getscheduler", sys_sched_getscheduler, "supported", ""),
    ("sched_getparam", sys_sched_getparam, "supported", ""),
    ("sched_setscheduler", sys_sched_setscheduler, "partial", "SCHED_OTHER only"),
    ("sched_get_priority_max", sys_sched_get_priority_max, "supported", ""),
    ("sched_get_priority_min", sys_sched_get_priority_min, "supported", ""),
    ("sched_getaffinity", sys_sched_getaffinity, "supported", "CPUs 0..ncpus-1"),
    ("sched_setaffinity", sys_sched_setaffinity, "supported", "guest CPU i = the instance's host CPU i"),
    ("sched_rr_get_interval", sys_sched_rr_get_interval, "supported", ""),
]
