"""Process syscalls: ids, clone/fork/vfork, wait, sessions and process groups."""
from __future__ import annotations

import errno
import struct

from usermode.host import ptrace as pt
from usermode.kernel.errors import Block, Errno, s32
from usermode.kernel.lifecycle import (
    CLONE_CHILD_SETTID, CLONE_DETACHED, CLONE_FS,
    CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER,
    CLONE_NEWUTS, CLONE_PARENT, CLONE_PARENT_SETTID, CLONE_PIDFD, CLONE_PTRACE, CLONE_SIGHAND,
    CLONE_THREAD, CLONE_UNTRACED, CLONE_VFORK, CLONE_VM, CloneRequest, reap)
from usermode.kernel.syscalls.sys_cred import rlimit
from usermode.kernel.syscalls.sys_info import pack_rusage
from usermode.kernel.syscalls.table import NATIVE
from usermode.kernel.task import Process, Task

SIGCHLD = 17
NR_CLONE = 56
CLONE_NEWANY = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
                | CLONE_NEWPID | CLONE_NEWNET)
WNOHANG, WUNTRACED, WEXITED, WCONTINUED, WNOWAIT = 1, 2, 4, 8, 0x1000000
WNOTHREAD, WALL, WCLONE = 0x20000000, 0x40000000, 0x80000000
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3
CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_STOPPED, CLD_CONTINUED = 1, 2, 3, 5, 6


def sys_getpid(t: Task) -> int:
    """getpid(2)"""
    return t.pid


def sys_gettid(t: Task) -> int:
    """gettid(2)"""
    return t.tid


def sys_getppid(t: Task) -> int:
    """getppid(2)"""
    p = t.process.parent
    return p.pid if p is not None else 0


# ---- clone family
def _clone(t: Task, flags: int, ptid: int, ctid: int) -> int:
    if flags & (CLONE_NEWNS | CLONE_FS) == CLONE_NEWNS | CLONE_FS:
        raise Errno(errno.EINVAL)
    if flags & (CLONE_NEWUSER | CLONE_FS) == CLONE_NEWUSER | CLONE_FS:
        raise Errno(errno.EINVAL)
    if flags & CLONE_NEWANY:
        raise Errno(errno.EPERM)
    if flags & CLONE_THREAD and not flags & CLONE_SIGHAND:
        raise Errno(errno.EINVAL)
    if flags & CLONE_SIGHAND and not flags & CLONE_VM:
        raise Errno(errno.EINVAL)
    if flags & CLONE_PIDFD:
        raise Errno(errno.EINVAL)
    if flags & CLONE_THREAD and flags & CLONE_PARENT:
        pass
    k = t.kernel
    limit = rlimit(t, 6)[0]                                      # RLIMIT_NPROC
    if t.creds.uid != 0 and limit < (1 << 63) and _tasks_of(k, t.creds.uid) >= limit:
        raise Errno(errno.EAGAIN)
    pid = k.alloc_pid()
    k.reserved_pids.add(pid)
    host = flags & ~(CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | CLONE_UNTRACED | CLONE_PTRACE
                     | CLONE_DETACHED | 0xFF)
    if flags & CLONE_THREAD:
        host |= flags & 0xFF
    else:
        host |= CLONE_PARENT | SIGCHLD      # the kernel is every process's host parent
    r = t.regs.r
    r[pt.ORIG_RAX] = NR_CLONE
    r[pt.RDI] = host
    t.regs.dirty = True
    t.clone_req = CloneRequest(flags, pid, ptid, ctid, flags & 0xFF)

    def done(t: Task, res: int, pid: int = pid) -> int:
        t.kernel.reserved_pids.discard(pid)
        t.clone_req = None
        return pid if res >= 0 else res
    t.after_native = done
    return NATIVE


def _tasks_of(k, uid: int) -> int:
    """Tasks counted against RLIMIT_NPROC, as Linux counts them: every thread, a zombie
    until its parent reaps it, and a clone allowed but whose child has not appeared yet
    (otherwise concurrent forkers all pass the check while the host creates their
    children)."""
    live = sum(max(len(p.alive_threads()), 1) for p in k.procs.values() if p.creds.uid == uid)
    pending = sum(1 for task in k.tasks.values()
                  if task.clone_req is not None and task.creds.uid == uid
                  and task.clone_req.pid not in k.threads)
    return live + pending


