"""Unix98 pseudo-terminals: /dev/ptmx masters and /dev/pts/N slaves (drivers/tty/pty.c).

Each open of /dev/ptmx (char 5,2) makes a pair. The slave is a Tty (the N_TTY discipline
of tty.py) shown as /dev/pts/N (char 136,N) by devpts; the master is a plain File: what
the slave's Tty outputs (after OPOST) is queued for master reads, and master writes are
typed into the slave with Tty.receive(). Both directions are bounded so a writer blocks
when the other side does not read: 4 KiB of slave input (N_TTY_BUF_SIZE), 64 KiB of output.
A blocking write is taken whole once there is any room (Linux's n_tty completes blocking
writes, and a handler that blocks is re-run from scratch, so it cannot keep a partial
count): a queue may exceed its bound by one write. O_NONBLOCK writes take what fits.

Hangups follow Linux: closing the master hangs the slave up (SIGHUP to its foreground
group, reads return 0, writes EIO); once the slave was opened, closing its last fd makes
master reads return EIO (after the queued output) and poll report POLLHUP.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from usermode.drivers.tty import (FIONREAD, ICANON, TCFLSH, TCGETS, TCSBRK, TCSBRKP, TCSETS,
                                  TCSETSF, TCSETSW, TCXONC, TIOCGPGRP, TIOCGPTN, TIOCGPTPEER,
                                  SIGTTOU, TIOCGSID, TIOCGWINSZ, TIOCOUTQ, TIOCSPTLCK,
                                  TIOCSWINSZ, Tty, TtyFile)
from usermode.fs.devpts import PTMX_MAJOR, PTMX_MINOR, PTS_MAJOR, DevPtsFS
from usermode.fs.devpts import register as register_devpts
from usermode.fs.file import (O_ACCMODE, O_CLOEXEC, O_NOCTTY, O_NONBLOCK, POLLHUP, POLLIN,
                              POLLOUT, POLLRDNORM, POLLWRNORM, File)
from usermode.fs.stat import makedev
from usermode.kernel.errors import Block, Errno
from usermode.kernel.wait import WaitQueue

if TYPE_CHECKING:
    from usermode.fs.vfs import VFS
    from usermode.kernel.task import Task

INPUT_MAX = 4095            # N_TTY_BUF_SIZE - 1: slave input (line + ready) bytes
OUTPUT_MAX = 64 * 1024      # slave output queued for the master
MAX_PTYS = 4096             # /proc/sys/kernel/pty/max
TIOCPKT = 0x5420
TIOCSIG = 0x40045436


class PtyPair:
    """One master/slave pair."""

    def __init__(self, driver: "PtyDriver", index: int, uid: int, gid: int) -> None:
        self.driver = driver
        self.index = index
        self.tty = Tty(f"pts/{index}", self._slave_output, driver.kernel)
        self.out = bytearray()            # slave output waiting for master reads
        self.mwq = WaitQueue()            # master readiness
        self.locked = True                # until unlockpt (TIOCSPTLCK 0)
        self.master_open = True
        self.slave_opens = 0
        self.slave_opened_once = False
        self.node = driver.devpts.add(index, uid, gid)

    # the slave Tty's driver_write: output (and echo) after OPOST
    def _slave_output(self, data: bytes) -> None:
        if not self.master_open:
            return
        self.out += data
        self.mwq.notify()

    @property
    def slave_hup(self) -> bool:
        """Every slave fd was closed after one was opened (master sees EIO / POLLHUP)."""
        return self.slave_opened_once and self.slave_opens == 0

    def input_room(self) -> int:
        t = self.tty
        return INPUT_MAX - len(t.line) - len(t.ready)

    def notify(self) -> None:
        self.mwq.notify()
        self.tty.waitq.notify()

    def maybe_free(self) -> None:
        if not self.master_open and self.slave_opens == 0:
            self.driver.pairs.pop(self.index, None)
            self.tty.close_log()


class PtyMaster(File):
    """The fd /dev/ptmx returned."""

    def __init__(self, pair: PtyPair, flags: int) -> None:
        super().__init__(flags)
        self.pair = pair
        self.waitq = pair.mwq
        self.released = False

    def name(self) -> bytes:
        return b"/dev/ptmx"

    def read(self, t: "Task", n: int) -> bytes:
        p = self.pair
        if n == 0:
            return b""
        if p.out:
            data = bytes(p.out[:n])
            del p.out[:n]
            p.tty.waitq.notify()          # slave writers may continue
            return data
        if p.slave_hup:
            raise Errno(errno.EIO)
        if self.nonblocking:
            raise Errno(errno.EAGAIN)
        raise Block(p.mwq)

    def write(self, t: "Task", data: bytes) -> int:
        p = self.pair
        tty = p.tty
        if not data:
            return 0
        room = p.input_room()
        if room <= 0:
            if tty.lflag & ICANON and not tty.ready:
                # a full line with no end: like N_TTY, further characters are dropped
                # (line-ending and control characters still go through)
                tty.receive(bytes(b for b in data if b < 32 or b == 127))
                p.notify()
                return len(data)
            if self.nonblocking:
                raise Errno(errno.EAGAIN)
            raise Block(p.mwq)
        chunk = data[:room] if self.nonblocking else data
        tty.receive(chunk)
        p.mwq.notify()
        return len(chunk)

    def poll(self) -> int:
        p = self.pair
        mask = 0
        if p.out:
            mask |= POLLIN | POLLRDNORM
        if p.slave_hup:
            mask |= POLLHUP | POLLIN | POLLRDNORM
        if p.input_room() > 0:
            mask |= POLLOUT | POLLWRNORM
        return mask

    def ioctl(self, t: "Task", cmd: int, arg: int) -> int:
        p = self.pair
        mm = t.mm
        if cmd == TIOCGPTN:
            mm.write_u32(arg, p.index)
            return 0
        if cmd == TIOCSPTLCK:
            p.locked = mm.read_i32(arg) != 0
            return 0
        if cmd == TIOCGPTPEER:
            return self._open_peer(t, arg & 0xFFFFFFFF)
        if cmd == FIONREAD:
            mm.write_i32(arg, len(p.out))
            return 0
        if cmd == TIOCOUTQ:
            mm.write_i32(arg, len(p.tty.line) + len(p.tty.ready))
            return 0
        if cmd in (TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, TIOCSWINSZ, TIOCGPGRP,
                   TIOCGSID, TCFLSH):
            return p.tty.ioctl(t, cmd, arg)     # Linux acts on the slave (tty->link)
        if cmd == TIOCSIG:
            sig = arg & 0xFFFFFFFF
            if not 0 < sig < 65:
                raise Errno(errno.EINVAL)
            if p.tty.pgrp:
                p.tty.kernel.signal_pgrp(p.tty.pgrp, sig)
            return 0
        if cmd == TIOCPKT:
            if mm.read_i32(arg):
                raise Errno(errno.EINVAL)       # packet mode is not implemented
            return 0
        if cmd in (TCSBRK, TCSBRKP, TCXONC):
            return 0
        raise Errno(errno.ENOTTY)

    def _open_peer(self, t: "Task", flags: int) -> int:
        """TIOCGPTPEER: open the slave without a path lookup; returns the new fd."""
        if flags & ~(O_ACCMODE | O_NOCTTY | O_NONBLOCK | O_CLOEXEC):
            raise Errno(errno.EINVAL)
        f = self.pair.driver.open_slave(t, self.pair, flags)
        try:
            return t.files.install(f, bool(flags & O_CLOEXEC))
        except Errno:
            f.release()
            raise

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        p = self.pair
        p.master_open = False
        p.out.clear()
        p.driver.devpts.remove(p.index)
        tty = p.tty
        kernel = tty.kernel
        tty.hangup()
        procs = getattr(kernel, "procs", None)
        if procs:
            for proc in procs.values():
                if getattr(proc, "ctty", None) is tty:
                    proc.ctty = None
        tty.session = None
        tty.pgrp = 0
        p.notify()
        p.maybe_free()


class PtsFile(TtyFile):
    """An open /dev/pts/N."""

    def __init__(self, pair: PtyPair, flags: int) -> None:
        super().__init__(pair.tty, flags, f"/dev/pts/{pair.index}")
        self.pair = pair
        self.released = False

    def read(self, t: "Task", n: int) -> bytes:
        data = super().read(t, n)
        if data:
            self.pair.mwq.notify()          # input room for master writers
        return data

    def write(self, t: "Task", data: bytes) -> int:
        p = self.pair
        if self.tty.hung_up:
            raise Errno(errno.EIO)
        self.tty.check_background(t, SIGTTOU)
        if not data:
            return 0
        room = OUTPUT_MAX - len(p.out)
        if room <= 0:
            if self.nonblocking:
                raise Errno(errno.EAGAIN)
            raise Block(self.tty.waitq)
        chunk = data[:room] if self.nonblocking else data
        self.tty.output(chunk)
        return len(chunk)

    def poll(self) -> int:
        p = self.pair
        tty = self.tty
        if tty.hung_up:
            return POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM | POLLHUP
        mask = POLLIN | POLLRDNORM if tty.readable() else 0
        if len(p.out) < OUTPUT_MAX:
            mask |= POLLOUT | POLLWRNORM
        return mask

    def ioctl(self, t: "Task", cmd: int, arg: int) -> int:
        if self.tty.hung_up and cmd not in (TCGETS, TIOCGWINSZ):
            raise Errno(errno.EIO)
        data_before = len(self.tty.ready)
        r = super().ioctl(t, cmd, arg)
        if len(self.tty.ready) != data_before:
            self.pair.mwq.notify()
        return r

    def stat(self):
        if self.vpath is not None:
            st = self.vpath.dentry.inode.getattr()
            st.mnt_id = self.vpath.mount.id
            return st
        return self.pair.node.getattr()

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        p = self.pair
        p.slave_opens -= 1
        p.notify()
        p.maybe_free()


class PtyDriver:
    """All the ptys of one kernel, and the devpts instance that shows them."""

    def __init__(self, vfs: "VFS", kernel) -> None:
        self.vfs = vfs
        self.kernel = kernel
        self.devpts = DevPtsFS()
        self.pairs: dict[int, PtyPair] = {}

    def _free_index(self) -> int:
        i = 0
        while i in self.pairs:
            i += 1
        if i >= MAX_PTYS:
            raise Errno(errno.ENOSPC)
        return i

    def open_ptmx(self, t: "Task", flags: int) -> File:
        """open(/dev/ptmx): a new pair; the returned File is its master."""
        index = self._free_index()
        creds = getattr(t, "creds", None)
        uid = creds.fsuid if creds is not None else 0
        gid = creds.fsgid if creds is not None else 0
        pair = PtyPair(self, index, uid, gid)
        self.pairs[index] = pair
        if self.vfs.devices.opener(False, makedev(PTS_MAJOR, index)) is None:
            self.vfs.register_chrdev(PTS_MAJOR, index,
                                     lambda t, flags, i=index: self.open_pts(t, i, flags))
        return PtyMaster(pair, flags)

    def open_pts(self, t: "Task", index: int, flags: int) -> File:
        """open(/dev/pts/N)."""
        pair = self.pairs.get(index)
        if pair is None or not pair.master_open:
            raise Errno(errno.EIO)
        return self.open_slave(t, pair, flags)

    def open_slave(self, t: "Task", pair: PtyPair, flags: int) -> PtsFile:
        if pair.locked or not pair.master_open:
            raise Errno(errno.EIO)
        f = PtsFile(pair, flags)
        pair.slave_opens += 1
        pair.slave_opened_once = True
        if not flags & O_NOCTTY and t is not None and hasattr(t, "process"):
            f.attach_ctty(t)
        pair.mwq.notify()
        return f


def register(vfs: "VFS", kernel) -> PtyDriver:
    """/dev/ptmx, the devpts filesystem type, and devpts mounted on /dev/pts when the
    root has one (as devfs does)."""
    driver = PtyDriver(vfs, kernel)
    vfs.register_chrdev(PTMX_MAJOR, PTMX_MINOR, driver.open_ptmx, "ptmx", 0o666)
    register_devpts(vfs, driver.devpts)
    try:
        target = vfs.lookup_kernel("/dev/pts")
    except Errno:
        return driver
    if target.dentry.inode.is_dir and target.dentry.inode.sb is not driver.devpts:
        try:
            vfs.mount(driver.devpts, target, source="devpts")
        except Errno:
            pass
    return driver
