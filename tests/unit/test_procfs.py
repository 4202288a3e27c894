"""procfs and sysfs against a fake kernel (real Process/Task objects, no tracing) and a
fake host: formats are checked against what Linux 6.1 prints."""
from __future__ import annotations

import errno

import pytest

from usermode.fs import procfs, sysfs
from usermode.fs.fdtable import FdTable
from usermode.fs.file import O_RDONLY, O_RDWR, O_WRONLY
from usermode.fs.pipe import make_pipe
from usermode.fs.stat import S_IFIFO, S_IFMT
from usermode.fs.tmpfs import TmpFS
from usermode.fs.vfs import VFS
from usermode.host import procinfo
from usermode.host.procinfo import HostMap
from usermode.kernel import task as ts
from usermode.kernel.creds import Creds
from usermode.kernel.errors import Errno
from usermode.kernel.mm import Mapping
from usermode.kernel.task import Process, Task

AT_FDCWD = -100


class FakeClock:
    now = 1000.0

    def monotonic(self) -> float:
        return self.now


class FakeTable:
    def name(self, nr: int) -> str:
        return {61: "wait4", 0: "read"}.get(nr, f"syscall_{nr}")


class FakeMM:
    def __init__(self) -> None:
        self.mappings = [Mapping(0x400000, 0x401000, 1, "/bin/prog", 0),
                         Mapping(0x401000, 0x405000, 5, "/bin/prog", 0x1000),
                         Mapping(0x405000, 0x406000, 3, "/bin/prog", 0x5000),
                         Mapping(0x7F0000000000, 0x7F0000800000, 3, "[stack]")]
        self.brk_start, self.brk = 0x406000, 0x409100
        self.arg_start = self.arg_end = self.env_start = self.env_end = 0
        self.stack_top = 0x7F00007FF000

    def copy_in(self, addr: int, n: int) -> bytes:
        raise Errno(errno.EFAULT)


class FakeHost:
    """Host numbers for host tid N: utime N, VmRSS 1000 kB, one blocked signal."""

    def __init__(self) -> None:
        self.host_maps = [
            HostMap(0x400000, 0x401000, "r--p", 0, ""),
            HostMap(0x401000, 0x405000, "r-xp", 0, ""),
            HostMap(0x405000, 0x406000, "rw-p", 0, ""),
            HostMap(0x406000, 0x40A000, "rw-p", 0, ""),
            HostMap(0x7F0000000000, 0x7F0000800000, "rw-p", 0, ""),
            HostMap(0x7FFD00000000, 0x7FFD00021000, "rw-p", 0, "[stack]"),
            HostMap(0x7FFD00100000, 0x7FFD00102000, "r-xp", 0, "[vdso]")]

    def stat(self, tid: int, thread: bool = False) -> list[str]:
        f = ["S"] + ["0"] * 48
        f[11], f[12], f[20], f[21], f[36] = str(tid), "3", "8192000", "250", "0"
        return f

    def status(self, tid: int) -> dict[str, str]:
        return {"VmPeak": "9000 kB", "VmSize": "8000 kB", "VmHWM": "1200 kB",
                "VmRSS": "1000 kB", "RssAnon": "900 kB", "RssFile": "100 kB",
                "VmPTE": "48 kB", "SigPnd": "0000000000000000", "ShdPnd": "0000000000000000",
                "SigBlk": "0000000000010000", "SigIgn": "0000000000000004",
                "SigCgt": "0000000000004002", "voluntary_ctxt_switches": "7",
                "nonvoluntary_ctxt_switches": "2"}

    def statm(self, tid: int) -> list[int]:
        return [2000, 250, 25, 1, 0, 100, 0]

    def maps(self, tid: int) -> list[HostMap]:
        return self.host_maps

    def wchan(self, tid: int) -> str:
        return "futex_wait_queue"

    def cpuinfo(self):
        return (("processor\t: 0", "vendor_id\t: AuthenticAMD", "model name\t: AMD EPYC",
                 "siblings\t: 2", "core id\t\t: 0", "cpu cores\t: 2", "apicid\t\t: 0",
                 "flags\t\t: fpu sse"),)


