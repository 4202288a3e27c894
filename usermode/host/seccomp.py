"""The seccomp filter every guest task runs under (installed before any guest code).

Default deny: a syscall either runs natively because it can only touch the caller's own
address space, threads or signal state (checked by argument where that matters), or it
stops in our kernel with SECCOMP_RET_TRACE. The 32-bit entry and x32 numbers are refused.
"""
from __future__ import annotations

import ctypes
import struct

from usermode.kernel.syscalls.numbers import NR

AUDIT_ARCH_X86_64 = 0xC000003E
X32_BIT = 0x40000000
RET_ALLOW = 0x7FFF0000
RET_TRACE = 0x7FF00000
RET_ERRNO = 0x00050000
ENOSYS = 38

_LD_W_ABS, _JEQ, _JGE, _JSET, _RET, _AND = 0x20, 0x15, 0x35, 0x45, 0x06, 0x54
OFF_NR, OFF_ARCH = 0, 4


def _arg(i: int) -> int:
    """Offset of the low 32 bits of seccomp_data.args[i]."""
    return 16 + 8 * i


def _arg_hi(i: int) -> int:
    """Offset of the high 32 bits of seccomp_data.args[i]."""
    return 20 + 8 * i


# Calls that only touch the caller's own memory, threads, signals or clocks.
NATIVE = [
    "mprotect", "msync", "mincore", "mlock", "munlock", "mlock2",
    "rt_sigreturn", "rt_sigprocmask", "sigaltstack", "rt_sigsuspend", "rt_sigpending",
    "pause", "nanosleep", "clock_nanosleep", "clock_gettime",
    "clock_getres", "gettimeofday", "time", "sched_yield", "getrandom", "membarrier",
    "rseq", "set_robust_list", "restart_syscall", "getcpu", "exit", "exit_group",
]
# mmap runs natively only when it is anonymous (MAP_ANONYMOUS in flags) and smaller than
# COMMIT_THRESHOLD; munmap and mremap run natively when their lengths are below it. Larger
# ones stop in the kernel, which accounts them against mem= (sys_mm.py). Small ones stay
# native for speed and are not accounted.
MAP_ANONYMOUS = 0x20
COMMIT_THRESHOLD = 1 << 20
# madvise advice values that only affect the caller's own pages.
SAFE_MADVISE = [0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 25]
# futex operations that are address-based (PI futexes name owners by host tid: trapped).
SAFE_FUTEX = [0, 1, 2, 3, 4, 5, 9, 10]
# arch_prctl: SET_GS, SET_FS, GET_FS, GET_GS
SAFE_ARCH_PRCTL = [0x1001, 0x1002, 0x1003, 0x1004]
# calls that are native when their first argument (a pid) is 0, i.e. the caller itself
# (not sched_get/setaffinity: the masks are the guest's CPUs, mapped onto the instance's)
SELF_PID_ZERO = ["sched_getparam", "sched_getscheduler"]


class _Asm:
    """A tiny BPF assembler with forward labels."""

    def __init__(self) -> None:
        self.ins: list[tuple[int, int, object, object]] = []

    def ld(self, off: int) -> None:
        self.ins.append((_LD_W_ABS, off, None, None))

    def jump(self, op: int, k: int, jt: object, jf: object) -> None:
        self.ins.append((op, k, jt, jf))

    def ret(self, k: int, label: str | None = None) -> None:
        self.ins.append((_RET, k, label, None))

    def label(self, name: str) -> None:
        self.ins.append((-1, 0, name, None))

    def assemble(self) -> bytes:
        where: dict[str, int] = {}
        n = 0
        for op, _, a, _ in self.ins:
            if op == -1:
                where[a] = n
            else:
                n += 1
        out = []
        i = 0
        for op, k, a, b in self.ins:
            if op == -1:
                continue

            def rel(t: object) -> int:
                if t is None:
                    return 0
                d = where[t] - i - 1 if isinstance(t, str) else t
                assert 0 <= d < 256, (t, d)
                return d
            if op in (_JEQ, _JGE, _JSET):
                out.append(struct.pack("<HBBI", op, rel(a), rel(b), k & 0xFFFFFFFF))
            else:
                out.append(struct.pack("<HBBI", op, 0, 0, k & 0xFFFFFFFF))
            i += 1
        return b"".join(out)


def _small_length(a: _Asm, i: int, small: str = "allow") -> None:
    """Go to `small` if the 64-bit args[i] is below COMMIT_THRESHOLD, else trace."""
    a.ld(_arg_hi(i))
    a.jump(_JEQ, 0, None, "trace")
    a.ld(_arg(i))
    a.jump(_JGE, COMMIT_THRESHOLD, "trace", small)


def build_filter() -> bytes:
    a = _Asm()
    a.ld(OFF_ARCH)
    a.jump(_JEQ, AUDIT_ARCH_X86_64, None, "enosys")
    a.ld(OFF_NR)
    a.jump(_JGE, X32_BIT, "enosys", None)
    for name in NATIVE:
        a.jump(_JEQ, NR[name], "allow", None)
    a.jump(_JEQ, NR["mmap"], None, "not_mmap")
    a.ld(_arg(3))
    a.jump(_JSET, MAP_ANONYMOUS, None, "trace")
    _small_length(a, 1)
    a.label("not_mmap")
    a.jump(_JEQ, NR["munmap"], None, "not_munmap")
    _small_length(a, 1)
    a.label("not_munmap")
    a.jump(_JEQ, NR["mremap"], None, "not_mremap")
    _small_length(a, 1, "mremap_new_len")
    a.label("mremap_new_len")
    _small_length(a, 2)
    a.label("not_mremap")
    a.jump(_JEQ, NR["madvise"], None, "not_madvise")
    a.ld(_arg(2))
    for adv in SAFE_MADVISE:
        a.jump(_JEQ, adv, "allow", None)
    a.ret(RET_TRACE)
    a.label("not_madvise")
    a.jump(_JEQ, NR["futex"], None, "not_futex")
    a.ld(_arg(1))
    a.ins.append((_AND, 0x7F, None, None))
    for op in SAFE_FUTEX:
        a.jump(_JEQ, op, "allow", None)
    a.ret(RET_TRACE)
    a.label("not_futex")
    a.jump(_JEQ, NR["arch_prctl"], None, "not_arch_prctl")
    a.ld(_arg(0))
    for code in SAFE_ARCH_PRCTL:
        a.jump(_JEQ, code, "allow", None)
    a.ret(RET_TRACE)
    a.label("not_arch_prctl")
    for name in SELF_PID_ZERO:
        a.jump(_JEQ, NR[name], None, "next_" + name)
        a.ld(_arg(0))
        a.jump(_JEQ, 0, "allow", "trace")
        a.label("next_" + name)
    a.label("trace")
    a.ret(RET_TRACE)
    a.label("allow")
    a.ret(RET_ALLOW)
    a.label("enosys")
    a.ret(RET_ERRNO | ENOSYS)
    return a.assemble()


PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes) -> None:
    """Install the filter on the calling (about to become guest) process."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                           ctypes.c_ulong]
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _Fprog(len(program) // 8, ctypes.addressof(buf))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter")
