"""Tasks (threads) and processes (thread groups) of the guest.

A Task is one guest thread, backed by one traced host thread. What a handler may use:
  t.tid, t.process (t.pid is the thread group id), t.kernel,
  t.mm      guest memory: copy_in/copy_out/read_cstr/read_u64/write_u64 ...
  t.fs      FsContext (root, cwd, umask), shared under CLONE_FS
  t.files   FdTable, shared under CLONE_FILES
  t.creds   Creds, the guest's own uid/gid
  t.regs    the saved host registers of this stop (TaskRegs; r[...] indexes)
  t.timed_out  True when a handler is re-run after its Block timeout expired
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from usermode.host.platform import TaskRegs
from usermode.kernel.creds import Creds
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.kernel.kernel import Kernel
    from usermode.kernel.mm import MM

# task states, from the kernel's point of view
RUNNING = 0      # resumed; in guest user mode (or in a native host syscall)
STOPPED = 1      # in a ptrace stop, being handled
PARKED = 2       # in a ptrace stop, waiting on wait queues (a blocked syscall)
HELD = 3         # in a ptrace stop, held by job control (SIGSTOP) or by mconsole stop
NEW = 4          # created by clone, its first stop not seen yet
DEAD = 5

RLIM_INFINITY = (1 << 64) - 1


class Process:
    """A thread group: pid, the process tree, sessions, signal dispositions, the mm."""

    def __init__(self, kernel: "Kernel", pid: int, parent: "Process | None") -> None:
        self.kernel = kernel
        self.pid = pid
        self.parent = parent
        self.children: list[Process] = []
        self.threads: list[Task] = []
        self.pgid = parent.pgid if parent else pid
        self.sid = parent.sid if parent else pid
        self.mm: MM | None = None
        self.creds = parent.creds.copy() if parent else Creds()
        self.comm = b""
        self.cmdline: list[bytes] = []
        self.environ: list[bytes] = []
        self.exe = ""
        self.exit_signal = 17                  # SIGCHLD
        self.zombie = False
        self.exit_status = 0                   # wait status word, as wait4 reports it
        self.reaped = False
        self.stopped = False                   # job-control stopped
        self.stop_report: int | None = None    # stop/continue event not yet waited for
        self.continued_report = False
        self.child_wait = WaitQueue()          # notified when a child changes state
        self.signal_wait = WaitQueue()         # notified when a signal is sent (signalfd)
        # sig -> (handler, flags, mask, restorer); what the guest last set, reset by exec
        self.sigactions: dict[int, tuple[int, int, int, int]] = {}
        self.siginfo: dict[int, deque[bytes]] = {}   # what the guest sees at delivery
        self.real_timer = None
        self.rlimits: dict[int, tuple[int, int]] = {}
        self.start_time = kernel.clock.monotonic()
        self.utime = self.stime = 0.0          # of threads that have exited
        self.cutime = self.cstime = 0.0        # of reaped children (and theirs)
        self.maxrss = self.cmaxrss = 0
        self.vfork_parent: Task | None = None
        self.ctty = None
        self.exe_execd = False                 # exec'd since fork (setpgid EACCES)
        self.nice = parent.nice if parent else 0             # both inherited by fork
        self.ioprio = parent.ioprio if parent else 0         # 0: IOPRIO_CLASS_NONE
        self.pdeath_signal = 0
        self.personality = 0
        self.subreaper = False

    @property
    def leader(self) -> "Task | None":
        return self.threads[0] if self.threads else None

    def alive_threads(self) -> list["Task"]:
        return [t for t in self.threads if t.state != DEAD]


class Task:
    __slots__ = ("kernel", "tid", "host_tid", "process", "regs", "state", "fs", "files",
                 "creds", "mm", "pending", "timed_out", "wait_queues", "deadline",
                 "after_native", "clear_child_tid", "robust_list", "comm", "wake_fn",
                 "deferred_signals", "exec_pending", "started", "in_syscall_nr",
                 "interrupting", "held_signal", "clone_req",
                 "exec_reaped", "saved_args", "cpu_mask",
                 "__weakref__")

    def __init__(self, kernel: "Kernel", tid: int, host_tid: int, process: Process) -> None:
        self.kernel = kernel
        self.tid = tid
        self.host_tid = host_tid
        self.process = process
        self.regs = TaskRegs(host_tid)
        self.state = NEW
        self.fs: Any = None
        self.files: Any = None
        self.creds = process.creds
        self.mm: MM | None = process.mm
        # the parked syscall: (handler, args) re-run on wake
        self.pending: tuple[Callable[..., int], tuple[int, ...]] | None = None
        self.timed_out = False
        self.wait_queues: tuple[WaitQueue, ...] = ()
        self.deadline: float | None = None
        self.after_native: Callable[["Task", int], int] | None = None
        self.clear_child_tid = 0
        self.robust_list = 0
        self.comm = b""
        self.wake_fn = self._wake
        self.deferred_signals: list[int] = []
        self.exec_pending: Any = None
        self.started = False
        self.in_syscall_nr = -1
        self.interrupting = False
        self.held_signal = 0
        self.clone_req = None
        self.exec_reaped = False
        self.saved_args: tuple[int, ...] = ()
        self.cpu_mask = (1 << kernel.ncpus) - 1    # sched_setaffinity's, in guest CPUs

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wake(self) -> None:
        self.kernel.wake(self)

    def __repr__(self) -> str:
        return f"<Task {self.tid} host {self.host_tid} state {self.state}>"