class FakeKernel:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.start_monotonic = 900.0
        self.boot_time = 1700000000.5
        self.mem_bytes = 128 << 20
        self.ncpus = 2
        self.hostname = b"usermode"
        self.domainname = b"(none)"
        self.syscall_count = 42
        self.procs: dict[int, Process] = {}
        self.threads: dict[int, Task] = {}
        self.current: Task | None = None
        self.next_pid = 1
        self.table = FakeTable()
        self.cmdline = "mem=128M init=/bin/sh"
        self.vfs = VFS(TmpFS())
        procfs.register(self.vfs, self, FakeHost())
        sysfs.register(self.vfs, self)
        for d in (b"proc", b"sys", b"tmp", b"bin"):
            self.vfs.root_mount.root.inode.mkdir(d, 0o755, 0, 0)
        for fstype, path in (("proc", "/proc"), ("sysfs", "/sys")):
            self.vfs.mount(self.vfs.fstypes[fstype](b"", 0, b"", None), path, source=fstype)

    def mem_used(self) -> int:
        return 32 << 20

    def spawn(self, parent: Process | None = None, creds: Creds | None = None,
              comm: bytes = b"prog") -> Task:
        pid = self.next_pid
        self.next_pid += 1
        p = Process(self, pid, parent)
        if parent is not None:
            parent.children.append(p)
        if creds is not None:
            p.creds = creds
        p.mm = FakeMM()
        p.comm, p.exe, p.exe_execd = comm, "/bin/prog", True
        p.cmdline, p.environ = [b"prog", b"-x"], [b"HOME=/", b"TERM=linux"]
        t = Task(self, pid, 5000 + pid, p)
        t.comm, t.state, t.mm = comm, ts.RUNNING, p.mm
        t.fs, t.files = self.vfs.new_context(), FdTable()
        p.threads.append(t)
        self.procs[pid] = p
        self.threads[pid] = t
        return t


@pytest.fixture
def k() -> FakeKernel:
    return FakeKernel()


def read(k: FakeKernel, t: Task, path: str) -> bytes:
    """Read as t would: t is in a syscall stop (STOPPED) while we serve it."""
    k.current = t
    saved = t.state
    if saved == ts.RUNNING:
        t.state = ts.STOPPED
    try:
        f = k.vfs.open(t, AT_FDCWD, path.encode(), O_RDONLY)
        return f.read(t, 1 << 20)
    finally:
        t.state = saved


def err(fn, *args) -> int:
    try:
        fn(*args)
    except Errno as e:
        return e.errno
    return 0


def user() -> Creds:
    return Creds(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, [5, 7])


# -- /proc/<pid>/stat
def test_stat_has_52_fields_and_comm_with_spaces_and_parens(k):
    t = k.spawn(comm=b"a b) c")
    line = read(k, t, "/proc/1/stat")
    assert line.startswith(b"1 (a b) c) R 0 1 1 ")
    rest = line[line.rfind(b")") + 2:].split()
    assert len(rest) + 2 == 52
    assert line.endswith(b"\n")
    f = [b"", b"", b""] + rest                     # numbered as in man 5 proc
    assert f[14] == b"5001" and f[15] == b"3"      # utime/stime from the host task
    assert f[22] == b"%d" % ((1000.0 - 900.0) * 100)     # starttime: ticks from boot...
    assert f[26] == b"%d" % 0x401000 and f[27] == b"%d" % 0x405000   # exe text range
    assert f[47] == b"%d" % 0x406000               # start_brk


def test_stat_states(k):
    t = k.spawn()
    reader = k.spawn()
    state = lambda: read(k, reader, "/proc/1/stat").split()[2]     # noqa: E731
    t.state = ts.STOPPED
    assert state() == b"R"
    t.state = ts.PARKED
    assert state() == b"S"
    t.state = ts.HELD
    assert state() == b"T"
    t.state = ts.RUNNING                           # resumed, but the host task sleeps
    assert state() == b"S"
    assert read(k, t, "/proc/self/stat").split()[2] == b"R"    # a reader is running


