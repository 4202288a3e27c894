"""procfs (/proc): the kernel's state as Linux 6.1 formats it, generated on every read.

    from usermode.fs import procfs
    procfs.register(vfs, kernel)       # mount -t proc works; Machine mounts it on /proc

Per-process directories are in procfs_pid.py (formats in procfs_task.py), /proc/sys in
procfs_sys.py, the generated-file machinery in procfs_base.py. Other drivers feed
/proc/partitions, /proc/diskstats (add_disk) and /proc/net (add_net_file).
"""
from __future__ import annotations

import errno
import math
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from usermode import __version__
from usermode.fs.inode import Dentry, FileSystem, Inode, Mount, Path
from usermode.fs.pipe import PIPEFS_DEV, PipeFile
from usermode.fs.procfs_base import (Dir, GenFile, Link, ProcState, PseudoFS, Render, Writer,
                                     proc_state)
from usermode.fs.procfs_pid import PidDir, mount_lines
from usermode.fs.procfs_sys import build_sys
from usermode.fs.procfs_task import HZ, live_thread, ticks
from usermode.fs.stat import S_IFDIR, S_IFIFO, major, minor
from usermode.kernel import task as ts
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.fs.file import File
    from usermode.fs.vfs import VFS
    from usermode.host.procinfo import HostInfo
    from usermode.kernel.task import Process, Task

PROC_SUPER_MAGIC = 0x9FA0
PIPEFS_MAGIC = 0x50495045
BLOCK_FSTYPES = {"ext2", "ext3", "ext4", "vfat", "msdos", "iso9660", "btrfs", "xfs",
                 "squashfs", "fuseblk"}
CHR_NAMES = {1: "mem", 4: "tty", 7: "vcs", 10: "misc", 13: "input", 128: "ptm",
             136: "pts", 226: "drm", 254: "watchdog"}
TTYAUX_NAMES = {0: "/dev/tty", 1: "/dev/console", 2: "/dev/ptmx"}       # major 5
BLK_NAMES = {7: "loop", 8: "sd", 98: "ubd", 259: "blkext"}


def register(vfs: "VFS", kernel, host: "HostInfo | None" = None) -> None:
    """Make `proc` a filesystem type of vfs, backed by kernel (call before mounting)."""
    def factory(source: bytes, flags: int, data: bytes, t: "Task | None") -> FileSystem:
        return ProcFS(kernel, host)
    vfs.register_fstype("proc", factory)


def add_disk(kernel, name: str, major_: int, minor_: int, kib: int,
             stats: Callable[[], Sequence[int]] | None = None) -> None:
    """List a block device in /proc/partitions and /proc/diskstats (stats: the 17
    diskstats counters, reads completed first)."""
    proc_state(kernel).disks[name] = (major_, minor_, kib, stats or (lambda: ()))


def remove_disk(kernel, name: str) -> None:
    """A hot-removed block device leaves /proc/partitions and /proc/diskstats."""
    proc_state(kernel).disks.pop(name, None)


def add_root_file(kernel, name: str, render: Render, writer: Writer | None = None,
                  mode: int = 0o444) -> None:
    """Add /proc/<name> for proc mounts made from now on (a driver's file)."""
    proc_state(kernel).extra[name] = (render, writer, mode)


def add_net_file(kernel, name: str, render: Render) -> None:
    """Add /proc/net/<name> (and /proc/<pid>/net/<name>), rendered on read."""
    proc_state(kernel).net[name.encode()] = render


