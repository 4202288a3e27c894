"""Signal syscalls. Dispositions, masks, frames and sigreturn are the host kernel's (the
guest's rt_sigprocmask/sigaltstack/rt_sigreturn run natively); we record dispositions, map
guest pids and decide who gets a signal and when."""
from __future__ import annotations

import errno
import struct

from usermode.kernel.errors import Errno, s32
from usermode.kernel.syscalls.table import NATIVE
from usermode.kernel.task import Process, Task

NSIG = 64
SIGKILL, SIGSTOP, SIGCONT = 9, 19, 18


def sys_rt_sigaction(t: Task, sig: int, act: int, oact: int, sigsetsize: int) -> int:
    """rt_sigaction(2): recorded for our kernel (SA_RESTART, SIGCHLD rules), then run natively."""
    sig = s32(sig)
    if sigsetsize != 8 or not 1 <= sig <= NSIG:
        raise Errno(errno.EINVAL)
    if act:
        if sig in (SIGKILL, SIGSTOP):
            raise Errno(errno.EINVAL)
        handler, flags, restorer, mask = struct.unpack("<QQQQ", t.mm.copy_in(act, 32))
        if oact:
            t.mm.copy_in(oact, 32)
        t.process.sigactions[sig] = (handler, flags, mask, restorer)
    return NATIVE


def _may_signal(t: Task, target: Process, sig: int) -> bool:
    c, tc = t.creds, target.creds
    if c.euid == 0 or c.uid in (tc.uid, tc.suid) or c.euid in (tc.uid, tc.suid):
        return True
    return sig == SIGCONT and target.sid == t.process.sid


def _check_sig(sig: int) -> int:
    sig = s32(sig)
    if not 0 <= sig <= NSIG:
        raise Errno(errno.EINVAL)
    return sig


def _deliver(t: Task, targets: list[Process], sig: int) -> int:
    if not targets:
        raise Errno(errno.ESRCH)
    allowed = [p for p in targets if _may_signal(t, p, sig)]
    if not allowed:
        raise Errno(errno.EPERM)
    for p in allowed:
        t.kernel.send_signal(p, sig)
    return 0


def sys_kill(t: Task, pid: int, sig: int) -> int:
    """kill(2) with guest pids: a process, a process group, or everyone."""
    pid, sig = s32(pid), _check_sig(sig)
    procs = [p for p in t.kernel.procs.values() if not p.zombie]
    if pid > 0:
        targets = [p for p in procs if p.pid == pid]
    elif pid == 0:
        targets = [p for p in procs if p.pgid == t.process.pgid]
    elif pid == -1:
        targets = [p for p in procs if p.pid != 1 and p is not t.process]
        if not targets:
            raise Errno(errno.ESRCH)
        for p in targets:
            if _may_signal(t, p, sig):
                t.kernel.send_signal(p, sig)
        return 0
    else:
        if pid == -(1 << 31):
            raise Errno(errno.ESRCH)
        targets = [p for p in procs if p.pgid == -pid]
    if not targets:
        named = (lambda p: p.pid == pid) if pid > 0 else (lambda p: p.pgid == -pid)
        if any(p.zombie and named(p) for p in t.kernel.procs.values()):
            return 0                # signalling zombies succeeds and does nothing
    return _deliver(t, targets, sig)


def _thread(t: Task, tgid: int, tid: int, sig: int) -> int:
    if tid <= 0 or (tgid is not None and tgid <= 0):
        raise Errno(errno.EINVAL)
    target = t.kernel.threads.get(tid)
    if target is None or (tgid is not None and target.pid != tgid) or target.process.zombie:
        raise Errno(errno.ESRCH)
    if not _may_signal(t, target.process, sig):
        raise Errno(errno.EPERM)
    t.kernel.send_signal(target.process, sig, target)
    return 0


def sys_tkill(t: Task, tid: int, sig: int) -> int:
    """tkill(2)"""
    return _thread(t, None, s32(tid), _check_sig(sig))


def sys_tgkill(t: Task, tgid: int, tid: int, sig: int) -> int:
    """tgkill(2)"""
    return _thread(t, s32(tgid), s32(tid), _check_sig(sig))


def _guest_info(t: Task, info: int, sig: int, target_pid: int) -> bytes:
    data = bytearray(t.mm.copy_in(info, 128))
    code = struct.unpack_from("<i", data, 8)[0]
    if (code >= 0 or code == -6) and target_pid != t.pid:
        raise Errno(errno.EPERM)        # only the kernel may claim SI_USER/SI_TKILL
    struct.pack_into("<i", data, 0, sig)
    return bytes(data)


def sys_rt_sigqueueinfo(t: Task, pid: int, sig: int, info: int) -> int:
    """rt_sigqueueinfo(2): the guest's siginfo (e.g. sigqueue's value) reaches the target."""
    pid, sig = s32(pid), _check_sig(sig)
    data = _guest_info(t, info, sig, pid)
    p = t.kernel.procs.get(pid) if pid > 0 else None
    if p is None or p.zombie:
        raise Errno(errno.ESRCH)
    if not _may_signal(t, p, sig):
        raise Errno(errno.EPERM)
    t.kernel.send_signal(p, sig, info=data)
    return 0


def sys_rt_tgsigqueueinfo(t: Task, tgid: int, tid: int, sig: int, info: int) -> int:
    """rt_tgsigqueueinfo(2)"""
    tgid, tid, sig = s32(tgid), s32(tid), _check_sig(sig)
    data = _guest_info(t, info, sig, tgid)
    target = t.kernel.threads.get(tid)
    if tid <= 0 or tgid <= 0:
        raise Errno(errno.EINVAL)
    if target is None or target.pid != tgid or target.process.zombie:
        raise Errno(errno.ESRCH)
    if not _may_signal(t, target.process, sig):
        raise Errno(errno.EPERM)
    t.kernel.send_signal(target.process, sig, target, info=data)
    return 0


def sys_rt_sigtimedwait(t: Task, set_: int, info: int, timeout: int, sigsetsize: int) -> int:
    """rt_sigtimedwait(2): runs natively; the siginfo it returns gets the guest's view."""
    def done(t: Task, res: int, info: int = info) -> int:
        if res > 0 and info:
            data = t.mm.mem.read(info, 128)
            q = t.process.siginfo.get(res)
            if data and q and int.from_bytes(data[16:20], "little", signed=True) == t.kernel.host_pid:
                t.mm.copy_out(info, q.popleft())
        return res
    t.after_native = done
    return NATIVE


SYSCALLS = [
    ("rt_sigtimedwait", sys_rt_sigtimedwait, "supported", "runs natively; siginfo rewritten"),
    ("rt_sigaction", sys_rt_sigaction, "supported", "recorded, then run natively"),
    ("kill", sys_kill, "supported", ""),
    ("tkill", sys_tkill, "supported", ""),
    ("tgkill", sys_tgkill, "supported", ""),
    ("rt_sigqueueinfo", sys_rt_sigqueueinfo, "supported", ""),
    ("rt_tgsigqueueinfo", sys_rt_tgsigqueueinfo, "supported", ""),
]
