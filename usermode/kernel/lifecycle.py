"""Task lifecycle stops: a new task from clone, the exec event, and exit.

These are Kernel methods (bound in kernel.py), split out by concern like gVisor's
task_clone.go / task_exec.go / task_exit.go.
"""
from __future__ import annotations

import os
import signal
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from usermode.host import platform as hp
from usermode.host import ptrace as pt
from usermode.kernel import task as ts
from usermode.kernel.elf import Image, load
from usermode.kernel.errors import Errno
from usermode.kernel.mm import MM
from usermode.kernel.task import Process, Task

if TYPE_CHECKING:
    from usermode.kernel.kernel import Kernel

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_PTRACE, CLONE_VFORK, CLONE_PARENT, CLONE_THREAD = 0x1000, 0x2000, 0x4000, 0x8000, 0x10000
CLONE_NEWNS, CLONE_SYSVSEM, CLONE_SETTLS, CLONE_PARENT_SETTID = 0x20000, 0x40000, 0x80000, 0x100000
CLONE_CHILD_CLEARTID, CLONE_DETACHED, CLONE_UNTRACED, CLONE_CHILD_SETTID = 0x200000, 0x400000, 0x800000, 0x1000000
CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER = 0x2000000, 0x4000000, 0x8000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET, CLONE_IO = 0x20000000, 0x40000000, 0x80000000


@dataclass(slots=True)
class CloneRequest:
    flags: int
    pid: int
    ptid: int
    ctid: int
    exit_signal: int


def on_new_task(self: "Kernel", t: Task) -> None:
    """The parent stopped at PTRACE_EVENT_{CLONE,FORK,VFORK}: make the child our task."""
    req: CloneRequest | None = t.clone_req
    t.clone_req = None
    child_host = self.platform.event_msg(t.host_tid)
    if req is None:                       # not a clone we asked for: should not happen
        self.platform.kill(child_host, signal.SIGKILL, False)
        self.platform.continue_to_syscall(t.host_tid)
        return
    flags = req.flags
    parent = t.process
    if flags & CLONE_THREAD:
        proc = parent
    else:
        proc = Process(self, req.pid, parent)
        parent.children.append(proc)
        proc.sigactions = parent.sigactions if flags & CLONE_SIGHAND else dict(parent.sigactions)
        proc.rlimits = dict(parent.rlimits)
        proc.comm, proc.exe = parent.comm, parent.exe
        proc.cmdline, proc.environ = parent.cmdline, parent.environ
        proc.exit_signal = req.exit_signal
        proc.ctty = parent.ctty
        if flags & CLONE_VM:
            proc.mm = parent.mm
            proc.mm.users += 1
        else:
            mm = MM(child_host)
            old = parent.mm
            mm.brk_start, mm.brk, mm.mappings = old.brk_start, old.brk, list(old.mappings)
            mm.exe_path, mm.vdso, mm.stack_top = old.exe_path, old.vdso, old.stack_top
            mm.arg_start, mm.arg_end = old.arg_start, old.arg_end
            mm.env_start, mm.env_end = old.env_start, old.env_end
            mm.auxv, mm.stub_sealed = old.auxv, old.stub_sealed     # seals survive fork
            mm.inherit_commit(self, old)         # the copies count against mem= again
            proc.mm = mm
        self.procs[req.pid] = proc
    child = Task(self, req.pid, child_host, proc)
    child.fs = t.fs if flags & CLONE_FS else t.fs.fork()
    child.files = t.files if flags & CLONE_FILES else t.files.fork()
    child.started = True
    child.saved_args = t.saved_args
    child.comm = t.comm
    child.cpu_mask = t.cpu_mask
    proc.threads.append(child)
    self.threads[req.pid] = child
    self.tasks[child_host] = child
    try:
        if flags & CLONE_CHILD_SETTID:
            proc.mm.write_u32(req.ctid, req.pid)
        if flags & CLONE_PARENT_SETTID:
            t.mm.write_u32(req.ptid, req.pid)
    except Errno:
        pass
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = req.ctid
    if flags & CLONE_VFORK:
        proc.vfork_parent = t
    t.state = ts.RUNNING
    self.platform.continue_to_syscall(t.host_tid)               # on to the syscall-exit stop (returns the pid)
    for status in self.early_stops.pop(child_host, []):
        self.on_stop(child_host, status)


