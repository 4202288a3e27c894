"""One usermode instance: its kernel, filesystems, console and init (the embedding API).

    from usermode import Machine
    m = Machine(root="/srv/guest", init=["/bin/sh", "-c", "echo hi"])
    status = m.run()          # init's exit status, like a shell reports it
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from usermode import __version__
from usermode.kernel.errors import Errno

DEFAULT_ENV = ["HOME=/", "TERM=linux",
               "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


class BootError(Exception):
    """A machine could not boot (bad image, missing init ...): one line for the user."""


def _ext_kind(fs) -> str:
    """What Linux reports an auto-detected root as: ext4 with ext4-only features, ext3
    with a journal, ext2 otherwise."""
    from usermode.fs import ext2_disk as disk
    sbi = fs.sbi
    if sbi.feature_incompat & (disk.INCOMPAT_EXTENTS | disk.INCOMPAT_64BIT | disk.INCOMPAT_FLEX_BG):
        return "ext4"
    return "ext3" if sbi.feature_compat & disk.COMPAT_HAS_JOURNAL else "ext2"


def parse_mem(text: str) -> int:
    """`mem=` as UML takes it: a number with an optional K, M or G suffix."""
    t = text.strip().upper()
    mult = 1
    if t and t[-1] in "KMG":
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[t[-1]]
        t = t[:-1]
    if not t.isdigit() or int(t) == 0:
        raise BootError(f"mem={text}: expected a size like 128M")
    return int(t) * mult


@dataclass
class BootContext:
    """What exec's checks need before init exists: its credentials and filesystem view."""
    kernel: object
    fs: object
    creds: object
    files: object = None


