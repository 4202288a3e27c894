"""The kernel: one event loop over traced guest tasks and host fds (DESIGN.md section 4).

Every guest syscall that is not allowed natively by the seccomp filter arrives here as a
stop; its handler runs, and the task resumes with the result in rax. Blocked calls park the
task on wait queues; the loop re-runs the handler when a queue is notified.
"""
from __future__ import annotations

import errno
import heapq
import signal
import struct
import traceback
from collections import deque
from typing import Callable

from usermode.fs.inode import Epoch
from usermode.host import platform as hp
from usermode.host import ptrace as pt
from usermode.host.events import Clock, EventLoop
from usermode.host.pagecache import PageCache
from usermode.host.seccomp import build_filter
from usermode.host.stub import write_stub
from usermode.kernel import task as ts
from usermode.kernel.errors import Block, Errno
from usermode.kernel.syscalls.table import NATIVE, Table
from usermode.kernel.task import Process, Task

M64 = (1 << 64) - 1
RAX, ORIG_RAX, RDI, RSI, RDX, R10, R8, R9 = (pt.RAX, pt.ORIG_RAX, pt.RDI, pt.RSI, pt.RDX,
                                             pt.R10, pt.R8, pt.R9)
SKIP = M64                     # orig_rax = -1: the host does not run the call
PID_MAX = 32768
STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
DEFAULT_IGNORE = (signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH)
# calls Linux never restarts after a handler ran (they return EINTR)
NO_RESTART = {"poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait",
              "epoll_pwait2", "nanosleep", "clock_nanosleep", "pause", "rt_sigsuspend",
              "rt_sigtimedwait", "io_getevents", "semtimedop", "msgrcv", "msgsnd"}


def restore_args(r, saved: tuple[int, ...]) -> None:
    r[pt.RDI], r[pt.RSI], r[pt.RDX], r[pt.R10], r[pt.R8], r[pt.R9] = saved