def test_stat_hides_addresses_from_other_users(k):
    root = k.spawn()
    other = k.spawn(root.process, user())
    f = read(k, other, "/proc/1/stat").split()
    assert f[25:28] == [b"1", b"1", b"0"]          # startcode, endcode, startstack
    assert f[44:52] == [b"0"] * 8
    own = read(k, other, "/proc/2/stat").split()
    assert own[25] == b"%d" % 0x401000


def test_zombie(k):
    t = k.spawn()
    child = k.spawn(t.process)
    p = child.process
    p.zombie, p.exit_status, p.mm = True, 3 << 8, None
    p.utime, p.stime, t.process.cutime = 1.5, 0.25, 2.0
    child.state = ts.DEAD
    line = read(k, t, "/proc/2/stat")
    f = line.split()
    assert f[13:15] == [b"150", b"25"]             # times the kernel collected at exit
    assert read(k, t, "/proc/1/stat").split()[15] == b"200"     # cutime of reaped ones
    assert f[2] == b"Z" and f[3] == b"1" and len(f) == 52
    assert f[22:24] == [b"0", b"0"]                # vsize, rss
    assert f[51] == b"768"                         # the wait status
    status = read(k, t, "/proc/2/status")
    assert b"Umask" not in status and b"VmRSS" not in status
    assert b"State:\tZ (zombie)\n" in status and b"FDSize:\t0\n" in status
    assert read(k, t, "/proc/2/cmdline") == b""
    assert err(k.vfs.lookup, t, AT_FDCWD, b"/proc/2/cwd") == errno.ENOENT


# -- status
def test_status_format(k):
    t = k.spawn(creds=user())
    t.comm = b"x\ny\\z"
    s = read(k, t, "/proc/1/status").decode()
    lines = s.splitlines()
    assert lines[0] == "Name:\tx\\ny\\\\z"
    assert lines[1:4] == ["Umask:\t0022", "State:\tR (running)", "Tgid:\t1"]
    assert "Uid:\t1000\t1000\t1000\t1000" in lines
    assert "Groups:\t5 7 " in lines
    assert "VmRSS:\t    1000 kB" in lines and "VmPeak:\t    9000 kB" in lines
    assert "VmExe:\t      16 kB" in lines            # r-x of /bin/prog
    assert "VmStk:\t    8192 kB" in lines
    assert "SigBlk:\t0000000000010000" in lines
    assert "CapEff:\t0000000000000000" in lines and "CapBnd:\t000001ffffffffff" in lines
    assert "Cpus_allowed:\t3" in lines and "Cpus_allowed_list:\t0-1" in lines
    assert "FDSize:\t64" in lines and "Threads:\t1" in lines
    assert lines[-1] == "nonvoluntary_ctxt_switches:\t2"
    assert all(":\t" in line for line in lines)


def test_statm_and_limits(k):
    t = k.spawn()
    assert read(k, t, "/proc/1/statm") == b"2000 250 25 4 0 2086 0\n"
    lim = read(k, t, "/proc/1/limits").decode().splitlines()
    # the lines a real 6.1 kernel printed (UML), column for column
    assert lim[0] == ("Limit                     Soft Limit           Hard Limit           "
                      "Units     ")
    assert lim[1] == ("Max cpu time              unlimited            unlimited            "
                      "seconds   ")
    assert lim[4].startswith("Max stack size            8388608              unlimited")
    assert lim[14] == "Max nice priority         0                    0                    "
    assert len(lim) == 17


# -- maps
def test_maps_names_from_kernel_records(k):
    t = k.spawn()
    lines = read(k, t, "/proc/1/maps").decode().splitlines()
    assert lines[0].startswith("00400000-00401000 r--p 00000000 ")
    assert lines[0].endswith(" /bin/prog") and lines[0].index("/bin/prog") == 73
    assert lines[1].startswith("00401000-00405000 r-xp 00001000 ")
    assert lines[3].startswith("00406000-0040a000 rw-p 00000000 00:00 0 ") and \
        lines[3].endswith("[heap]")
    assert lines[4].endswith("[stack]") and lines[4].startswith("7f0000000000")
    assert lines[5] == "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 "   # stub's stack
    assert lines[6].endswith("[vdso]")


