"""The formats of /proc/<pid>/{stat,status,statm,maps,limits,io} (Linux 6.1 fs/proc/array.c,
task_mmu.c, base.c), rendered from our Process/Task plus the host's numbers for the task.

Who reads matters: address fields of stat are hidden (1/1/0...) unless the reader may
ptrace the target, as Linux does. Memory and CPU counters come from the host task (it is
the real thing); names, ids, states, credentials and mappings come from our kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from usermode.kernel import task as ts

if TYPE_CHECKING:
    from usermode.host.procinfo import HostInfo, HostMap
    from usermode.kernel.mm import Mapping
    from usermode.kernel.task import Process, Task

PAGE = 4096
HZ = 100                                  # USER_HZ: clock ticks in stat
PROT_WRITE, PROT_EXEC = 2, 4
PF_EXITING, PF_FORKNOEXEC, PF_RANDOMIZE = 0x4, 0x40, 0x400000
CAP_FULL = (1 << 41) - 1                  # CAP_LAST_CAP 40 in 6.1
RLIM_INF = (1 << 64) - 1
STATES = {"R": "R (running)", "S": "S (sleeping)", "D": "D (disk sleep)",
          "T": "T (stopped)", "t": "t (tracing stop)", "X": "X (dead)", "Z": "Z (zombie)"}
LIMITS = (("Max cpu time", "seconds"), ("Max file size", "bytes"), ("Max data size", "bytes"),
          ("Max stack size", "bytes"), ("Max core file size", "bytes"),
          ("Max resident set", "bytes"), ("Max processes", "processes"),
          ("Max open files", "files"), ("Max locked memory", "bytes"),
          ("Max address space", "bytes"), ("Max file locks", "locks"),
          ("Max pending signals", "signals"), ("Max msgqueue size", "bytes"),
          ("Max nice priority", ""), ("Max realtime priority", ""),
          ("Max realtime timeout", "us"))
MEMS_ALLOWED = ",".join(["00000000"] * 31 + ["00000001"])    # MAX_NUMNODES 1024, node 0


# -- who and what
def live_thread(proc: "Process") -> "Task | None":
    """A thread still backed by a host task (the leader may have exited before the rest)."""
    if proc.zombie:
        return None
    for t in proc.threads:
        if t.state != ts.DEAD:
            return t
    return None


def may_ptrace(reader: "Task | None", proc: "Process") -> bool:
    """ptrace_may_access(PTRACE_MODE_READ_FSCREDS): same process, root, or a reader whose
    fsuid/fsgid match all of the target's real, effective and saved ids."""
    if reader is None or reader.process is proc:
        return True
    c, tc = reader.creds, proc.creds
    if c.euid == 0:
        return True
    return (c.fsuid == tc.uid == tc.euid == tc.suid
            and c.fsgid == tc.gid == tc.egid == tc.sgid)


def state_letter(proc: "Process", t: "Task | None", host_state: str = "") -> str:
    if proc.zombie or t is None or t.state == ts.DEAD:
        return "Z"
    if t.state == ts.HELD or proc.stopped:
        return "T"
    if t.state == ts.PARKED:
        return "S"
    # resumed: in guest code, or blocked in a call the host runs natively (futex ...)
    if t.state == ts.RUNNING and host_state in ("S", "D"):
        return host_state
    return "R"


def tty_nr(proc: "Process") -> tuple[int, int]:
    """(tty_nr as new_encode_dev, foreground pgrp) of the controlling terminal."""
    tty = proc.ctty
    if tty is None:
        return 0, -1
    name = str(tty.name)
    major, minor = 5, 1                                        # console
    if name.startswith("pts/") and name[4:].isdigit():
        major, minor = 136, int(name[4:])
    elif name.startswith("ttyS") and name[4:].isdigit():
        major, minor = 4, 64 + int(name[4:])
    elif name.startswith("tty") and name[3:].isdigit():
        major, minor = 4, int(name[3:])
    dev = (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)
    return dev, tty.pgrp or -1


def sigsets(proc: "Process", host: dict[str, str]) -> tuple[int, int, int, int, int]:
    """(pending, shared pending, blocked, ignored, caught): the host task's masks while it
    lives; a zombie's dispositions from our records."""
    if host:
        return tuple(int(host.get(k, "0"), 16)       # type: ignore[return-value]
                     for k in ("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"))
    ign = cgt = 0
    for sig, act in proc.sigactions.items():
        if act[0] == 1:
            ign |= 1 << (sig - 1)
        elif act[0] > 1:
            cgt |= 1 << (sig - 1)
    return 0, 0, 0, ign, cgt


def rlimit(proc: "Process", res: int) -> tuple[int, int]:
    from usermode.kernel.syscalls.sys_cred import RLIMIT_DEFAULTS   # the one table of defaults
    return proc.rlimits.get(res, RLIMIT_DEFAULTS.get(res, (RLIM_INF, RLIM_INF)))