@dataclass
class Machine:
    root: str = "/"
    init: list[str] = field(default_factory=lambda: ["/sbin/init"])
    env: list[str] = field(default_factory=lambda: list(DEFAULT_ENV))
    cwd: str = "/"
    mem: str = "128M"
    stdin: int = 0
    stdout: int = 1
    quiet: bool = True
    cmdline: str = ""
    log: object = None            # callable(str) for kernel messages; default: stderr if not quiet
    ncpus: int = 1                # guest CPUs; the instance runs on that many host CPUs (host/cpus.py)
    strace: bool = False
    platform: str = "ptrace"      # the back-end that runs guest tasks (host/platform.py)
    hostfs: str | None = None     # UML's hostfs=DIR: guest `mount -t hostfs` confined to DIR
    umid: str | None = None       # UML's umid=NAME (random when None): UML_DIR/NAME/mconsole
    uml_dir: str | None = None    # UML's uml_dir=DIR (default ~/.uml)
    mconsole_notify: str | None = None   # mconsole=notify:SOCKET
    mconsole: bool = True         # serve mconsole on UML_DIR/UMID (False: no umid directory)
    con0: str | None = None       # con0's channel when not fds (pty, port:N ...): see stdin
    lines: dict = field(default_factory=dict)          # {("con"|"ssl", n): channel spec}
    line_defaults: dict = field(default_factory=dict)  # {"con"|"ssl": spec}: con=, ssl=
    root_device: str | None = None   # root=/dev/ubdX: the root filesystem is on that device
    root_rw: bool = False            # mount a ubd root read-write (the "rw" switch)
    root_image: str | None = None    # boot this image as ubda through a disposable COW file
    ubd: list = field(default_factory=list)  # raw ubd switches ("ubdb=IMG[,BACKING]"): drivers/ubd.py
    harddog_nowayout: bool = False   # harddog.nowayout=1: closing /dev/watchdog does not stop it
    watchdog_helper: list | None = None  # the harddog's host helper (default: our uml_watchdog)
    tty_log_dir: str | None = None   # tty_log_dir=DIR: terminal sessions logged there (ttylog.py)
    tty_log_fd: int = -1             # tty_log_fd=N: ... or into the host's fd N

    def _printk(self, msg: str) -> None:
        if self.log is not None:
            self.log(msg)
        elif not self.quiet:
            os.write(2, (msg + "\n").encode(errors="replace"))

    def boot(self):
        """Build the kernel and start init; returns the kernel (call .run() on it)."""
        from usermode.drivers import pty
        from usermode.drivers.line_hotplug import LineHotplug
        from usermode.drivers.hotplug import HotplugRegistry
        from usermode.fs import procfs, sysfs
        from usermode.fs.fdtable import FdTable
        from usermode.fs.file import O_NOCTTY, O_RDWR
        from usermode.fs.hostfs import HostFS, hostfs_factory
        from usermode.fs.vfs import VFS
        from usermode.kernel.creds import Creds
        from usermode.kernel.kernel import Kernel
        from usermode.kernel.syscalls.sys_exec import prepare

        mem = parse_mem(self.mem)
        if not self.root_device and not os.path.isdir(self.root):
            raise BootError(f"root directory {self.root!r} does not exist")
        try:
            k = Kernel(printk=self._printk, platform=self.platform)
        except ValueError as e:
            raise BootError(str(e)) from None
        if getattr(self, "_mc", None) is not None:
            self._mc.attach(k)
        k.ttylog = self._tty_logger()
        k.mem_bytes = mem
        k.strace = self.strace
        k.ncpus = self.ncpus
        k.host_cpus = getattr(self, "host_cpus", [])
        k.printk(f"Linux version 6.1.0-usermode (usermode {__version__}) #1")
        k.printk(f"Kernel command line: {self.cmdline}")
        k.printk(f"Memory: {mem >> 10}K available")
        if self.root_image and not self.root_device:
            self._use_root_image()
        if self.root_device:
            vfs = self._ubd_root_vfs(k)
        else:
            vfs = VFS(HostFS(os.path.realpath(self.root)), source="/dev/root")
        k.vfs = vfs
        k.cmdline = self.cmdline
        procfs.register(vfs, k)
        sysfs.register(vfs, k)
        k.hotplug = HotplugRegistry()
        self._attach_ubd(k, vfs)
        if self.hostfs is not None:
            if not os.path.isdir(self.hostfs):
                raise BootError(f"hostfs={self.hostfs}: no such directory")
            vfs.register_fstype("hostfs", hostfs_factory(os.path.realpath(self.hostfs)))
        else:
            vfs.register_fstype("hostfs", hostfs_factory(None))
        if not self.root_device:
            k.printk(f"VFS: Mounted root (hostfs filesystem) readwrite on {self.root}.")
        self._mount_standard(vfs, k)
        console, lines = self._consoles(k)
        k.console = console
        k.lines = lines
        vfs.register_chrdev(5, 1, console.open, "console")
        vfs.register_chrdev(5, 0, self._dev_tty, "tty")
        vfs.register_chrdev(4, 0, console.open, "tty0")
        lines.register(vfs)
        k.hotplug.register(LineHotplug(lines, "con", console))
        k.hotplug.register(LineHotplug(lines, "ssl"))
        pty.register(vfs, k)
        self._misc_devices(k, vfs)
        files = FdTable()
        con = console.open(None, O_RDWR | O_NOCTTY)
        for fd in (0, 1, 2):
            files.install_at(fd, con)
        fs = vfs.new_context()
        creds = Creds()
        boot = BootContext(k, fs, creds, files)
        try:
            if self.cwd != "/":
                fs.cwd = vfs.lookup(boot, -100, self.cwd.encode())
        except Errno as e:
            raise BootError(f"cwd {self.cwd}: {os.strerror(e.errno)}") from None
        argv = [a.encode() for a in self.init]
        env = [e.encode() for e in self.env]
        try:
            plan = prepare(boot, -100, argv[0], argv, env)
        except Errno as e:
            raise BootError(f"cannot run init {self.init[0]}: {os.strerror(e.errno)}") from None
        k.printk(f"Run {self.init[0]} as init process")
        k.start_init(plan, files, fs, creds)
        return k

    def _tty_logger(self):
        """The instance's tty log (made once, kept across reboots), or None."""
        logger = getattr(self, "_ttylog", None)
        if logger is not None or (self.tty_log_dir is None and self.tty_log_fd < 0):
            return logger
        from usermode.drivers.ttylog import TtyLogger
        from usermode.host.logfile import check_fd
        if self.tty_log_dir is not None and not os.path.isdir(self.tty_log_dir):
            raise BootError(f"tty_log_dir={self.tty_log_dir}: no such directory")
        if self.tty_log_fd >= 0 and (why := check_fd(self.tty_log_fd)) is not None:
            raise BootError(f"tty_log_fd={self.tty_log_fd}: {why}")
        self._ttylog = TtyLogger(os.path.abspath(self.tty_log_dir) if self.tty_log_dir
                                 else None, self.tty_log_fd)
        return self._ttylog

    def _misc_devices(self, k, vfs) -> None:
        """/dev/watchdog (harddog) and /dev/hwrng."""
        from usermode.drivers import hwrng
        from usermode.drivers.harddog import Harddog
        self._stop_harddog()
        helper = self.watchdog_helper
        if helper is None and os.environ.get("USERMODE_WATCHDOG_HELPER"):
            helper = os.environ["USERMODE_WATCHDOG_HELPER"].split()   # e.g. the real one
        self._harddog = Harddog(k, self.mconsole_notify, self.harddog_nowayout, helper)
        self._harddog.register(vfs)
        hwrng.register(vfs)

    def _stop_harddog(self) -> None:
        dog = getattr(self, "_harddog", None)
        self._harddog = None
        if dog is not None:
            dog.stop()

    def _consoles(self, k):
        """con0 (fds, or the channel of con0=) and the other consoles and serial lines."""
        from usermode.drivers.console import Console, Lines
        from usermode.host.channels import ChannelError, make
        opened = []
        try:
            if self.con0 is not None:
                chan = make(self.con0, "usermode console 0")
                opened.append(chan)
                console = Console(k, channel=chan)
                if chan.kind in ("pty", "xterm"):
                    k.printk(f"Virtual console 0 assigned device {chan.description}")
            else:
                console = Console(k, self.stdin, self.stdout)
            opened.append(console)
            lines = Lines(k, self.lines, self.line_defaults)
        except ChannelError as e:
            for c in opened:
                c.close()
            raise BootError(str(e)) from None
        self._open_lines = (console, lines)
        return console, lines

    def _use_root_image(self) -> None:
        """root_image as /dev/ubda through a COW file in the umid directory (a temporary
        one without mconsole): the image itself is never written; reboots keep the COW."""
        if getattr(self, "_mc", None) is not None:
            cow = self._mc.dir.file("root.cow")
        else:
            import tempfile
            self._cow_dir = tempfile.TemporaryDirectory(prefix="usermode-cow-")
            cow = os.path.join(self._cow_dir.name, "root.cow")
        self.root_device = "/dev/ubda"
        self.ubd = [f"ubda={cow},{self.root_image}"] + list(self.ubd)

    def _ubd_root_vfs(self, k):
        """The root filesystem from a ubd device (ext2/3/4), read-write with "rw"."""
        from usermode.drivers import ubd
        from usermode.fs.ext2 import Ext2FormatError, Ext2FS
        from usermode.fs.vfs import VFS
        self._close_ubd()
        disks = ubd.open_all(list(self.ubd))
        self._ubd_opened = disks
        name = self.root_device.rsplit("/", 1)[-1]
        disk = next((d for d in disks if d.name == name), None)
        if disk is None:
            raise BootError(f"root={self.root_device}: no such ubd device (give {name}=IMAGE)")
        try:
            writable = not disk.readonly
            rootfs = Ext2FS(disk.read, disk.size, "ext4", disk.name, k.printk,
                            disk.write if writable else None, disk.flush if writable else None)
        except Ext2FormatError as e:
            raise BootError(f"root={self.root_device}: can't mount: {e}") from None
        rootfs.dev = (ubd.UBD_MAJOR << 8) | disk.spec.minor
        rootfs.fstype = _ext_kind(rootfs)
        rw = self.root_rw and writable
        if rw:
            why = rootfs.rw_refusal()
            if why is not None:
                raise BootError(f"root={self.root_device}: can't mount read-write: {why} "
                                "(boot with ro)")
            rootfs.mount_rw()
        k.printk(f"VFS: Mounted root ({rootfs.fstype} filesystem) "
                 f"{'readwrite' if rw else 'readonly'} on device 98:{disk.spec.minor}.")
        return VFS(rootfs, flags=0 if rw else 1, source=self.root_device)   # 1: MS_RDONLY

    def _attach_ubd(self, k, vfs) -> None:
        """Open and register the ubd devices (closed again by _close_ubd)."""
        opened = getattr(self, "_ubd_opened", None)
        self._ubd_opened = None
        if opened is None:
            self._close_ubd()
        from usermode.drivers import ubd
        self._ubd_disks = ubd.attach(k, vfs, list(self.ubd), opened) if self.ubd else []
        k.hotplug.register(ubd.UbdHotplug(k, vfs, self._ubd_disks))

    def _close_ubd(self) -> None:
        disks = getattr(self, "_ubd_disks", None) or []
        self._ubd_disks = []
        for d in disks:
            d.close()

    def _close_lines(self) -> None:
        console, lines = getattr(self, "_open_lines", (None, None))
        self._open_lines = (None, None)
        if lines is not None:
            lines.close()
        if console is not None:
            console.close()

    @staticmethod
    def _dev_tty(t, flags: int):
        """/dev/tty: the caller's controlling terminal (ENXIO without one)."""
        from usermode.drivers.tty import TtyFile
        ctty = t.process.ctty if t is not None else None
        if ctty is None:
            k = t.kernel if t is not None else None
            console = getattr(k, "console", None)
            if console is not None and console.tty is None:
                return console.open(t, flags)
            raise Errno(6)
        return TtyFile(ctty, flags, "/dev/tty")

    def _mount_standard(self, vfs, k) -> None:
        """devfs on /dev and procfs on /proc when the root has those directories."""
        for path, fstype in (("/dev", "devtmpfs"), ("/proc", "proc"), ("/sys", "sysfs")):
            if fstype not in vfs.fstypes:
                continue
            try:
                target = vfs.lookup_kernel(path)
            except Errno:
                continue
            try:
                vfs.mount(vfs.fstypes[fstype](fstype.encode(), 0, b"", None), target,
                          source=fstype)
            except Errno:
                continue

    def _open_mconsole(self):
        """The umid directory and mconsole socket (host/mconsole_sock.py). An explicit
        umid in use is a BootError; without one, a failure only costs the mconsole."""
        if not self.mconsole:
            return None
        from usermode.host.mconsole_sock import MconsoleHost, UmidInUse
        try:
            return MconsoleHost(self.uml_dir, self.umid, self.mconsole_notify)
        except UmidInUse as e:
            if self.umid is not None or self.uml_dir is not None:
                raise BootError(str(e)) from None
            self._printk(f"mconsole: {e}")
            return None

    def run(self) -> int:
        """Boot and run (see _run_boots) with the umid directory and mconsole socket
        made before the first boot and removed at shutdown."""
        from usermode.host import cpus
        if not 1 <= self.ncpus <= 64:          # the affinity masks are one 64-bit word
            raise BootError(f"ncpus={self.ncpus}: expected 1 to 64")
        self._mc = self._open_mconsole()
        before = sorted(os.sched_getaffinity(0))
        self.host_cpus = cpus.choose(self.ncpus)
        if not cpus.pin(self.host_cpus):
            self.host_cpus = []
        try:
            return self._run_boots()
        finally:
            if self.host_cpus:
                cpus.pin(before)        # an embedding program's thread gets its CPUs back
            if self._mc is not None:
                self._mc.close()
                self._mc = None

    def _panic(self, k, message: str) -> None:
        """What Linux does when init exits: panic, which the mconsole notifier reports
        to the notify socket as a "panic" notification (UML's notify_panic)."""
        from usermode.drivers import mconsole_proto as proto
        k.printk(f"Kernel panic - not syncing: {message}")
        if self._mc is not None:
            self._mc.send_notification(proto.NOTIFY_PANIC, message + "\0")

    def _run_boots(self) -> int:
        """Boot, run until init exits or the guest halts; returns a shell-style status.
        A guest `reboot` boots the machine again, as UML does."""
        while True:
            try:
                k = self.boot()
            except BaseException:
                self._close_lines()
                self._close_ubd()
                raise
            try:
                status = k.run()
            except Exception as e:        # a kernel bug: a panic the notify socket hears of
                self._panic(k, f"usermode: {type(e).__name__}: {e}")
                raise
            finally:
                k.shutdown()
                if k.vfs is not None:
                    k.vfs.release_all()         # write back and mark ext2 images clean
                k.console.restore()
                self._close_lines()
                self._close_ubd()
                self._stop_harddog()
            self.halt_reason = k.halt_reason
            if k.halt_reason == "init exited":
                self._panic(k, f"Attempted to kill init! exitcode=0x{status:08x}")
            if k.halt_reason != "reboot":
                break
        if k.halt_reason in ("halt", "poweroff", "reboot"):
            return 0
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)