def test_host_maps_hide_stub_and_host_names(monkeypatch):
    text = (b"00400000-00401000 r-xp 00000000 00:00 0 \n"
            b"3ff000001000-3ff000002000 r-xp 00001000 fe:00 99 /tmp/usermode-x/stub\n"
            b"7f0000000000-7f0000001000 r--p 00000000 fe:00 12 /memfd:pagecache (deleted)\n"
            b"7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n")
    monkeypatch.setattr(procinfo, "_read", lambda path: text)
    m = procinfo.HostInfo().maps(1)
    assert [x.start for x in m] == [0x400000, 0x7F0000000000, 0x7FFD00000000]
    assert [x.name for x in m] == ["", "", "[stack]"]


def test_host_stat_parses_after_comm(monkeypatch):
    monkeypatch.setattr(procinfo, "_read", lambda path: b"7 (a) b) c) S 1 2 3\n")
    assert procinfo.HostInfo().stat(7) == ["S", "1", "2", "3"]


# -- permissions
def test_private_entries_need_ptrace_access(k):
    root = k.spawn()
    other = k.spawn(root.process, user())
    k.current = other
    for path in ("/proc/1/environ", "/proc/1/maps", "/proc/1/fd/", "/proc/1/io"):
        assert err(k.vfs.open, other, AT_FDCWD, path.encode(), O_RDONLY) == errno.EACCES, path
    cwd = k.vfs.lookup(other, AT_FDCWD, b"/proc/1/cwd", follow=False).inode
    assert err(cwd.readlink) == errno.EACCES
    k.current = root
    assert cwd.readlink() == b"/"
    assert read(k, other, "/proc/1/cmdline") == b"prog\0-x\0"
    assert read(k, other, "/proc/2/environ") == b"HOME=/\0TERM=linux\0"
    assert read(k, root, "/proc/2/environ") == b"HOME=/\0TERM=linux\0"   # root may


# -- self, fds
def test_self_and_thread_self(k):
    k.spawn()
    t = k.spawn()
    k.current = t
    root = k.vfs.lookup_kernel("/proc")
    assert root.inode.lookup(b"self").readlink() == b"2"
    assert root.inode.lookup(b"thread-self").readlink() == b"2/task/2"
    assert read(k, t, "/proc/self/comm") == b"prog\n"
    assert read(k, t, "/proc/thread-self/stat").startswith(b"2 (prog) ")


def test_fd_links_and_fdinfo(k):
    t = k.spawn()
    r, w = make_pipe()
    t.files.install(r, cloexec=True)
    t.files.install(w)
    f = k.vfs.open(t, AT_FDCWD, b"/tmp/x", O_RDWR | 0o100, 0o644)
    t.files.install(f)
    k.current = t
    fd = k.vfs.lookup_kernel("/proc/1/fd").inode
    assert sorted(n for n, _, _ in fd.listdir()) == [b"0", b"1", b"2"]
    assert fd.lookup(b"0").readlink() == b"pipe:[%d]" % r.pipe.ino
    assert fd.lookup(b"2").readlink() == b"/tmp/x"
    assert fd.lookup(b"0").mode & 0o777 == 0o500 and fd.lookup(b"1").mode & 0o777 == 0o300
    info = read(k, t, "/proc/1/fdinfo/0")
    assert info == b"pos:\t0\nflags:\t02000000\nmnt_id:\t12\nino:\t%d\n" % r.pipe.ino
    assert read(k, t, "/proc/1/fdinfo/2").startswith(b"pos:\t0\nflags:\t0100002\n")
    # the magic link of an anonymous pipe opens the pipe itself
    p = fd.lookup(b"1").follow_link()
    assert p.inode.mode & S_IFMT == S_IFIFO
    rd = k.vfs.open_path(t, p, O_RDWR)
    w.write(t, b"hi")
    assert rd.read(t, 10) == b"hi"
    assert err(fd.lookup, b"7") == errno.ENOENT
    link = fd.lookup(b"2")
    t.files.close(2)
    assert err(link.readlink) == errno.ENOENT           # an open dentry of a closed fd
    assert err(fd.lookup, b"2") == errno.ENOENT