# -- maps
@dataclass(slots=True)
class VMA:
    start: int
    end: int
    perms: str
    offset: int = 0
    name: str = ""
    dev: tuple[int, int] = (0, 0)
    ino: int = 0


def guest_maps(host: Sequence["HostMap"], known: Sequence["Mapping"], brk_start: int,
               brk: int) -> list[VMA]:
    """The guest's view of its address space: the host's mappings (the real extent and
    permissions), split and named where our kernel recorded what it mapped there. Guest
    file mappings are anonymous on the host, so the host's names are never used for
    them; the host's special names are kept unless ours say otherwise ([stack])."""
    named = sorted((m for m in known if m.name), key=lambda m: m.start)
    ours_stack = any(m.name == "[stack]" for m in named)
    heap_end = (brk + PAGE - 1) & ~(PAGE - 1)
    out: list[VMA] = []
    for h in host:
        pos = h.start
        for m in named:
            if m.end <= pos or m.start >= h.end:
                continue
            if m.start > pos:
                out.append(_anon(h, pos, m.start, ours_stack, brk_start, heap_end))
            lo, hi = max(m.start, pos), min(m.end, h.end)
            off = 0 if m.name.startswith("[") else m.offset + (lo - m.start)
            out.append(VMA(lo, hi, h.perms, off, m.name))
            pos = hi
        if pos < h.end:
            out.append(_anon(h, pos, h.end, ours_stack, brk_start, heap_end))
    return out


def _anon(h: "HostMap", lo: int, hi: int, ours_stack: bool, brk_start: int,
          heap_end: int) -> VMA:
    name = h.name
    if name == "[stack]" and ours_stack:
        name = ""                       # the stub's host stack: the guest's is recorded
    if not name and brk_start and brk_start <= lo and hi <= heap_end:
        name = "[heap]"
    return VMA(lo, hi, h.perms, h.offset if name else 0, name)


def render_maps(vmas: Sequence[VMA]) -> bytes:
    lines = []
    for v in vmas:
        head = (f"{v.start:08x}-{v.end:08x} {v.perms} {v.offset:08x} "
                f"{v.dev[0]:02x}:{v.dev[1]:02x} {v.ino} ")
        lines.append(head.ljust(73) + v.name if v.name else head)
    return "".join(line + "\n" for line in lines).encode(errors="surrogateescape")


def vm_sizes(vmas: Sequence[VMA], exe: str) -> dict[str, int]:
    """VmData/VmStk/VmExe/VmLib in bytes, by Linux's rules (data: private writable, not
    stack; exe/lib: executable, not writable)."""
    data = stk = exe_b = lib = 0
    code = [v for v in vmas if exe and v.name == exe and "x" in v.perms]
    code_ids = {id(v) for v in code}
    for v in vmas:
        size = v.end - v.start
        if v.name == "[stack]":
            stk += size
        elif "w" in v.perms and v.perms[3] == "p":
            data += size
        if "x" in v.perms and "w" not in v.perms and v.name not in ("[stack]", "[vsyscall]"):
            if id(v) in code_ids:
                exe_b += size
            else:
                lib += size
    return {"VmData": data, "VmStk": stk, "VmExe": exe_b, "VmLib": lib}


def code_range(known: Sequence["Mapping"], exe: str) -> tuple[int, int]:
    """start_code/end_code: the executable's text, from what exec mapped."""
    code = [m for m in known if exe and m.name == exe and m.prot & PROT_EXEC]
    return (min(m.start for m in code), max(m.end for m in code)) if code else (0, 0)


# -- stat, status, statm
def _hint(host: dict[str, str], key: str) -> int:
    """A "1234 kB" or plain number field of the host's status."""
    v = host.get(key, "0").split()
    return int(v[0]) if v and v[0].isdigit() else 0


