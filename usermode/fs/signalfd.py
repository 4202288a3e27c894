"""signalfd(2): read the reading task's pending signals as struct signalfd_siginfo.

The signals are pending in the host task (the guest blocks them with a native
sigprocmask); `host` does the host side: `host.pending(t)` is the mask of signals pending
for task t (its own and its process's), `host.dequeue(t, mask)` takes one of them and
returns its guest-visible siginfo (128 bytes) or None. Readers and pollers wait on the
reading process's `signal_wait` queue, which the kernel notifies whenever it sends that
process a signal.
"""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Protocol

from usermode.fs.file import O_NONBLOCK, O_RDWR, POLLIN, File
from usermode.kernel.errors import Block, Errno
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.kernel.task import Task

SFD_NONBLOCK, SFD_CLOEXEC = 0o4000, 0o2000000
SIGKILL, SIGSTOP = 9, 19
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))
SIGINFO_SIZE = 128

SI_USER, SI_KERNEL, SI_TIMER, SI_SIGIO = 0, 0x80, -2, -5
SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV, SIGCHLD, SIGPOLL, SIGSYS = 4, 5, 7, 8, 11, 17, 29, 31
# siginfo layouts (kernel/signal.c siginfo_layout)
KILL, TIMER, POLL, FAULT, FAULT_MCEERR, CHLD, RT, SYS = range(8)
_FILTER = {SIGILL: (11, FAULT), SIGFPE: (15, FAULT), SIGSEGV: (10, FAULT),
           SIGBUS: (5, FAULT), SIGTRAP: (6, FAULT), SIGCHLD: (6, CHLD), SIGPOLL: (6, POLL),
           SIGSYS: (1, SYS)}


class SignalHost(Protocol):
    def pending(self, t: "Task") -> int: ...

    def dequeue(self, t: "Task", mask: int) -> bytes | None: ...


def sanitize(mask: int) -> int:
    return mask & ((1 << 64) - 1) & ~UNBLOCKABLE


def layout(sig: int, code: int) -> int:
    if SI_USER < code < SI_KERNEL:
        lim = _FILTER.get(sig)
        if lim is not None and code <= lim[0]:
            if sig == SIGBUS and code in (4, 5):
                return FAULT_MCEERR
            return lim[1]
        return POLL if code <= 6 else KILL
    if code == SI_TIMER:
        return TIMER
    if code == SI_SIGIO:
        return POLL
    if code < 0:
        return RT
    return KILL


def to_signalfd_siginfo(info: bytes) -> bytes:
    """struct siginfo (x86-64) -> struct signalfd_siginfo, field by field as
    fs/signalfd.c signalfd_copyinfo does."""
    info = info.ljust(SIGINFO_SIZE, b"\0")
    signo, err, code = struct.unpack_from("<iii", info, 0)
    out = bytearray(SIGINFO_SIZE)
    struct.pack_into("<Iii", out, 0, signo & 0xFFFFFFFF, err, code)
    u32 = lambda off: struct.unpack_from("<I", info, off)[0]     # noqa: E731
    i32 = lambda off: struct.unpack_from("<i", info, off)[0]     # noqa: E731
    u64 = lambda off: struct.unpack_from("<Q", info, off)[0]     # noqa: E731
    lay = layout(signo, code)
    if lay in (KILL, CHLD, RT):
        struct.pack_into("<II", out, 12, u32(16), u32(20))           # ssi_pid, ssi_uid
    if lay == TIMER:
        struct.pack_into("<I", out, 24, u32(16))                     # ssi_tid
        struct.pack_into("<I", out, 32, u32(20))                     # ssi_overrun
    if lay in (TIMER, RT):
        struct.pack_into("<Q", out, 48, u64(24))                     # ssi_ptr
        struct.pack_into("<i", out, 44, i32(24))                     # ssi_int
    if lay == POLL:
        struct.pack_into("<I", out, 28, u64(16) & 0xFFFFFFFF)        # ssi_band
        struct.pack_into("<i", out, 20, i32(24))                     # ssi_fd
    if lay in (FAULT, FAULT_MCEERR):
        struct.pack_into("<Q", out, 72, u64(16))                     # ssi_addr
    if lay == FAULT_MCEERR:
        struct.pack_into("<H", out, 80, struct.unpack_from("<H", info, 24)[0])
    if lay == CHLD:
        struct.pack_into("<i", out, 40, i32(24))                     # ssi_status
        struct.pack_into("<QQ", out, 56, u64(32), u64(40))           # ssi_utime, ssi_stime
    if lay == SYS:
        struct.pack_into("<Q", out, 88, u64(16))                     # ssi_call_addr
        struct.pack_into("<iI", out, 84, i32(24), 0)                 # ssi_syscall
        struct.pack_into("<I", out, 96, u32(28))                     # ssi_arch
    return bytes(out)


class SignalFd(File):
    def __init__(self, owner: "Task", mask: int, flags: int, host: SignalHost) -> None:
        super().__init__(O_RDWR | (flags & O_NONBLOCK))
        self.mask = sanitize(mask)
        self.owner = owner              # polls outside a syscall use the creator's view
        self.host = host

    def set_mask(self, mask: int) -> None:
        self.mask = sanitize(mask)
        self.waitq.notify()

    def _reader(self) -> "Task":
        cur = self.owner.kernel.current
        return cur if cur is not None else self.owner

    def read(self, t: "Task", n: int) -> bytes:
        count = n // SIGINFO_SIZE
        if not count:
            raise Errno(errno.EINVAL)
        if not self.host.pending(t) & self.mask:
            if self.nonblocking:
                raise Errno(errno.EAGAIN)
            raise Block(self.waitq, t.process.signal_wait)
        out = []
        while len(out) < count:
            info = self.host.dequeue(t, self.mask)
            if info is None:
                break
            out.append(to_signalfd_siginfo(info))
        if not out:                 # raced away (another thread took it): look again
            if self.nonblocking:
                raise Errno(errno.EAGAIN)
            raise Block(self.waitq, t.process.signal_wait)
        return b"".join(out)

    def poll(self) -> int:
        return POLLIN if self.host.pending(self._reader()) & self.mask else 0

    def poll_queues(self) -> list[WaitQueue]:
        return [self.waitq, self._reader().process.signal_wait]

    def name(self) -> bytes:
        return b"anon_inode:[signalfd]"