class ProcFS(PseudoFS):
    fstype = "proc"
    magic = PROC_SUPER_MAGIC

    def __init__(self, kernel, host: "HostInfo | None" = None) -> None:
        super().__init__(kernel)
        if host is None:
            from usermode.host.procinfo import HostInfo
            host = HostInfo()
        self.host = host
        self.state: ProcState = proc_state(kernel)
        self.pid_dirs: dict[int, PidDir] = {}
        self.thread_dirs: dict[int, PidDir] = {}
        self.net_files: dict[bytes, GenFile] = {}
        # reopening an anonymous pipe through /proc/<pid>/fd/N lands on a FIFO here
        anon = FileSystem()
        anon.fstype, anon.magic, anon.dev = "pipefs", PIPEFS_MAGIC, PIPEFS_DEV
        anon.root = Inode(anon, 1, S_IFDIR | 0o700)
        self.anon_mount = Mount(anon, Dentry(b"/", None, anon.root), None, None)
        self.root = root = RootDir(self)
        root.ino = 1
        self.build(root)

    # -- helpers for the directory code
    def root_of(self, t: "Task | None") -> Path:
        if t is not None and t.fs is not None:
            return t.fs.root
        return self.kernel.vfs.root_path()

    def d_path_for(self, t: "Task | None", p: Path) -> bytes:
        return self.kernel.vfs.d_path(p, self.root_of(t))

    def file_name(self, t: "Task | None", f: "File") -> bytes:
        if f.vpath is not None and f.vpath.mount is self.anon_mount:
            return f.name()
        return self.kernel.vfs.file_name(f, self.root_of(t))

    def file_path(self, f: "File") -> Path | None:
        """Where following /proc/<pid>/fd/N lands: the file's own path, or for an
        anonymous pipe a FIFO on that pipe (so `cat /dev/fd/63` reads it)."""
        if f.vpath is not None:
            return f.vpath
        if isinstance(f, PipeFile):
            node = Inode(self.anon_mount.sb, f.pipe.ino, S_IFIFO | 0o600)
            node.pipe = f.pipe
            return Path(self.anon_mount, Dentry(f.name(), self.anon_mount.root, node))
        return None

    def file_ident(self, name: str) -> tuple[tuple[int, int], int]:
        """(major, minor) and inode number of a guest file, for /proc/<pid>/maps."""
        try:
            st = self.kernel.vfs.lookup_kernel(name).inode.getattr()
        except (Errno, OSError):
            return (0, 0), 0
        return (major(st.dev), minor(st.dev)), st.ino

    def render_mounts(self, root: Path) -> bytes:
        return mount_lines(self, root, info=False)

    def render_mountinfo(self, root: Path) -> bytes:
        return mount_lines(self, root, info=True)

    def net_entries(self) -> Mapping[bytes, Inode]:
        for name, render in self.state.net.items():
            if name not in self.net_files:
                self.net_files[name] = GenFile(self, render)
        return self.net_files

    def pid_dir(self, proc: "Process") -> PidDir:
        d = self.pid_dirs.get(proc.pid)
        if d is None or d.proc is not proc:
            d = self.pid_dirs[proc.pid] = PidDir(self, proc)
        return d

    def thread_dir(self, proc: "Process", t: "Task") -> PidDir:
        d = self.thread_dirs.get(t.tid)
        if d is None or d.thread is not t or d.proc is not proc:
            d = self.thread_dirs[t.tid] = PidDir(self, proc, t)
        return d

    def prune(self) -> None:
        procs, threads = self.kernel.procs, self.kernel.threads
        for pid in [p for p, d in self.pid_dirs.items() if procs.get(p) is not d.proc]:
            del self.pid_dirs[pid]
        for tid in [i for i, d in self.thread_dirs.items() if threads.get(i) is not d.thread]:
            del self.thread_dirs[tid]

    # -- the top level
    def build(self, root: "RootDir") -> None:
        k = self.kernel

        def me(t: "Task | None") -> "Task":
            if t is None:
                raise Errno(errno.ENOENT)
            return t
        root.add("self", Link(self, lambda t: b"%d" % me(t).pid))
        root.add("thread-self", Link(self, lambda t: b"%d/task/%d" % (me(t).pid, me(t).tid)))
        root.add("mounts", Link(self, lambda t: b"self/mounts", size=11))
        root.add("net", Link(self, lambda t: b"self/net", size=8))
        files: dict[str, Render] = {
            "meminfo": self.meminfo, "cpuinfo": self.cpuinfo, "uptime": self.uptime,
            "loadavg": self.loadavg, "stat": self.stat, "version": self.version,
            "cmdline": self.cmdline, "filesystems": self.filesystems,
            "devices": self.devices, "partitions": self.partitions,
            "diskstats": self.diskstats, "interrupts": self.interrupts,
            "vmstat": self.vmstat, "swaps": lambda t: b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
            "modules": lambda t: b"", "cgroups": lambda t: b"#subsys_name\thierarchy\t"
                                                          b"num_cgroups\tenabled\n",
        }
        for name, render in files.items():
            root.add(name, GenFile(self, render))
        for name, (render, writer, mode) in self.state.extra.items():
            root.add(name, GenFile(self, render, mode, writer))
        root.add("sys", build_sys(self))

    # -- system-wide files
    def meminfo(self, t: "Task | None") -> bytes:
        k = self.kernel
        total = k.mem_bytes >> 10
        used = min(k.mem_used() >> 10, total)
        free = total - used
        rows = [("MemTotal", total), ("MemFree", free), ("MemAvailable", free),
                ("Buffers", 0), ("Cached", 0), ("SwapCached", 0), ("Active", used),
                ("Inactive", 0), ("Active(anon)", used), ("Inactive(anon)", 0),
                ("Active(file)", 0), ("Inactive(file)", 0), ("Unevictable", 0),
                ("Mlocked", 0), ("SwapTotal", 0), ("SwapFree", 0), ("Zswap", 0),
                ("Zswapped", 0), ("Dirty", 0), ("Writeback", 0), ("AnonPages", used),
                ("Mapped", 0), ("Shmem", 0), ("KReclaimable", 0), ("Slab", 0),
                ("SReclaimable", 0), ("SUnreclaim", 0), ("KernelStack", 0),
                ("PageTables", 0), ("SecPageTables", 0), ("NFS_Unstable", 0), ("Bounce", 0),
                ("WritebackTmp", 0), ("CommitLimit", total),
                ("Committed_AS", getattr(k, "committed", 0) >> 10),
                ("VmallocTotal", 34359738367), ("VmallocUsed", 0), ("VmallocChunk", 0),
                ("Percpu", 0), ("HardwareCorrupted", 0), ("AnonHugePages", 0),
                ("ShmemHugePages", 0), ("ShmemPmdMapped", 0), ("FileHugePages", 0),
                ("FilePmdMapped", 0)]
        out = [f"{name + ':':<16}{val:8d} kB\n" for name, val in rows]
        out += [f"{name + ':':<16}   {0:5d}\n" for name in
                ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp")]
        out += [f"{'Hugepagesize:':<16}{2048:8d} kB\n", f"{'Hugetlb:':<16}{0:8d} kB\n",
                f"{'DirectMap4k:':<16}{total:8d} kB\n", f"{'DirectMap2M:':<16}{0:8d} kB\n",
                f"{'DirectMap1G:':<16}{0:8d} kB\n"]
        return "".join(out).encode()

    def vmstat(self, t: "Task | None") -> bytes:
        """Page counts from the same accounting as meminfo (procps' vmstat and free read
        it); event counters we do not keep are 0."""
        k = self.kernel
        total = k.mem_bytes >> 12
        used = min(k.mem_used() >> 12, total)
        rows = [("nr_free_pages", total - used), ("nr_zone_inactive_anon", 0),
                ("nr_zone_active_anon", used), ("nr_zone_inactive_file", 0),
                ("nr_zone_active_file", 0), ("nr_inactive_anon", 0), ("nr_active_anon", used),
                ("nr_inactive_file", 0), ("nr_active_file", 0), ("nr_anon_pages", used),
                ("nr_mapped", 0), ("nr_file_pages", 0), ("nr_dirty", 0), ("nr_writeback", 0),
                ("nr_shmem", 0), ("nr_free_cma", 0)]
        rows += [(name, 0) for name in ("pgpgin", "pgpgout", "pswpin", "pswpout", "pgalloc_normal",
                                        "pgfree", "pgfault", "pgmajfault", "pgsteal_kswapd",
                                        "pgscan_kswapd", "pgrefill", "nr_tlb_remote_flush")]
        return "".join(f"{name} {val}\n" for name, val in rows).encode()

    def cpuinfo(self, t: "Task | None") -> bytes:
        """The host's processor description, once per guest cpu with guest numbering."""
        n = self.kernel.ncpus
        blocks = self.host.cpuinfo() or (("processor\t: 0", "vendor_id\t: unknown",
                                          "model name\t: usermode"),)
        per_cpu = {"processor": "{i}", "physical id": "0", "siblings": "{n}",
                   "core id": "{i}", "cpu cores": "{n}", "apicid": "{i}",
                   "initial apicid": "{i}"}
        out = []
        for i in range(n):
            for line in blocks[i % len(blocks)]:
                key, sep, _ = line.partition(":")
                new = per_cpu.get(key.strip())
                if sep and new is not None:
                    line = f"{key}: {new.format(i=i, n=n)}"
                out.append(line + "\n")
            out.append("\n")
        return "".join(out).encode()

    def cpu_ticks(self) -> tuple[int, int, float]:
        """(user, system) ticks of all guest tasks, never decreasing, and the uptime."""
        k = self.kernel
        user = system = 0
        for p in list(k.procs.values()):
            # its own time (the host's while it lives) and that of children it reaped
            live = live_thread(p)
            f = self.host.stat(live.host_tid) if live is not None else []
            own = (int(f[11]), int(f[12])) if len(f) > 12 else \
                (ticks(p.utime), ticks(p.stime))
            user += own[0] + ticks(p.cutime)
            system += own[1] + ticks(p.cstime)
        seen = self.state.cpu_seen
        seen[0], seen[1] = max(seen[0], user), max(seen[1], system)
        return seen[0], seen[1], k.clock.monotonic() - k.start_monotonic

    def uptime(self, t: "Task | None") -> bytes:
        user, system, up = self.cpu_ticks()
        idle = max(up * self.kernel.ncpus - (user + system) / HZ, 0.0)
        return b"%.2f %.2f\n" % (up, idle)

    def running(self) -> tuple[int, int]:
        """(runnable tasks, all tasks) as our kernel sees them."""
        run = total = 0
        for p in self.kernel.procs.values():
            for th in p.alive_threads():
                total += 1
                if th.state in (ts.RUNNING, ts.STOPPED, ts.NEW) and not p.stopped:
                    run += 1
        return run, total

    def loadavg(self, t: "Task | None") -> bytes:
        run, total = self.running()
        k = self.kernel
        load, now = self.state.load, k.clock.monotonic()
        sample = max(run - (1 if t is not None else 0), 0)      # not the reader itself
        dt = now - load[3] if load[3] >= 0 else 0.0
        for i, period in enumerate((60.0, 300.0, 900.0)):
            e = math.exp(-dt / period)
            load[i] = load[i] * e + sample * (1 - e)
        load[3] = now
        return b"%.2f %.2f %.2f %d/%d %d\n" % (load[0], load[1], load[2], run, total,
                                               max(k.next_pid - 1, 0))

    def stat(self, t: "Task | None") -> bytes:
        k = self.kernel
        user, system, up = self.cpu_ticks()
        n = k.ncpus
        idle = max(int(up * HZ * n) - user - system, 0)
        out = [b"cpu  %d 0 %d %d 0 0 0 0 0 0\n" % (user, system, idle)]
        out += [b"cpu%d %d 0 %d %d 0 0 0 0 0 0\n" % (i, user // n, system // n, idle // n)
                for i in range(n)]
        run, _ = self.running()
        out.append(b"intr 0\nctxt %d\nbtime %d\nprocesses %d\nprocs_running %d\n"
                   b"procs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n"
                   % (k.syscall_count, int(k.boot_time), max(k.next_pid - 1, 0), run))
        return b"".join(out)

    def version(self, t: "Task | None") -> bytes:
        from usermode.kernel.syscalls.sys_info import RELEASE, VERSION
        return b"Linux version %s (usermode@usermode) (usermode %s) %s\n" % (
            RELEASE, __version__.encode(), VERSION)

    def cmdline(self, t: "Task | None") -> bytes:
        line = getattr(self.kernel, "cmdline", b"")      # set by the boot code, when it is
        return (line.encode() if isinstance(line, str) else line) + b"\n"

    def filesystems(self, t: "Task | None") -> bytes:
        return b"".join((b"\t" if name in BLOCK_FSTYPES else b"nodev\t") + name.encode() + b"\n"
                        for name in self.kernel.vfs.fstypes)

    def devices(self, t: "Task | None") -> bytes:
        reg = self.kernel.vfs.devices
        named = {dev: name for name, (_, dev, _) in reg.names.items()}
        out = [b"Character devices:\n"]
        for maj in sorted({major(d) for d in reg.chr}):
            if maj == 5:
                for mi in sorted(minor(d) for d in reg.chr if major(d) == 5):
                    out.append(b"%3d %s\n" % (5, TTYAUX_NAMES.get(mi, "ttyaux").encode()))
                continue
            name = CHR_NAMES.get(maj) or next(
                (named[d] for d in sorted(reg.chr) if major(d) == maj and d in named), "chr")
            out.append(b"%3d %s\n" % (maj, name.encode()))
        out.append(b"\nBlock devices:\n")
        for maj in sorted({major(d) for d in reg.blk}):
            name = BLK_NAMES.get(maj) or next(
                (named[d] for d in sorted(reg.blk) if major(d) == maj and d in named), "blk")
            out.append(b"%3d %s\n" % (maj, name.encode()))
        return b"".join(out)

    def partitions(self, t: "Task | None") -> bytes:
        disks = self.state.disks
        if not disks:
            return b""
        return b"major minor  #blocks  name\n\n" + b"".join(
            b"%4d  %7d %10d %s\n" % (ma, mi, kib, name.encode())
            for name, (ma, mi, kib, _) in disks.items())

    def diskstats(self, t: "Task | None") -> bytes:
        out = []
        for name, (ma, mi, _, stats) in self.state.disks.items():
            vals = (list(stats()) + [0] * 17)[:17]
            out.append(b"%4d %7d %s " % (ma, mi, name.encode())
                       + b" ".join(b"%d" % v for v in vals) + b"\n")
        return b"".join(out)

    def interrupts(self, t: "Task | None") -> bytes:
        n = self.kernel.ncpus
        head = " " * 11 + "".join(f"CPU{i:<8d}" for i in range(n)) + "\n"
        return (head + "  0: " + "".join(f"{0:10d} " for _ in range(n))
                + "  usermode  timer\n").encode()


class RootDir(Dir):
    """/proc itself: the fixed entries plus one directory per process (zombies too);
    threads are found by tid but not listed, as on Linux."""

    sb: ProcFS

    def __init__(self, fs: ProcFS) -> None:
        super().__init__(fs, dynamic=self.pids)

    def pids(self) -> Mapping[bytes, Inode]:
        fs = self.sb
        fs.prune()
        return {b"%d" % pid: fs.pid_dir(p) for pid, p in sorted(fs.kernel.procs.items())}

    def lookup_dynamic(self, name: bytes) -> Inode | None:
        if not name.isdigit() or name[:1] == b"0":
            return None
        fs, n = self.sb, int(name)
        proc = fs.kernel.procs.get(n)
        if proc is not None:
            return fs.pid_dir(proc)
        t = fs.kernel.threads.get(n)
        if t is not None:
            return fs.thread_dir(t.process, t)
        return None