def render_stat(k, hi: "HostInfo", proc: "Process", t: "Task | None", whole: bool,
                reader: "Task | None") -> bytes:
    """One line of 52 fields. t is the task the entry names (the leader for /proc/<pid>)."""
    live = (t if t is not None and t.state != ts.DEAD else None) if not whole \
        else live_thread(proc)
    hs = hi.stat(live.host_tid, thread=not whole) if live is not None else []
    h = (lambda i: int(hs[i]) if len(hs) > i else 0)
    permitted = may_ptrace(reader, proc)
    mm = proc.mm if not proc.zombie else None
    tty, tpgid = tty_nr(proc)
    flags = PF_RANDOMIZE | (0 if proc.exe_execd else PF_FORKNOEXEC) | \
        (PF_EXITING if proc.zombie else 0)
    hst = hi.status(live.host_tid) if live is not None else {}
    pnd, shd, blk, ign, cgt = sigsets(proc, hst)
    nthreads = max(1, len(proc.alive_threads()))
    code = code_range(mm.mappings, proc.exe) if mm is not None else (0, 0)
    start = int((proc.start_time - k.start_monotonic) * HZ)
    sleeping = state_letter(proc, t, hs[0] if hs else "") in "SD"
    tid = t.tid if t is not None and not whole else proc.pid
    comm = (t.comm if t is not None and t.comm else proc.comm)
    # a live task's times are the host's; a zombie's were collected when its threads ended
    utime, stime = (h(11), h(12)) if hs else (ticks(proc.utime), ticks(proc.stime))
    fields = [
        proc.parent.pid if proc.parent is not None else 0, proc.pgid, proc.sid, tty, tpgid,
        flags, h(7), h(8), h(9), h(10), utime, stime, ticks(proc.cutime),
        ticks(proc.cstime), 20 + proc.nice, proc.nice,
        nthreads, 0, start, h(20) if mm else 0, h(21) if mm else 0, rlimit(proc, 5)[0],
        (code[0] if permitted else 1) if mm else 0,
        (code[1] if permitted else 1) if mm else 0,
        mm.stack_top if mm and permitted else 0, 0, 0,
        (pnd | shd) & 0x7FFFFFFF, blk & 0x7FFFFFFF, ign & 0x7FFFFFFF, cgt & 0x7FFFFFFF,
        int(sleeping and permitted and (not whole or nthreads < 2)), 0, 0,
        proc.exit_signal, h(36), 0, 0, h(39), 0, 0]
    if mm is not None and permitted:
        fields += [0, 0, mm.brk_start, mm.arg_start, mm.arg_end, mm.env_start, mm.env_end]
    else:
        fields += [0] * 7
    fields.append(proc.exit_status if proc.zombie and permitted else 0)
    head = b"%d (%s) %s " % (tid, comm, state_letter(proc, t, hs[0] if hs else "").encode())
    return head + " ".join(str(x) for x in fields).encode() + b"\n"