# -- writable entries
def test_comm_write_and_oom_score_adj(k):
    t = k.spawn()
    k.current = t
    f = k.vfs.open(t, AT_FDCWD, b"/proc/1/comm", O_WRONLY)
    f.write(t, b"0123456789abcdefghij")
    assert read(k, t, "/proc/1/comm") == b"0123456789abcde\n"
    assert t.process.comm == b"0123456789abcde"
    f = k.vfs.open(t, AT_FDCWD, b"/proc/1/oom_score_adj", O_WRONLY)
    f.write(t, b"100\n")
    assert read(k, t, "/proc/1/oom_score_adj") == b"100\n"
    assert read(k, t, "/proc/1/oom_adj") == b"1\n"
    assert err(f.write, t, b"5000") == errno.EINVAL
    other = k.spawn()
    k.current = other
    g = k.vfs.open(other, AT_FDCWD, b"/proc/1/comm", O_WRONLY)
    assert err(g.write, other, b"x") == errno.EINVAL


def test_reaped_process_reads_esrch_and_rerender_at_zero(k):
    t = k.spawn()
    k.current = t
    f = k.vfs.open(t, AT_FDCWD, b"/proc/1/comm", O_RDONLY)
    assert f.read(t, 100) == b"prog\n"
    t.comm = b"new"
    f.lseek(0, 0)
    assert f.read(t, 100) == b"new\n"
    del k.procs[1], k.threads[1]
    f.lseek(0, 0)
    assert err(f.read, t, 100) == errno.ESRCH
    assert err(k.vfs.lookup, t, AT_FDCWD, b"/proc/1/stat") == errno.ENOENT


# -- the directory itself
def test_root_listing_and_hidden_threads(k):
    t = k.spawn()
    th = Task(k, 7, 5007, t.process)
    th.state, th.comm, th.fs, th.files = ts.RUNNING, b"worker", t.fs, t.files
    t.process.threads.append(th)
    k.threads[7] = th
    k.current = t
    names = {n for n, _, _ in k.vfs.lookup_kernel("/proc").inode.listdir()}
    assert {b"1", b"self", b"thread-self", b"meminfo", b"sys", b"mounts"} <= names
    assert b"7" not in names
    assert read(k, t, "/proc/7/comm") == b"worker\n"
    tasks = k.vfs.lookup_kernel("/proc/1/task").inode.listdir()
    assert sorted(n for n, _, _ in tasks) == [b"1", b"7"]
    assert read(k, t, "/proc/1/task/7/stat").startswith(b"7 (worker) S 0 1 1")
    assert b"Threads:\t2\n" in read(k, t, "/proc/1/status")


# -- system files
def test_meminfo(k):
    t = k.spawn()
    lines = read(k, t, "/proc/meminfo").decode().splitlines()
    assert lines[0] == "MemTotal:         131072 kB"
    assert lines[1] == "MemFree:           98304 kB"
    assert lines[2].startswith("MemAvailable:") and "SwapTotal:             0 kB" in lines
    assert "HugePages_Total:       0" in lines and "Hugepagesize:       2048 kB" in lines


def test_vmstat_pages_match_meminfo(k):
    t = k.spawn()
    rows = dict(line.split() for line in read(k, t, "/proc/vmstat").decode().splitlines())
    assert int(rows["nr_free_pages"]) * 4 == 98304 and rows["pgpgin"] == "0"
    assert int(rows["nr_anon_pages"]) * 4 == 131072 - 98304