class Kernel:
    def __init__(self, printk: Callable[[str], None] | None = None,
                 platform: str = "ptrace") -> None:
        self.platform = hp.get_platform(platform)
        self.clock = Clock()
        self.loop = EventLoop()
        self.table = Table()
        self._printk_out = printk
        self.tasks: dict[int, Task] = {}          # host tid -> task
        self.threads: dict[int, Task] = {}        # guest tid -> task
        self.procs: dict[int, Process] = {}       # guest pid -> process (zombies too)
        self.next_pid = 1
        self.runq: deque[Task] = deque()
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.timer_seq = 0
        self.early_stops: dict[int, list[int]] = {}
        self.stub_path = write_stub()
        self.filter = build_filter()
        self.unknown_reported: set[int] = set()
        self.halted: int | None = None           # exit status of the machine once set
        self.halt_reason = ""
        self.init: Process | None = None
        self.vfs = None
        self.boot_time = self.clock.realtime()
        self.hostname = b"usermode"
        self.domainname = b"(none)"
        self.syscall_count = 0
        self.strace = False
        self.current: Task | None = None         # the task whose syscall is being served
        self.host_pid = self.platform.kernel_pid()
        self.pagecache = PageCache()
        self.reserved_pids: set[int] = set()
        self.start_monotonic = self.clock.monotonic()
        self.mem_bytes = 128 << 20
        self.committed = 0                        # accounted guest memory (sys_mm.py)
        self.ncpus = 1
        self.host_cpus: list[int] = []     # guest CPU i runs on host CPU host_cpus[i] ([]: any)
        self.borrow_memfds = True          # exec maps programs from the page cache (elf.load)
        self.cad_enabled = True
        self.log_buffer = bytearray()
        self.frozen = False                       # mconsole `stop`: see freeze()
        self.frozen_held: dict[Task, int] = {}    # task -> signal to resume it with

    def printk(self, msg: str) -> None:
        """Kernel log: kept for dmesg/syslog, and shown on the host if asked to."""
        line = msg.encode(errors="replace") + b"\n"
        self.log_buffer += line
        if len(self.log_buffer) > 1 << 17:
            del self.log_buffer[: len(self.log_buffer) - (1 << 17)]
        if self._printk_out is not None:
            self._printk_out(msg)

    def mem_used(self) -> int:
        return sum(self.platform.rss_kb(t.host_tid) * 1024 for p in self.procs.values()
                   if not p.zombie and (t := p.leader) is not None and t.state != ts.DEAD)

    def dmesg(self) -> bytes:
        return bytes(self.log_buffer)

    # ---- pids
    def alloc_pid(self) -> int:
        for _ in range(PID_MAX):
            pid = self.next_pid
            self.next_pid = pid + 1 if pid + 1 < PID_MAX else 300
            if pid not in self.threads and pid not in self.procs and pid not in self.reserved_pids:
                return pid
        raise Errno(errno.EAGAIN)

    # ---- timers
    def call_later(self, delay: float, fn: Callable[[], None]) -> int:
        self.timer_seq += 1
        heapq.heappush(self.timers, (self.clock.monotonic() + delay, self.timer_seq, fn))
        return self.timer_seq

    def _fire_timers(self) -> None:
        now = self.clock.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, fn = heapq.heappop(self.timers)
            fn()

    # ---- boot
    def start_init(self, plan, files, fs, creds=None) -> Task:
        pid = self.alloc_pid()
        proc = Process(self, pid, None)
        self.init = proc
        host = self.platform.spawn(self.stub_path, self.filter)
        t = Task(self, pid, host, proc)
        t.files, t.fs = files, fs
        if creds is not None:
            proc.creds = t.creds = creds
        proc.threads.append(t)
        self.procs[pid] = proc
        self.threads[pid] = t
        self.tasks[host] = t
        t.exec_pending = plan
        t.state = ts.RUNNING
        return t

    def run(self) -> int:
        """Run until init exits or the machine halts; returns the exit status."""
        next_stop = self.platform.next_stop
        seccomp_stop = self.platform.SECCOMP_STOP
        tasks = self.tasks
        while self.halted is None:
            progressed = False
            while True:
                ws = next_stop()
                if ws is None:
                    break
                progressed = True
                tid, status = ws[0], ws[1]
                if status >> 8 == seccomp_stop and tid in tasks:      # the hot path
                    try:
                        self.on_syscall(tasks[tid])
                    except self.platform.Error as e:
                        if e.errno != errno.ESRCH:
                            raise
                    continue
                self.on_stop(tid, status, ws[2])
                if self.halted is not None:
                    break
            if self.runq:
                self._run_ready()
                continue
            if progressed or self.halted is not None:
                continue
            timeout = None
            if self.timers:
                timeout = self.timers[0][0] - self.clock.monotonic()
            self.loop.wait(timeout)
            self._fire_timers()
        return self.halted

    def shutdown(self) -> None:
        for t in list(self.tasks.values()):
            try:
                self.platform.kill(t.host_tid, signal.SIGKILL, False)
            except OSError:
                pass
        while self.platform.next_stop() is not None:
            pass
        self.loop.close()
        self.pagecache.close()

    def halt(self, status: int, reason: str = "") -> None:
        if self.halted is None:
            self.halted = status
            self.halt_reason = reason

    # ---- the whole instance paused (mconsole stop/go)
    def freeze(self) -> None:
        """Pause every guest task: running ones are interrupted, and resume() holds each
        task that would run again until thaw(). The loop keeps serving host fds (mconsole)
        and timers; a woken blocked call completes but its task stays held."""
        if self.frozen:
            return
        self.frozen = True
        for t in list(self.tasks.values()):
            if t.state == ts.RUNNING:
                t.interrupting = True
                try:
                    self.platform.interrupt(t.host_tid)
                except OSError:
                    pass

    def thaw(self) -> None:
        """Undo freeze(): resume the tasks it held, with the signals they were due."""
        if not self.frozen:
            return
        self.frozen = False
        held, self.frozen_held = self.frozen_held, {}
        for t, sig in held.items():
            if t.state == ts.HELD and not (t.process.stopped and sig == 0):
                try:
                    self.resume(t, sig)
                except self.platform.Error as e:
                    if e.errno != errno.ESRCH:
                        raise

    # ---- stops
    def on_stop(self, host_tid: int, status: int, rusage=None) -> None:
        t = self.tasks.get(host_tid)
        if t is None:
            self.early_stops.setdefault(host_tid, []).append(status)
            return
        st = hp.decode(status)
        kind = st.kind
        try:
            if kind == hp.SYSCALL:
                self.on_syscall(t)
            elif kind == hp.SYSCALL_EXIT:
                self.on_syscall_exit(t)
            elif kind == hp.SIGNAL:
                self.on_signal(t, st.value)
            elif kind == hp.EXEC:
                self.on_exec(t)
            elif kind == hp.NEWTASK:
                self.on_new_task(t)
            elif kind == hp.GROUP_STOP:
                self.on_group_stop(t)
            elif kind in (hp.EXITED, hp.SIGNALED):
                if rusage is not None:
                    p = t.process
                    p.utime += rusage.ru_utime
                    p.stime += rusage.ru_stime
                    p.maxrss = max(p.maxrss, rusage.ru_maxrss)
                self.on_exit(t, status)
            else:
                self.resume(t)
        except self.platform.Error as e:
            if e.errno != errno.ESRCH:      # ESRCH: the task died under us (SIGKILL)
                raise

    def resume(self, t: Task, sig: int = 0) -> None:
        if t.process.stopped and sig == 0:
            t.state = ts.HELD
            return
        if self.frozen:
            t.state = ts.HELD
            self.frozen_held[t] = sig
            return
        if t.regs.dirty:
            t.regs.store()
        t.state = ts.RUNNING
        self.platform.resume(t.host_tid, sig)

    def on_syscall(self, t: Task) -> None:
        regs = t.regs
        regs.load()
        r = regs.r
        if not t.started:                       # the boot execve of the stub
            t.started = True
            self.platform.resume(t.host_tid)
            return
        nr = r[ORIG_RAX]
        self.syscall_count += 1
        t.state = ts.STOPPED
        t.timed_out = False
        entries = self.table.entries
        entry = entries[nr] if nr < len(entries) else None
        if entry is None:
            self.unknown(t, nr)
            self.finish(t, -errno.ENOSYS)
            return
        h, n = entry.handler, entry.nargs
        # kept so a call we rewrite and run natively returns with the guest's own registers
        t.saved_args = sa = (r[RDI], r[RSI], r[RDX], r[R10], r[R8], r[R9])
        args = sa if n == 6 else sa[:n]
        t.in_syscall_nr = nr
        if self.strace:
            self.printk(f"[{t.tid}] {entry.name}({', '.join(hex(a) for a in args)})")
        self.run_handler(t, h, args)

    def unknown(self, t: Task, nr: int) -> None:
        if nr not in self.unknown_reported:
            self.unknown_reported.add(nr)
            name = self.table.name(nr)
            why = self.table.reason(nr)
            self.printk(f"usermode: unsupported syscall {name} ({nr}) from pid {t.pid}"
                        + (f": {why}" if why else ""))

    def run_handler(self, t: Task, h, args: tuple[int, ...]) -> None:
        self.current = t
        Epoch.now += 1
        try:
            res = h(t, *args)
        except Errno as e:
            res = -e.errno
        except Block as b:
            self.park(t, h, args, b)
            return
        except pt.PtraceError:
            raise
        except Exception:
            self.printk("usermode: kernel bug in " + getattr(h, "__name__", "?") + ":\n"
                        + traceback.format_exc())
            res = -errno.EIO
        if res is NATIVE:
            if t.regs.dirty:
                t.regs.store()
            t.state = ts.RUNNING
            if t.after_native is not None:
                self.platform.resume_to_syscall_exit(t.host_tid)
            else:
                self.platform.resume(t.host_tid)
            return
        if t.state == ts.DEAD:
            return
        self.finish(t, res)

    def finish(self, t: Task, res: int) -> None:
        if self.strace:
            self.printk(f"[{t.tid}]   = {res}")
        regs = t.regs
        r = regs.r
        r[ORIG_RAX] = SKIP
        r[RAX] = res & M64
        regs.dirty = True
        if t.process.stopped:
            t.state = ts.HELD
            return
        t.state = ts.RUNNING
        regs.store_and_resume()

    def on_syscall_exit(self, t: Task) -> None:
        fn = t.after_native
        t.after_native = None
        t.regs.load()
        if fn is None:
            self.resume(t)
            return
        r = t.regs.r
        res = r[pt.RAX]
        res = res - (1 << 64) if res >> 63 else res
        restore_args(r, t.saved_args)
        t.regs.dirty = True
        try:
            out = fn(t, res)
        except Errno as e:
            out = -e.errno
        if self.strace:
            self.printk(f"[{t.tid}]   = {out} (host returned {res})")
        if out != res:
            r[pt.RAX] = out & M64
            t.regs.dirty = True
        self.resume(t)

    # ---- blocking
    def park(self, t: Task, h, args: tuple[int, ...], b: Block) -> None:
        t.state = ts.PARKED
        t.pending = (h, args)
        t.wait_queues = b.queues
        for q in b.queues:
            q.add(t.wake_fn)
        if b.timeout is not None:
            deadline = self.clock.monotonic() + max(b.timeout, 0.0)
            t.deadline = deadline

            def expire(t: Task = t, deadline: float = deadline) -> None:
                if t.state == ts.PARKED and t.deadline == deadline:
                    t.timed_out = True
                    self.wake(t)
            self.call_later(max(b.timeout, 0.0), expire)
        else:
            t.deadline = None

    def wake(self, t: Task) -> None:
        if t.state == ts.PARKED:
            t.state = ts.STOPPED
            self.runq.append(t)

    def _unpark(self, t: Task) -> None:
        for q in t.wait_queues:
            q.remove(t.wake_fn)
        t.wait_queues = ()
        t.deadline = None

    def _run_ready(self) -> None:
        runq = self.runq
        while runq:
            t = runq.popleft()
            if t.state != ts.STOPPED or t.pending is None:
                continue
            self._unpark(t)
            h, args = t.pending
            t.pending = None
            timed_out = t.timed_out
            t.timed_out = timed_out
            self.run_handler(t, h, args)
            t.timed_out = False

    # ---- signals (the host kernel delivers them; we decide when and to whom)
    def sigaction_of(self, proc: Process, sig: int) -> tuple[int, int, int, int]:
        return proc.sigactions.get(sig, (0, 0, 0, 0))

    def is_ignored(self, proc: Process, sig: int) -> bool:
        handler = self.sigaction_of(proc, sig)[0]
        return handler == 1 or (handler == 0 and sig in DEFAULT_IGNORE)

    def send_signal(self, proc: Process, sig: int, thread: Task | None = None,
                    info: bytes | None = None) -> None:
        """Generate a signal for a process (or one thread of it), as kill/tgkill do.

        The host delivers it; the siginfo the guest sees (sender's guest pid and uid,
        SIGCHLD details) is queued here and written at the delivery stop."""
        if sig == 0 or proc.zombie or not proc.threads:
            return
        if info is None:
            cur = self.current
            code = -6 if thread is not None else 0           # SI_TKILL / SI_USER
            if cur is None:
                code = 0x80                                  # SI_KERNEL
            info = struct.pack("<iiiiiI", sig, 0, code, 0, cur.pid if cur else 0,
                               cur.creds.uid if cur else 0)
        q = proc.siginfo.setdefault(sig, deque())
        if sig < 32:
            q.clear()                  # standard signals do not queue: the last one wins
        q.append(info)
        if sig == signal.SIGKILL:
            if proc.stopped:
                proc.stopped = False
            for t in proc.alive_threads():
                self.platform.kill(t.host_tid, signal.SIGKILL, True)
            return
        if sig == signal.SIGCONT:
            self.job_continue(proc)
        handler = self.sigaction_of(proc, sig)[0]
        if sig in STOP_SIGNALS and handler == 0:
            if sig != signal.SIGSTOP and self.orphaned_pgrp(proc):
                return
            self.job_stop(proc, sig)
            return
        targets = [thread] if thread is not None else proc.alive_threads()
        if not targets:
            return
        # Always raise it on the host, even when ignored by default: the host knows the real
        # mask and disposition (a thread in sigtimedwait has the signal unblocked while it
        # waits, so reading /proc here could not tell), and discards it if it is ignored.
        self.platform.kill(targets[0].host_tid if thread is not None else proc.threads[0].host_tid,
                           sig, thread is not None)
        proc.signal_wait.notify()
        if self.is_ignored(proc, sig):
            return
        # a thread parked in our kernel that does not block sig is interrupted
        for t in targets:
            if t.state == ts.PARKED:
                _, blocked, _, _ = self.platform.signal_state(t.host_tid)
                if not blocked & (1 << (sig - 1)):
                    self.interrupt_parked(t, sig)
                    break

    def signal_pgrp(self, pgid: int, sig: int) -> None:
        for p in list(self.procs.values()):
            if p.pgid == pgid and not p.zombie:
                self.send_signal(p, sig)

    def is_blocked(self, t: Task, sig: int) -> bool:
        _, blocked, _, _ = self.platform.signal_state(t.host_tid)
        return bool(blocked & (1 << (sig - 1)))

    def send_signal_to_task(self, t: Task, sig: int) -> None:
        self.send_signal(t.process, sig, t)

    def interrupt_parked(self, t: Task, sig: int) -> None:
        """A signal arrived for a task blocked in our kernel: EINTR, or restart the call
        after the handler when SA_RESTART is set (the host delivers the signal on resume)."""
        self._unpark(t)
        h, _ = t.pending or (None, ())
        t.pending = None
        name = self.table.name(t.in_syscall_nr)
        handler, flags, _, _ = self.sigaction_of(t.process, sig)
        r = t.regs.r
        if handler > 1 and flags & 0x10000000 and name not in NO_RESTART:   # SA_RESTART
            r[pt.ORIG_RAX] = SKIP
            r[pt.RAX] = t.in_syscall_nr
            r[pt.RIP] -= 2
            t.regs.dirty = True
            t.state = ts.STOPPED
            self.resume(t)
        else:
            t.state = ts.STOPPED
            self.finish(t, -errno.EINTR)

    def on_signal(self, t: Task, sig: int) -> None:
        """A signal-delivery-stop: pass it to the guest, except job-control stops."""
        if self.strace:
            t.regs.load()
            info = self.platform.siginfo(t.host_tid)
            addr = int.from_bytes(info[16:24], "little")
            self.printk(f"[{t.tid}] signal {sig} at rip={t.regs.r[pt.RIP]:#x} addr={addr:#x}")
        q = t.process.siginfo.get(sig)
        if q:
            info = self.platform.siginfo(t.host_tid)
            if int.from_bytes(info[16:20], "little", signed=True) == self.host_pid:
                self.platform.set_siginfo(t.host_tid, q.popleft())
        if sig in STOP_SIGNALS and self.sigaction_of(t.process, sig)[0] == 0:
            self.job_stop(t.process, sig)
            self.resume(t)
            return
        self.resume(t, sig)

    # ---- job control
    def orphaned_pgrp(self, proc: Process) -> bool:
        return False

    def job_stop(self, proc: Process, sig: int) -> None:
        if proc.stopped:
            return
        proc.stopped = True
        proc.stop_report = sig
        proc.continued_report = False
        for t in proc.alive_threads():
            if t.state == ts.RUNNING:
                t.interrupting = True
                try:
                    self.platform.interrupt(t.host_tid)
                except OSError:
                    pass
        self.child_changed(proc, sig, stopped=True)

    def job_continue(self, proc: Process) -> None:
        if not proc.stopped:
            return
        proc.stopped = False
        proc.stop_report = None
        proc.continued_report = True
        for t in proc.alive_threads():
            if t.state == ts.HELD:
                self.resume(t, t.held_signal)
                t.held_signal = 0
        self.child_changed(proc, signal.SIGCONT, stopped=False)

    def child_changed(self, proc: Process, sig: int, stopped: bool) -> None:
        parent = proc.parent
        if parent is None:
            return
        parent.child_wait.notify()
        _, flags, _, _ = self.sigaction_of(parent, signal.SIGCHLD)
        if not flags & 1:       # SA_NOCLDSTOP
            self.send_signal(parent, signal.SIGCHLD)

    def on_group_stop(self, t: Task) -> None:
        if t.state == ts.NEW:
            t.state = ts.STOPPED
            if t.saved_args:               # the parent's clone arguments, as the guest set them
                t.regs.load()
                restore_args(t.regs.r, t.saved_args)
                t.regs.dirty = True
            self.resume(t)
            return
        t.interrupting = False
        if t.process.stopped:
            t.state = ts.HELD
            return
        self.resume(t)

    # ---- clone / exec / exit live in their own modules (lifecycle.py)
    from usermode.kernel.lifecycle import on_new_task, on_exec, on_exit, image_memfd  # noqa: E402