def fd_size(max_fd: int) -> int:
    """FDSize: the fd table grows from 64 slots to 128 * a power of two (expand_files)."""
    if max_fd < 64:
        return 64
    return 128 * (1 << (max_fd // 128).bit_length())


def ticks(seconds: float) -> int:
    """The kernel's CPU times (seconds) in USER_HZ clock ticks."""
    return int(seconds * HZ)


def escape_comm(comm: bytes) -> bytes:
    """status' Name: escapes backslash and newline (seq_escape_str with "\\n\\\\")."""
    return comm.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")


def bitmap_hex(mask: int, nbits: int) -> str:
    """A cpumask of nbits CPUs in the %*pb format (32-bit groups, commas)."""
    text = f"{mask:x}"
    digits = (nbits + 3) // 4
    text = text.rjust(digits, "0")
    groups = []
    while text:
        groups.insert(0, text[-8:])
        text = text[:-8]
    return ",".join(groups)


def bitmap_list(mask: int) -> str:
    """The %*pbl format: "0", "0-3", "0,2"."""
    bits = [i for i in range(mask.bit_length()) if mask >> i & 1]
    runs: list[str] = []
    for i in bits:
        if runs and i - 1 in bits:
            lo = runs[-1].split("-")[0]
            runs[-1] = f"{lo}-{i}"
        else:
            runs.append(str(i))
    return ",".join(runs)


def render_status(k, hi: "HostInfo", proc: "Process", t: "Task | None", whole: bool,
                  vmas: Sequence[VMA]) -> bytes:
    live = live_thread(proc) if whole else (t if t is not None and t.state != ts.DEAD else None)
    hst = hi.status(live.host_tid) if live is not None else {}
    hs = hi.stat(live.host_tid, thread=not whole) if live is not None else []
    c = proc.creds
    task = t if t is not None else live
    comm = (task.comm if task is not None and task.comm else proc.comm)
    tid = t.tid if t is not None and not whole else proc.pid
    out = [b"Name:\t" + escape_comm(comm)]
    fs = task.fs if task is not None and not proc.zombie else None
    if fs is not None:
        out.append(b"Umask:\t%04o" % fs.umask)
    ppid = proc.parent.pid if proc.parent is not None else 0
    files = live.files if live is not None else None
    fdsize = 0 if files is None else fd_size(max((fd for fd, _ in files), default=0))
    cpus = task.cpu_mask if task is not None else (1 << k.ncpus) - 1
    lines = [
        f"State:\t{STATES[state_letter(proc, t, hs[0] if hs else '')]}",
        f"Tgid:\t{proc.pid}", "Ngid:\t0", f"Pid:\t{tid}", f"PPid:\t{ppid}", "TracerPid:\t0",
        f"Uid:\t{c.uid}\t{c.euid}\t{c.suid}\t{c.fsuid}",
        f"Gid:\t{c.gid}\t{c.egid}\t{c.sgid}\t{c.fsgid}",
        f"FDSize:\t{fdsize}", "Groups:\t" + " ".join(str(g) for g in c.groups) + " ",
        f"NStgid:\t{proc.pid}", f"NSpid:\t{tid}", f"NSpgid:\t{proc.pgid}", f"NSsid:\t{proc.sid}"]
    if proc.mm is not None and not proc.zombie:
        sz = vm_sizes(vmas, proc.exe)
        vm = [("VmPeak", _hint(hst, "VmPeak")), ("VmSize", _hint(hst, "VmSize")),
              ("VmLck", _hint(hst, "VmLck")), ("VmPin", _hint(hst, "VmPin")),
              ("VmHWM", _hint(hst, "VmHWM")), ("VmRSS", _hint(hst, "VmRSS")),
              ("RssAnon", _hint(hst, "RssAnon")), ("RssFile", _hint(hst, "RssFile")),
              ("RssShmem", _hint(hst, "RssShmem")), ("VmData", sz["VmData"] >> 10),
              ("VmStk", sz["VmStk"] >> 10), ("VmExe", sz["VmExe"] >> 10),
              ("VmLib", sz["VmLib"] >> 10), ("VmPTE", _hint(hst, "VmPTE")),
              ("VmSwap", _hint(hst, "VmSwap")), ("HugetlbPages", 0)]
        lines += [f"{name}:\t{val:8d} kB" for name, val in vm]
        lines += ["CoreDumping:\t0", "THP_enabled:\t1"]
    pnd, shd, blk, ign, cgt = sigsets(proc, hst)
    queued = bin(pnd | shd).count("1")      # the host's SigQ counts every host process
    root = c.euid == 0
    eff = CAP_FULL if root else 0
    lines += [f"Threads:\t{max(1, len(proc.alive_threads()))}",
              f"SigQ:\t{queued}/{rlimit(proc, 11)[0]}",
              f"SigPnd:\t{pnd:016x}", f"ShdPnd:\t{shd:016x}", f"SigBlk:\t{blk:016x}",
              f"SigIgn:\t{ign:016x}", f"SigCgt:\t{cgt:016x}",
              "CapInh:\t0000000000000000", f"CapPrm:\t{eff:016x}", f"CapEff:\t{eff:016x}",
              f"CapBnd:\t{CAP_FULL:016x}", "CapAmb:\t0000000000000000",
              f"NoNewPrivs:\t{int(bool(getattr(proc, 'no_new_privs', False)))}",
              "Seccomp:\t0", "Seccomp_filters:\t0",
              "Speculation_Store_Bypass:\tthread vulnerable",
              "SpeculationIndirectBranch:\tconditional enabled",
              f"Cpus_allowed:\t{bitmap_hex(cpus, k.ncpus)}",
              f"Cpus_allowed_list:\t{bitmap_list(cpus)}",
              f"Mems_allowed:\t{MEMS_ALLOWED}", "Mems_allowed_list:\t0",
              f"voluntary_ctxt_switches:\t{_hint(hst, 'voluntary_ctxt_switches')}",
              f"nonvoluntary_ctxt_switches:\t{_hint(hst, 'nonvoluntary_ctxt_switches')}"]
    out += [s.encode() for s in lines]
    return b"\n".join(out) + b"\n"


def render_statm(hi: "HostInfo", proc: "Process", vmas: Sequence[VMA]) -> bytes:
    """size resident shared text lib data dt, in pages."""
    live = live_thread(proc)
    if live is None or proc.mm is None:
        return b"0 0 0 0 0 0 0\n"
    hm = hi.statm(live.host_tid) + [0] * 7
    sz = vm_sizes(vmas, proc.exe)
    return b"%d %d %d %d 0 %d 0\n" % (hm[0], hm[1], hm[2], sz["VmExe"] // PAGE,
                                      (sz["VmData"] + sz["VmStk"]) // PAGE)


def render_limits(proc: "Process") -> bytes:
    def val(v: int) -> str:
        return "unlimited" if v == RLIM_INF else str(v)
    out = [f"{'Limit':<25} {'Soft Limit':<20} {'Hard Limit':<20} {'Units':<10}\n"]
    for res, (name, unit) in enumerate(LIMITS):
        soft, hard = rlimit(proc, res)
        line = f"{name:<25} {val(soft):<20} {val(hard):<20} "
        out.append(line + (f"{unit:<10}\n" if unit else "\n"))
    return "".join(out).encode()


def render_io(proc: "Process") -> bytes:
    """Our kernel does the guest's file I/O, so the host's counters would be wrong; the
    kernel does not count yet (zeros, the format procps and iotop expect)."""
    keys = ("rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes",
            "cancelled_write_bytes")
    return "".join(f"{key}: 0\n" for key in keys).encode()