def test_cpuinfo_uptime_loadavg_stat(k):
    t = k.spawn()
    cpu = read(k, t, "/proc/cpuinfo").decode()
    blocks = cpu.strip("\n").split("\n\n")
    assert len(blocks) == 2 and cpu.endswith("\n\n")
    assert "processor\t: 1" in blocks[1] and "apicid\t\t: 1" in blocks[1]
    assert "model name\t: AMD EPYC" in blocks[1]
    up = read(k, t, "/proc/uptime").split()
    assert up[0] == b"100.00" and len(up) == 2
    la = read(k, t, "/proc/loadavg").split()
    assert la[3] == b"1/1" and la[4] == b"1"
    st = read(k, t, "/proc/stat").decode().splitlines()
    assert st[0].startswith("cpu  5001 0 3 14996 ") and st[1].startswith("cpu0 ")
    assert "btime 1700000000" in st and "ctxt 42" in st
    assert read(k, t, "/proc/version").startswith(b"Linux version 6.1.0-usermode ")
    assert read(k, t, "/proc/cmdline") == b"mem=128M init=/bin/sh\n"


def test_filesystems_mounts_mountinfo(k):
    t = k.spawn()
    fss = read(k, t, "/proc/filesystems").decode().splitlines()
    assert "nodev\tproc" in fss and "nodev\tsysfs" in fss and "nodev\ttmpfs" in fss
    mounts = read(k, t, "/proc/mounts").decode().splitlines()
    assert mounts[0] == "rootfs / tmpfs rw,relatime 0 0"
    assert "proc /proc proc rw,relatime 0 0" in mounts
    info = read(k, t, "/proc/self/mountinfo").decode().splitlines()
    fields = info[1].split()
    assert fields[3:6] == ["/", "/proc", "rw,relatime"] and fields[6:9] == ["-", "proc", "proc"]
    assert read(k, t, "/proc/1/cgroup") == b"0::/\n"


def test_sys_tree(k):
    t = k.spawn()
    assert read(k, t, "/proc/sys/kernel/ostype") == b"Linux\n"
    assert read(k, t, "/proc/sys/kernel/osrelease") == b"6.1.0-usermode\n"
    assert read(k, t, "/proc/sys/kernel/pid_max") == b"32768\n"
    assert read(k, t, "/proc/sys/kernel/cap_last_cap") == b"40\n"
    assert read(k, t, "/proc/sys/vm/overcommit_memory") == b"0\n"
    boot = read(k, t, "/proc/sys/kernel/random/boot_id")
    assert boot == read(k, t, "/proc/sys/kernel/random/boot_id") and len(boot) == 37
    assert read(k, t, "/proc/sys/kernel/random/uuid") != read(k, t, "/proc/sys/kernel/random/uuid")
    k.current = t
    f = k.vfs.open(t, AT_FDCWD, b"/proc/sys/kernel/hostname", O_WRONLY | 0o1000)
    f.write(t, b"box\n")
    assert k.hostname == b"box" and read(k, t, "/proc/sys/kernel/hostname") == b"box\n"
    u = k.spawn(creds=user())
    k.current = u
    assert err(k.vfs.open, u, AT_FDCWD, b"/proc/sys/kernel/hostname", O_WRONLY) == errno.EACCES


def test_partitions_and_diskstats_feed(k):
    t = k.spawn()
    assert read(k, t, "/proc/partitions") == b""
    procfs.add_disk(k, "ubda", 98, 0, 65536, lambda: [5, 0, 40])
    assert read(k, t, "/proc/partitions") == \
        b"major minor  #blocks  name\n\n  98        0      65536 ubda\n"
    assert read(k, t, "/proc/diskstats") == b"  98       0 ubda 5 0 40" + b" 0" * 14 + b"\n"


def test_sysfs(k):
    t = k.spawn()
    assert read(k, t, "/sys/devices/system/cpu/online") == b"0-1\n"
    assert read(k, t, "/sys/devices/system/cpu/possible") == b"0-1\n"
    cpus = k.vfs.lookup_kernel("/sys/devices/system/cpu").inode.listdir()
    assert {b"cpu0", b"cpu1"} <= {n for n, _, _ in cpus}
    for d in ("/sys/class/net", "/sys/class/tty", "/sys/class/block", "/sys/fs/cgroup",
              "/sys/kernel"):
        assert k.vfs.lookup_kernel(d).inode.is_dir
    assert k.vfs.lookup_kernel("/sys/devices/system/cpu/online").inode.getattr().size == 4096
