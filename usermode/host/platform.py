"""The platform: run guest tasks until they need the kernel (gVisor's Platform).

The kernel talks to one `Platform` object (see `PtracePlatform` at the end): `spawn` the
first task, `next_stop()` -> (host tid, Stop, rusage) when a task needs the kernel, then
`resume` it (optionally through the syscall-exit stop), plus register, signal and
injection access. Back-ends register by name in PLATFORMS. The ptrace back-end: a guest
task is a host thread under PTRACE_SEIZE with our seccomp filter (RET_TRACE stops).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import struct
from dataclasses import dataclass
from typing import Callable, Iterator

from usermode.host import cpus
from usermode.host import ptrace as pt
from usermode.host import seccomp
from usermode.host.stub import (BATCH_CODE, BATCH_ENTRY, STUB_AFTER_SYSCALL, STUB_BATCH,
                                STUB_BATCH_DONE, STUB_DATA, STUB_SYSCALL)

# Stop kinds
SYSCALL, EXITED, SIGNALED, SIGNAL, EXEC, NEWTASK, GROUP_STOP, SYSCALL_EXIT, EVENT = range(9)


@dataclass(slots=True)
class Stop:
    kind: int
    value: int = 0       # signal number, exit status, or the new task's host tid
    event: int = 0


def decode(status: int) -> Stop:
    if os.WIFEXITED(status):
        return Stop(EXITED, os.WEXITSTATUS(status))
    if os.WIFSIGNALED(status):
        return Stop(SIGNALED, os.WTERMSIG(status))
    sig = (status >> 8) & 0xFF
    event = (status >> 16) & 0xFFFF
    if event == pt.EVENT_SECCOMP:
        return Stop(SYSCALL)
    if event == pt.EVENT_EXEC:
        return Stop(EXEC)
    if event in (pt.EVENT_FORK, pt.EVENT_VFORK, pt.EVENT_CLONE):
        return Stop(NEWTASK, event=event)
    if event == pt.EVENT_STOP:
        return Stop(GROUP_STOP, sig)
    if event:
        return Stop(EVENT, sig, event)
    if sig == (signal.SIGTRAP | 0x80):
        return Stop(SYSCALL_EXIT)
    return Stop(SIGNAL, sig)


def cpu_times(tid: int) -> tuple[float, float]:
    """(user, system) seconds of a live host thread, from /proc/<tid>/stat."""
    try:
        with open(f"/proc/{tid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0.0, 0.0
    fields = data[data.rfind(b")") + 2:].split()
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / hz, int(fields[12]) / hz


def wait_one(tid: int) -> int:
    _, status = os.waitpid(tid, pt.WALL)
    return status


class TaskRegs:
    """The saved registers of one stopped task, read once per stop (the syscall hot path:
    the ptrace calls are made directly, with the buffer address computed once)."""

    __slots__ = ("tid", "r", "dirty", "addr")

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self.r = pt.Regs()
        self.addr = ctypes.addressof(self.r)
        self.dirty = False

    def load(self) -> None:
        if _raw_ptrace(pt.GETREGS, self.tid, None, self.addr) == -1:
            pt.getregs(self.tid, self.r)           # raises the PtraceError
        self.dirty = False

    def store(self) -> None:
        if _raw_ptrace(pt.SETREGS, self.tid, None, self.addr) == -1:
            pt.setregs(self.tid, self.r)
        self.dirty = False

    def store_and_resume(self) -> None:
        """SETREGS if changed, then PTRACE_CONT: the end of every served syscall."""
        if self.dirty:
            self.store()
        if _raw_ptrace(pt.CONT, self.tid, None, 0) == -1:
            pt.cont(self.tid, 0)


_raw_ptrace = pt._ptrace
SECCOMP_STOP = signal.SIGTRAP | (pt.EVENT_SECCOMP << 8)     # status >> 8 of a syscall stop


def spawn_root(stub_path: str, filter_program: bytes) -> int:
    """Fork the first guest task: seized, filtered, and exec'ing the stub.

    Returns its host pid; the kernel then sees its syscall stop for the execve of the stub,
    and a PTRACE_EVENT_EXEC stop, after which the guest program is loaded.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            os.read(r, 1)            # wait until the kernel has seized us
            os.setsid()
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            os.chdir("/")
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)        # PR_SET_PDEATHSIG
            for s in range(1, signal.NSIG):
                try:
                    signal.signal(s, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            os.closerange(0, 65536)
            seccomp.install(filter_program)
            os.execve(stub_path, [stub_path], {})
        finally:
            os._exit(127)
    os.close(r)
    pt.seize(pid)
    os.write(w, b"x")
    os.close(w)
    return pid


class Memory:
    """Access to one guest address space through /proc/<tid>/mem (writes even read-only pages)."""

    __slots__ = ("fd",)

    def __init__(self, tid: int) -> None:
        self.fd = os.open(f"/proc/{tid}/mem", os.O_RDWR | os.O_CLOEXEC)

    def read(self, addr: int, n: int) -> bytes | None:
        try:
            data = os.pread(self.fd, n, addr)
        except (OSError, OverflowError):
            return None
        return data if len(data) == n else None

    def read_upto(self, addr: int, n: int) -> bytes:
        """As many bytes as are readable from addr, up to n (for C strings)."""
        try:
            return os.pread(self.fd, n, addr)
        except (OSError, OverflowError):
            if n > 4096:
                first = 4096 - (addr & 4095)
                head = self.read_upto(addr, first)
                if len(head) < first:
                    return head
                return head + self.read_upto(addr + first, n - first)
            return b""

    def write(self, addr: int, data: bytes) -> bool:
        try:
            return os.pwrite(self.fd, data, addr) == len(data)
        except (OSError, OverflowError):
            return False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


_WNOHANG_WALL = os.WNOHANG | pt.WALL


def kernel_pid() -> int:
    """The host pid signals from our kernel carry as si_pid (re-read after a fork)."""
    return os.getpid()


def resume(tid: int, sig: int = 0) -> None:
    pt.cont(tid, sig)


def resume_to_syscall_exit(tid: int) -> None:
    pt.syscall(tid, 0)


def interrupt(tid: int) -> None:
    pt.interrupt(tid)


def host_kill(tid: int, sig: int, thread: bool) -> None:
    """Send a real host signal to a guest task (the host kernel then runs the guest's handler)."""
    try:
        if thread:
            _tgkill(tid, sig)
        else:
            os.kill(tid, sig)
    except ProcessLookupError:
        pass


_libc = ctypes.CDLL(None, use_errno=True)


def _tgkill(tid: int, sig: int) -> None:
    tgid = _tgid_of(tid)
    _libc.syscall(234, tgid, tid, sig)


def _tgid_of(tid: int) -> int:
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return tid


def signal_state(tid: int) -> tuple[int, int, int, int]:
    """(pending, blocked, ignored, caught) signal masks of a host task, from /proc."""
    vals = {b"SigPnd:": 0, b"ShdPnd:": 0, b"SigBlk:": 0, b"SigIgn:": 0, b"SigCgt:": 0}
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            for line in f:
                k = line[:7]
                if k in vals:
                    vals[k] = int(line.split()[1], 16)
    except OSError:
        pass
    return (vals[b"SigPnd:"] | vals[b"ShdPnd:"], vals[b"SigBlk:"], vals[b"SigIgn:"],
            vals[b"SigCgt:"])


def host_auxv(tid: int) -> dict[int, int]:
    """The auxiliary vector the host gave a freshly exec'd stub (vDSO address, HWCAP)."""
    try:                    # os-level: open() would add fstat, ioctl and lseeks per exec
        fd = os.open(f"/proc/{tid}/auxv", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return {}
    out = {}
    for i in range(0, len(data) - 15, 16):
        k, v = struct.unpack_from("<QQ", data, i)
        if k == 0:
            break
        out[k] = v
    return out


def _status_kb(tid: int, key: bytes) -> int:
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def host_rss_kb(tid: int) -> int:
    return _status_kb(tid, b"VmRSS:")


def host_hwm_kb(tid: int) -> int:
    """The task's peak resident set so far (what getrusage reports as ru_maxrss)."""
    return _status_kb(tid, b"VmHWM:")


class Injector:
    """Runs system calls inside a stopped guest task, through the stub's `syscall; int3`.

    Precondition: the task is in a ptrace stop and its registers are saved in `saved`.
    Each injected call resumes the task at the stub; the call passes through the seccomp
    filter (a traced call gives one extra stop that we let through), then int3 stops it.
    Signals that arrive meanwhile are returned to the caller to redeliver.
    """

    def __init__(self, tid: int, mem=None) -> None:
        self.tid = tid
        if mem is not None:            # the task's memory, for batches and exec's writes
            self.write, self.read = mem.write, mem.read
        self.regs = pt.Regs()
        self.regs_current = False     # regs hold the task's registers as they are now
        self.deferred_signals: list[int] = []
        self.kernel_pid = os.getpid()  # whose fds borrow_fd and exec's batch lend
        self.refused_borrow = False    # exec's load found pidfd_getfd refused
        # the stub's code page: exec seals it (mseal), so the guest cannot rewrite it, and
        # its data page, private and sealed too: no other process can ever write it
        self.stub_page = (STUB_SYSCALL & ~0xFFF, 0x1000)
        self.stub_data = (STUB_DATA, 0x1000)

    def load_regs(self) -> "pt.Regs":
        """The task's registers now (also the starting point of the next call)."""
        pt.getregs(self.tid, self.regs)
        self.regs_current = True
        return self.regs

    @contextlib.contextmanager
    def unfiltered(self) -> Iterator[None]:
        """Injected calls skip the seccomp filter's stop (one round trip each instead of
        two), where the host lets us (PTRACE_O_SUSPEND_SECCOMP needs CAP_SYS_ADMIN).
        Only for a task that no guest code can run in meanwhile: exec's fresh, single-
        threaded address space, before its first instruction."""
        try:
            pt.setoptions(self.tid, pt.GUEST_OPTIONS | pt.O_SUSPEND_SECCOMP)
        except pt.PtraceError:
            yield
            return
        try:
            yield
        finally:
            pt.setoptions(self.tid, pt.GUEST_OPTIONS)

    def borrow_fd(self, kernel_fd: int) -> int:
        """A copy of one of the kernel's own fds (a page-cache memfd) in this task, by
        pidfd_getfd, or -errno. The caller closes it (close_fd) as soon as it is mapped:
        registers carry every argument, so nothing the guest could race with is read from
        its memory, and no guest code runs while the fd exists."""
        pidfd = self.call(434, self.kernel_pid, 0)             # pidfd_open(kernel)
        if pidfd < 0:
            return pidfd
        try:
            return self.call(438, pidfd, kernel_fd, 0)         # pidfd_getfd
        finally:
            self.call(3, pidfd)                                # close

    def close_fd(self, fd: int) -> None:
        self.call(3, fd)

    def map_host_fd_at_once(self, kernel_fd: int, addr: int, length: int, prot: int,
                            flags: int, offset: int) -> int:
        """map_host_fd in one stop: the borrow, the mmap and the closes as one batch, its
        table in the stub's sealed data page, run past the filter. Only for a task whose
        address space no other task shares (the page is then written by nobody else) and
        whose stub is sealed (its code is ours)."""
        calls = [(434, (self.kernel_pid, 0), 0, 0),          # pidfd_open(kernel)
                 (438, (0, kernel_fd, 0), 1, 0),               # pidfd_getfd(#0, fd)
                 (3, (0,), 1, 0),                              # close(#0)
                 (9, (addr, length, prot, flags, 0, offset), 0, 2),   # mmap(..., #1, ...)
                 (3, (0,), 2, 0)]                              # close(#1)
        with self.unfiltered():
            res = self.batch(calls, STUB_DATA)
        for r in res[:2]:
            if r < 0:
                raise BorrowRefused(-r)
        return res[3]

    def map_host_fd(self, kernel_fd: int, addr: int, length: int, prot: int, flags: int,
                    offset: int) -> int:
        """mmap one of the kernel's own fds into this task (see borrow_fd)."""
        hfd = self.borrow_fd(kernel_fd)
        if hfd < 0:
            raise BorrowRefused(-hfd)
        try:
            return self.call(9, addr, length, prot, flags, hfd, offset)
        finally:
            self.close_fd(hfd)

    def call(self, nr: int, *args: int) -> int:
        r = self.regs
        tid = self.tid
        if not self.regs_current:
            pt.getregs(tid, r)
        self.regs_current = False
        r[pt.RAX] = nr
        r[pt.ORIG_RAX] = 0xFFFFFFFFFFFFFFFF
        for reg, val in zip((pt.RDI, pt.RSI, pt.RDX, pt.R10, pt.R8, pt.R9), args):
            r[reg] = val & 0xFFFFFFFFFFFFFFFF
        r[pt.RIP] = STUB_SYSCALL
        pt.setregs(tid, r)
        want = (nr, *(a & M64 for a in args))
        self.run_until_trap(STUB_AFTER_SYSCALL + 1,
                            lambda g: (g[pt.ORIG_RAX], g[pt.RDI], g[pt.RSI], g[pt.RDX],
                                       g[pt.R10], g[pt.R8], g[pt.R9])[:len(want)] == want
                            and g[pt.RIP] == STUB_AFTER_SYSCALL)
        self.regs_current = True               # the next call starts from these
        res = r[pt.RAX]
        return res - (1 << 64) if res >= (1 << 63) else res

    def batch(self, calls: "list[tuple[int, tuple[int, ...], int, int]]", table: int) -> list[int]:
        """Run calls (nr, args, ref1, ref5) in a row inside the stopped task, in one stop:
        a nonzero ref1/ref5 adds the result of entry ref - 1 to a1/a5 (stub_batch.S). The
        table is written
        at `table`, which must be memory no other task can write while the loop reads it
        (exec's fresh stack), the stub's loop runs it, and the results (-errno for a
        failure) are read back through the task's memory (Injector(tid, mem))."""
        blob = b"".join(_ENTRY.pack(nr, *(list(a & M64 for a in args) + [0] * 6)[:6],
                                    ref1, ref5) for nr, args, ref1, ref5 in calls) + _END
        if not self.write(table, blob):
            raise InjectError("cannot write the batch table")
        r, tid = self.regs, self.tid
        if not self.regs_current:
            pt.getregs(tid, r)
        r[pt.ORIG_RAX] = M64
        r[pt.R12] = table
        r[pt.RIP] = STUB_BATCH
        pt.setregs(tid, r)
        nrs = {c[0] for c in calls}
        self.run_until_trap(STUB_BATCH_DONE,
                            lambda g: g[pt.ORIG_RAX] in nrs and g[pt.RIP] == BATCH_SYSCALL_END)
        self.regs_current = True
        out = self.read(table, len(calls) * BATCH_ENTRY)
        if out is None:
            raise InjectError("cannot read the batch results")
        res = [int.from_bytes(out[i:i + 8], "little")
               for i in range(0, len(calls) * BATCH_ENTRY, BATCH_ENTRY)]
        return [v - (1 << 64) if v >> 63 else v for v in res]

    def run_until_trap(self, rip: int, ours: "Callable[[pt.Regs], bool]") -> None:
        """Resume the task and wait for the stub's int3 (the task stopped with rip there);
        self.regs then hold its registers. Signals that arrive meanwhile are deferred.
        A call the filter stops is let through only if ours(registers) says it is the
        one we injected: the guest can rewrite the stub's page (mprotect is native), and
        must not get a call of its choosing run natively that way."""
        tid, r = self.tid, self.regs
        pt.cont(tid, 0)
        while True:
            status = wait_one(tid)
            st = decode(status)
            if st.kind == SYSCALL:
                pt.getregs(tid, r)
                if not ours(r):
                    host_kill(tid, signal.SIGKILL, True)
                    raise InjectError(f"task {tid} subverted an injected call "
                                      f"(syscall {r[pt.ORIG_RAX]} at {r[pt.RIP]:#x})")
                pt.cont(tid, 0)          # our own call, traced by the filter: let it run
                continue
            if st.kind == SIGNAL and st.value == signal.SIGTRAP:
                pt.getregs(tid, r)
                if r[pt.RIP] == rip:
                    return
                raise InjectError(f"unexpected SIGTRAP at {r[pt.RIP]:#x}")
            if st.kind == SIGNAL:
                self.deferred_signals.append(st.value)
                pt.cont(tid, 0)
                continue
            if st.kind == GROUP_STOP:
                pt.cont(tid, 0)
                continue
            raise InjectError(f"task {tid} ended during an injected syscall ({st})")


M64 = 0xFFFFFFFFFFFFFFFF


_ENTRY = struct.Struct("<7Q2B6x")      # BATCH_ENTRY bytes
BATCH_SYSCALL_END = STUB_BATCH + BATCH_CODE.index(b"\x0f\x05") + 2   # rip after its syscall
_END = M64.to_bytes(8, "little")       # the table's closing nr: -1


class InjectError(Exception):
    pass


class BorrowRefused(Exception):
    """The host will not lend the kernel's fds to a guest task (pidfd_open/pidfd_getfd
    fail: Yama ptrace_scope, an old kernel); args[0] is the errno."""


class PtracePlatform:
    """The ptrace + seccomp RET_TRACE back-end."""

    name = "ptrace"

    def spawn(self, stub_path: str, filter_program: bytes) -> int:
        return spawn_root(stub_path, filter_program)

    @staticmethod
    def next_stop() -> "tuple[int, int, object] | None":
        """The next task that needs the kernel, without blocking: (tid, wait status,
        rusage). `status >> 8 == SECCOMP_STOP` is a syscall stop; `decode` the others."""
        try:
            ws = os.wait4(-1, _WNOHANG_WALL)
        except ChildProcessError:
            return None
        return ws if ws[0] else None

    SECCOMP_STOP = SECCOMP_STOP
    decode = staticmethod(decode)

    resume = staticmethod(resume)
    resume_to_syscall_exit = staticmethod(resume_to_syscall_exit)
    interrupt = staticmethod(interrupt)
    kill = staticmethod(host_kill)
    set_affinity = staticmethod(cpus.pin)
    signal_state = staticmethod(signal_state)
    auxv = staticmethod(host_auxv)
    rss_kb = staticmethod(host_rss_kb)
    hwm_kb = staticmethod(host_hwm_kb)
    cpu_times = staticmethod(cpu_times)
    event_msg = staticmethod(pt.geteventmsg)
    siginfo = staticmethod(pt.getsiginfo)
    set_siginfo = staticmethod(pt.setsiginfo)
    getregs = staticmethod(pt.getregs)
    continue_to_syscall = staticmethod(pt.syscall)
    Regs = TaskRegs
    Injector = Injector
    Error = pt.PtraceError

    @staticmethod
    def kernel_pid() -> int:
        return kernel_pid()


PLATFORMS = {"ptrace": PtracePlatform}


def get_platform(name: str = "ptrace") -> PtracePlatform:
    try:
        return PLATFORMS[name]()
    except KeyError:
        raise ValueError(f"unknown platform {name!r} (have: {', '.join(PLATFORMS)})") from None