def sys_clone(t: Task, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
    """clone(2)"""
    r = t.regs.r
    r[pt.RSI], r[pt.RDX], r[pt.R10], r[pt.R8] = stack, 0, ctid, tls
    return _clone(t, flags & 0xFFFFFFFF, ptid, ctid)


def sys_fork(t: Task) -> int:
    """fork(2)"""
    r = t.regs.r
    r[pt.RSI] = r[pt.RDX] = r[pt.R10] = r[pt.R8] = 0
    return _clone(t, SIGCHLD, 0, 0)


def sys_vfork(t: Task) -> int:
    """vfork(2)"""
    r = t.regs.r
    r[pt.RSI] = r[pt.RDX] = r[pt.R10] = r[pt.R8] = 0
    return _clone(t, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0)


def sys_set_tid_address(t: Task, tidptr: int) -> int:
    """set_tid_address(2): the host keeps the pointer (it clears it and wakes the futex at
    exit); we return the guest tid instead of the host's."""
    t.clear_child_tid = tidptr
    t.after_native = lambda t, res: t.tid
    return NATIVE


# ---- wait
def _matches(t: Task, c: Process, idtype: int, ident: int, options: int) -> bool:
    if idtype == P_PID and c.pid != ident:
        return False
    if idtype == P_PGID and c.pgid != ident:
        return False
    if not options & WALL:
        clone_child = c.exit_signal != SIGCHLD
        if bool(options & WCLONE) != clone_child:
            return False
    return True


def _wait_common(t: Task, idtype: int, ident: int, options: int):
    """Find a child event; returns (child, kind, status) or None; raises ECHILD/Block."""
    me = t.process
    parents = [me]
    found = False
    for p in parents:
        for c in list(p.children):
            if not _matches(t, c, idtype, ident, options):
                continue
            found = True
            if c.zombie and options & WEXITED:
                return c, "exit", c.exit_status
            if c.stop_report is not None and options & WUNTRACED and c.stopped:
                return c, "stop", c.stop_report
            if c.continued_report and options & WCONTINUED:
                return c, "cont", 0
    if not found:
        raise Errno(errno.ECHILD)
    if options & WNOHANG:
        return None
    raise Block(me.child_wait)


def sys_wait4(t: Task, pid: int, wstatus: int, options: int, rusage: int) -> int:
    """wait4(2)"""
    pid, options = s32(pid), s32(options) & 0xFFFFFFFF
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE):
        raise Errno(errno.EINVAL)
    if pid == -(1 << 31):
        raise Errno(errno.ESRCH)
    if pid > 0:
        idtype, ident = P_PID, pid
    elif pid == 0:
        idtype, ident = P_PGID, t.process.pgid
    elif pid == -1:
        idtype, ident = P_ALL, 0
    else:
        idtype, ident = P_PGID, -pid
    got = _wait_common(t, idtype, ident, options | WEXITED)
    if got is None:
        return 0
    c, kind, status = got
    if kind == "stop":
        word = (status << 8) | 0x7F
        c.stop_report = None
    elif kind == "cont":
        word = 0xFFFF
        c.continued_report = False
    else:
        word = status
    if wstatus:
        t.mm.write_i32(wstatus, word)
    if rusage:
        t.mm.copy_out(rusage, pack_rusage(c.utime + c.cutime, c.stime + c.cstime, c.maxrss))
    if kind == "exit":
        reap(t.kernel, c)
    return c.pid