def on_exec(self: "Kernel", t: Task) -> None:
    """The host execve of the stub succeeded: build the guest program in the new mm."""
    former = self.platform.event_msg(t.host_tid)
    if former != t.host_tid and former in self.tasks:
        # a non-leader thread exec'd: it takes over the leader's host and guest tid
        execer = self.tasks.pop(former)
        leader = t
        leader.exec_reaped = True
        leader.state = ts.DEAD
        execer.host_tid = t.host_tid
        execer.regs = self.platform.Regs(t.host_tid)
        self.tasks[t.host_tid] = execer
        self.threads.pop(execer.tid, None)
        execer.tid = execer.process.pid
        self.threads[execer.tid] = execer
        t = execer
    proc = t.process
    for other in list(proc.threads):
        if other is not t and other.state != ts.DEAD:
            other.exec_reaped = True
            other.state = ts.DEAD
            self._unpark(other)
            self.threads.pop(other.tid, None)
    proc.threads = [t]
    plan = t.exec_pending
    t.exec_pending = None
    old = proc.mm
    if old is not None:
        old.users -= 1
        if old.users <= 0:
            old.release_commit(self)
            old.close()
    mm = MM(t.host_tid)
    proc.mm = t.mm = mm
    inj = self.platform.Injector(t.host_tid, mm.mem)
    try:
        # From the exec event stop, straight into the stub's batch loop: the table goes
        # in the stub's fresh stack, which nothing else can reach.
        table = (inj.load_regs()[pt.RSP] - 16384) & ~63
        with inj.unfiltered():
            entry, sp, brk, maps = load(inj, plan, self.platform.auxv(t.host_tid), table,
                                        self.image_memfd, self.borrow_memfds)
        if inj.refused_borrow:
            self.borrow_memfds = False
            self.printk("usermode: the host refuses pidfd_getfd; exec copies programs")
    except (Errno, hp.InjectError) as e:
        self.printk(f"usermode: exec of {plan.filename!r} failed after the point of no return: {e}")
        self.platform.kill(t.host_tid, signal.SIGKILL, True)
        return
    mm.brk_start = mm.brk = brk
    mm.mappings = maps
    mm.exe_path = plan.main.path
    mm.stack_top = sp
    mm.arg_start, mm.arg_end, mm.env_start, mm.env_end = plan.arg_range
    mm.auxv = plan.auxv
    mm.stub_sealed = plan.stub_sealed
    r = t.regs.r
    r[:] = inj.regs                   # as the batch left them: segment and flag registers
    for i in range(pt.R15, pt.ORIG_RAX + 1):
        r[i] = 0
    r[pt.ORIG_RAX] = (1 << 64) - 1
    r[pt.RIP] = entry
    r[pt.RSP] = sp
    r[pt.FS_BASE] = r[pt.GS_BASE] = 0
    t.regs.dirty = True
    if t.files is not None:
        t.files.close_on_exec()
    proc.sigactions = {s: a for s, a in proc.sigactions.items() if a[0] == 1}
    proc.exe = plan.main.path
    proc.cmdline = list(plan.argv)
    proc.environ = list(plan.envp)
    name = plan.filename.rsplit(b"/", 1)[-1][:15]
    proc.comm = t.comm = name
    proc.vfork_parent = None
    proc.exe_execd = True
    c = proc.creds
    c.euid = c.suid = c.fsuid = plan.euid
    c.egid = c.sgid = c.fsgid = plan.egid
    t.state = ts.STOPPED
    self.resume(t)
    for sig in inj.deferred_signals:
        self.platform.kill(t.host_tid, sig, True)


def image_memfd(self: "Kernel", img: Image) -> int | None:
    """The page-cache memfd holding an executable's bytes, so that its segments are
    shared file mappings; None when they cannot be (odd alignment): then they are copied."""
    if not img.mappable():
        return None
    return self.pagecache.memfd(img.key, len(img.data), lambda o, n: img.data[o:o + n])


def on_exit(self: "Kernel", t: Task, status: int) -> None:
    """A host thread ended: the task is gone; the last thread makes the process a zombie."""
    self.tasks.pop(t.host_tid, None)
    if t.exec_reaped:
        return
    if t.state == ts.PARKED:
        self._unpark(t)
    t.state = ts.DEAD
    t.pending = None
    proc = t.process
    if t.tid != proc.pid:
        self.threads.pop(t.tid, None)
    if proc.alive_threads():
        return
    exit_process(self, proc, status)


def exit_process(self: "Kernel", proc: Process, status: int) -> None:
    proc.exit_status = status
    live = [x for x in self.tasks.values() if x.state != ts.DEAD]
    for t in proc.threads:
        if t.files is not None and not any(x.files is t.files for x in live):
            t.files.close_all()
        t.files = None
    if proc.mm is not None:
        proc.mm.users -= 1
        if proc.mm.users <= 0:
            proc.mm.release_commit(self)
            proc.mm.close()
        proc.mm = None
    proc.zombie = True
    proc.stopped = False
    init = self.init
    for c in proc.children:
        c.parent = init
        if init is not None and init is not proc:
            init.children.append(c)
            if c.zombie:
                init.child_wait.notify()
    proc.children = []
    if proc is init:
        self.halt(status, "init exited")
        return
    parent = proc.parent
    if parent is None:
        reap(self, proc)
        return
    handler, flags, _, _ = self.sigaction_of(parent, signal.SIGCHLD)
    if proc.exit_signal == signal.SIGCHLD and (handler == 1 or flags & 2):  # SIG_IGN / NOCLDWAIT
        reap(self, proc)
        parent.child_wait.notify()
        return
    parent.child_wait.notify()
    if proc.exit_signal:
        self.send_signal(parent, proc.exit_signal, info=sigchld_info(proc, status))


def sigchld_info(proc: Process, status: int) -> bytes:
    """The siginfo of SIGCHLD for a child's exit (CLD_EXITED / CLD_KILLED / CLD_DUMPED)."""
    if os.WIFEXITED(status):
        code, val = 1, os.WEXITSTATUS(status)
    else:
        code, val = (3 if status & 0x80 else 2), status & 0x7F
    return struct.pack("<iiiiiIiiqq", signal.SIGCHLD, 0, code, 0, proc.pid, proc.creds.uid,
                       val, 0, 0, 0)


def reap(self: "Kernel", proc: Process) -> None:
    """Release a zombie: its pid becomes free, its CPU time goes to the parent."""
    proc.reaped = True
    parent = proc.parent
    if parent is not None:
        parent.cutime += proc.utime + proc.cutime
        parent.cstime += proc.stime + proc.cstime
        parent.cmaxrss = max(parent.cmaxrss, proc.maxrss, proc.cmaxrss)
    if proc.parent is not None and proc in proc.parent.children:
        proc.parent.children.remove(proc)
    self.procs.pop(proc.pid, None)
    self.threads.pop(proc.pid, None)
