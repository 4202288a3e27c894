"""ptrace(2) through ctypes: the tracer side of every guest task."""
from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.restype = ctypes.c_long
_ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

TRACEME, PEEKDATA, PEEKUSER, POKEUSER, CONT, KILL = 0, 2, 3, 6, 7, 8
GETREGS, SETREGS, GETFPREGS, SETFPREGS = 12, 13, 14, 15
SYSCALL = 24
SETOPTIONS, GETEVENTMSG, GETSIGINFO = 0x4200, 0x4201, 0x4202
GETREGSET, SETREGSET, SEIZE, INTERRUPT, LISTEN = 0x4204, 0x4205, 0x4206, 0x4207, 0x4208

O_TRACESYSGOOD, O_TRACEFORK, O_TRACEVFORK, O_TRACECLONE = 1, 2, 4, 8
O_TRACEEXEC, O_TRACEVFORKDONE, O_TRACEEXIT, O_TRACESECCOMP = 0x10, 0x20, 0x40, 0x80
O_EXITKILL, O_SUSPEND_SECCOMP = 0x100000, 0x200000

EVENT_FORK, EVENT_VFORK, EVENT_CLONE, EVENT_EXEC = 1, 2, 3, 4
EVENT_VFORK_DONE, EVENT_EXIT, EVENT_SECCOMP, EVENT_STOP = 5, 6, 7, 128

WALL = 0x40000000

GUEST_OPTIONS = (O_TRACESYSGOOD | O_TRACEFORK | O_TRACEVFORK | O_TRACECLONE
                 | O_TRACEEXEC | O_TRACESECCOMP | O_EXITKILL)

# struct user_regs_struct, in order
REG_NAMES = ("r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax "
             "rip cs eflags rsp ss fs_base gs_base ds es fs gs").split()
R15, R14, R13, R12, RBP, RBX, R11, R10, R9, R8, RAX, RCX, RDX, RSI, RDI, ORIG_RAX, \
    RIP, CS, EFLAGS, RSP, SS, FS_BASE, GS_BASE, DS, ES, FS, GS = range(27)

Regs = ctypes.c_uint64 * 27
FpRegs = ctypes.c_uint8 * 512


class PtraceError(OSError):
    pass


def _call(req: int, tid: int, addr: int | None, data) -> int:
    r = _ptrace(req, tid, addr, data)
    if r == -1:
        e = ctypes.get_errno()
        if e:
            raise PtraceError(e, os.strerror(e))
    return r


def traceme() -> None:
    _call(TRACEME, 0, None, None)


def seize(tid: int, options: int = GUEST_OPTIONS) -> None:
    _call(SEIZE, tid, None, options)


def setoptions(tid: int, options: int) -> None:
    _call(SETOPTIONS, tid, None, options)


def interrupt(tid: int) -> None:
    _call(INTERRUPT, tid, None, None)


def listen(tid: int) -> None:
    _call(LISTEN, tid, None, None)


def cont(tid: int, sig: int = 0) -> None:
    _call(CONT, tid, None, sig)


def syscall(tid: int, sig: int = 0) -> None:
    """Resume until the next syscall entry or exit stop."""
    _call(SYSCALL, tid, None, sig)


def kill(tid: int) -> None:
    _call(KILL, tid, None, None)


def getregs(tid: int, regs) -> None:
    _call(GETREGS, tid, None, ctypes.addressof(regs))


def setregs(tid: int, regs) -> None:
    _call(SETREGS, tid, None, ctypes.addressof(regs))


def getfpregs(tid: int, buf) -> None:
    _call(GETFPREGS, tid, None, ctypes.addressof(buf))


def setfpregs(tid: int, buf) -> None:
    _call(SETFPREGS, tid, None, ctypes.addressof(buf))


_msg = ctypes.c_ulong()


def geteventmsg(tid: int) -> int:
    _call(GETEVENTMSG, tid, None, ctypes.addressof(_msg))
    return _msg.value


_siginfo = (ctypes.c_uint8 * 128)()


def getsiginfo(tid: int) -> bytes:
    _call(GETSIGINFO, tid, None, ctypes.addressof(_siginfo))
    return bytes(_siginfo)


SETSIGINFO = 0x4203


def setsiginfo(tid: int, info: bytes) -> None:
    buf = (ctypes.c_uint8 * 128).from_buffer_copy(info[:128].ljust(128, b"\0"))
    _call(SETSIGINFO, tid, None, ctypes.addressof(buf))