def sys_waitid(t: Task, idtype: int, ident: int, infop: int, options: int, rusage: int) -> int:
    """waitid(2)"""
    idtype, ident, options = s32(idtype), s32(ident), s32(options) & 0xFFFFFFFF
    if options & ~(WNOHANG | WUNTRACED | WEXITED | WCONTINUED | WNOWAIT | WNOTHREAD | WALL
                   | WCLONE) or not options & (WEXITED | WUNTRACED | WCONTINUED):
        raise Errno(errno.EINVAL)
    if idtype not in (P_ALL, P_PID, P_PGID):
        raise Errno(errno.EINVAL)
    if idtype == P_PGID and ident == 0:
        ident = t.process.pgid
    got = _wait_common(t, idtype, ident, options)
    if got is None:
        if infop:
            t.mm.copy_out(infop, bytes(128))
        return 0
    c, kind, status = got
    if kind == "exit":
        if status & 0x7F == 0:
            code, val = CLD_EXITED, (status >> 8) & 0xFF
        else:
            code, val = (CLD_DUMPED if status & 0x80 else CLD_KILLED), status & 0x7F
    elif kind == "stop":
        code, val = CLD_STOPPED, status
    else:
        code, val = CLD_CONTINUED, 18
    if infop:
        # siginfo_t: signo, errno, code, pad, pid, uid, status
        info = struct.pack("<iiiiIIi", SIGCHLD, 0, code, 0, c.pid, c.creds.uid, val)
        t.mm.copy_out(infop, info + bytes(128 - len(info)))
    if not options & WNOWAIT:
        if kind == "exit":
            reap(t.kernel, c)
        elif kind == "stop":
            c.stop_report = None
        else:
            c.continued_report = False
    return 0


# ---- sessions and process groups
def _proc(t: Task, pid: int) -> Process:
    if pid == 0:
        return t.process
    p = t.kernel.procs.get(pid)
    if p is None or p.reaped:
        raise Errno(errno.ESRCH)
    return p


def sys_getpgid(t: Task, pid: int) -> int:
    """getpgid(2)"""
    return _proc(t, s32(pid)).pgid


def sys_getpgrp(t: Task) -> int:
    """getpgrp(2)"""
    return t.process.pgid


def sys_getsid(t: Task, pid: int) -> int:
    """getsid(2)"""
    return _proc(t, s32(pid)).sid


def sys_setsid(t: Task) -> int:
    """setsid(2)"""
    p = t.process
    if any(q.pgid == p.pid for q in t.kernel.procs.values() if not q.reaped):
        raise Errno(errno.EPERM)
    p.sid = p.pgid = p.pid
    p.ctty = None
    return p.pid


def sys_setpgid(t: Task, pid: int, pgid: int) -> int:
    """setpgid(2)"""
    pid, pgid = s32(pid), s32(pgid)
    if pgid < 0 or pid < 0:
        raise Errno(errno.EINVAL)
    me = t.process
    target = me if pid in (0, me.pid) else t.kernel.procs.get(pid)
    if target is None or (target is not me and target.parent is not me):
        raise Errno(errno.ESRCH)
    if target is not me and target.sid != me.sid:
        raise Errno(errno.EPERM)
    if target.sid == target.pid:
        raise Errno(errno.EPERM)
    if target is not me and target.exe_execd:
        raise Errno(errno.EACCES)
    pgid = pgid or target.pid
    # a group lives while any member does, an unreaped zombie included
    if pgid != target.pid and not any(q.pgid == pgid and q.sid == me.sid
                                      for q in t.kernel.procs.values() if not q.reaped):
        raise Errno(errno.EPERM)
    target.pgid = pgid
    return 0


SYSCALLS = [
    ("getpid", sys_getpid, "supported", ""),
    ("gettid", sys_gettid, "supported", ""),
    ("getppid", sys_getppid, "supported", ""),
    ("clone", sys_clone, "partial", "no CLONE_PIDFD, no namespaces (EPERM)"),
    ("fork", sys_fork, "supported", ""),
    ("vfork", sys_vfork, "supported", ""),
    ("set_tid_address", sys_set_tid_address, "supported", ""),
    ("wait4", sys_wait4, "supported", ""),
    ("waitid", sys_waitid, "partial", "no P_PIDFD"),
    ("getpgid", sys_getpgid, "supported", ""),
    ("getpgrp", sys_getpgrp, "supported", ""),
    ("getsid", sys_getsid, "supported", ""),
    ("setsid", sys_setsid, "supported", ""),
    ("setpgid", sys_setpgid, "supported", ""),
]
