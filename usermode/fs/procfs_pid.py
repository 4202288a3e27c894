"""/proc/<pid>/ and /proc/<pid>/task/<tid>/: one directory per process or thread.

Entries are owned by the process' effective ids. Those that expose another process'
memory, files or environment (environ, maps, fd/, cwd, root, exe, io) also need the
reader to be allowed to ptrace it (may_ptrace), as on Linux; the checks run at open /
lookup / readlink time with the creds of the task being served. A reaped process' open
entries answer ESRCH, lookups in its directory ENOENT.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Callable, Mapping

from usermode.fs import procfs_task as pt
from usermode.fs.file import O_CLOEXEC, O_CREAT, O_EXCL, O_LARGEFILE, O_NOCTTY, O_TRUNC
from usermode.fs.inode import Inode, Path
from usermode.fs.procfs_base import Dir, GenFile, Link, Render, Writer, mangle
from usermode.fs.stat import Stat, major, minor
from usermode.kernel import task as ts
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.fs.file import File
    from usermode.fs.procfs import ProcFS
    from usermode.kernel.task import Process, Task

# mnt_id that fdinfo shows for files of the kernel's internal mounts
PSEUDO_MNT_IDS = {"pipe": 12, "socket": 9}
ANON_MNT_ID = 13
OOM_ADJ_MAX, OOM_DISABLE, OOM_SCORE_ADJ_MAX = 15, -17, 1000
LOGINUID_UNSET = 0xFFFFFFFF


class PidDir(Dir):
    """/proc/<pid> (thread None: the whole process) or .../task/<tid> (one thread)."""

    sb: "ProcFS"

    def __init__(self, fs: "ProcFS", proc: "Process", thread: "Task | None" = None) -> None:
        self.proc = proc
        self.thread = thread
        self._built = False
        super().__init__(fs, owner=self.owner_ids)

    # Entries are made on first use, one by one: every exec of busybox resolves
    # /proc/self/exe, and making all ~30 inodes would cost more than that lookup.
    # build() only records how to make each (self._makers); listing makes them all.
    def _build_once(self) -> None:
        if not self._built:
            self._built = True
            self.build()

    @property
    def entries(self) -> dict[bytes, Inode]:
        self._build_once()
        if self._makers:
            for name in list(self._makers):
                self._make(name)
        return self._entries

    @entries.setter
    def entries(self, value: dict[bytes, Inode]) -> None:
        self._entries = value
        self._makers: dict[bytes, Callable[[], Inode]] = {}

    def _make(self, name: bytes) -> Inode | None:
        maker = self._makers.pop(name, None)
        if maker is None:
            return None
        inode = maker()
        self._entries[name] = inode
        self.nlink += inode.is_dir
        return inode

    def add(self, name: str | bytes, inode: "Inode | Callable[[], Inode]") -> None:
        key = name.encode() if isinstance(name, str) else name
        self._makers[key] = inode if callable(inode) and not isinstance(inode, Inode) \
            else (lambda: inode)

    def lookup(self, name: bytes) -> Inode:
        self.allow(self.sb.current)
        self._build_once()
        node = self._entries.get(name) or self._make(name)
        if node is None:
            raise Errno(errno.ENOENT)
        return node

    def getattr(self) -> Stat:
        self.entries                  # nlink counts the subdirectories
        return super().getattr()

    # -- the subject
    def owner_ids(self) -> tuple[int, int]:
        return self.proc.creds.euid, self.proc.creds.egid

    @property
    def task(self) -> "Task | None":
        """The task the entry names: the thread, or the leader for a process."""
        if self.thread is not None:
            return self.thread
        return self.proc.threads[0] if self.proc.threads else None

    def alive(self) -> bool:
        k = self.sb.kernel
        if k.procs.get(self.proc.pid) is not self.proc:
            return False
        return self.thread is None or self.thread in self.proc.threads

    def need_alive(self) -> None:
        if not self.alive():
            raise Errno(errno.ESRCH)

    def ptrace_check(self, t: "Task | None") -> None:
        if not pt.may_ptrace(t, self.proc):
            raise Errno(errno.EACCES)

    def fs_task(self) -> "Task":
        """A live task with fs and files (ENOENT for zombies: no cwd, no fds)."""
        t = self.task if self.thread is not None else pt.live_thread(self.proc)
        if t is None or t.state == ts.DEAD or self.proc.zombie or t.fs is None:
            raise Errno(errno.ENOENT)
        return t

    # -- building
    def file(self, name: str, render: Render, mode: int = 0o444, writer: Writer | None = None,
             private: bool = False) -> None:
        def gen(t: "Task | None") -> bytes:
            self.need_alive()
            return render(t)
        check = self.ptrace_check if private else None
        self.add(name, lambda: GenFile(self.sb, gen, mode, writer, self.owner_ids, check))

    def link(self, name: str, target: Callable[["Task | None"], bytes],
             jump: Callable[["Task | None"], Path | None] | None = None) -> None:
        self.add(name, lambda: Link(self.sb, target, jump, self.owner_ids, self.ptrace_check))

    def build(self) -> None:
        fs, k = self.sb, self.sb.kernel
        whole = self.thread is None
        self.file("stat", lambda t: pt.render_stat(k, fs.host, self.proc, self.task, whole, t))
        self.file("status", lambda t: pt.render_status(k, fs.host, self.proc, self.task, whole,
                                                       self.vmas(False)))
        self.file("statm", lambda t: pt.render_statm(fs.host, self.proc, self.vmas(False)))
        self.file("maps", lambda t: pt.render_maps(self.vmas(True)), private=True)
        self.file("cmdline", self.cmdline)
        self.file("environ", self.environ, 0o400, private=True)
        self.file("auxv", lambda t: self.proc.mm.auxv if self.proc.mm is not None else b"",
                  0o400, private=True)
        self.file("comm", self.comm, 0o644, self.set_comm)
        self.file("limits", lambda t: pt.render_limits(self.proc))
        self.file("io", lambda t: pt.render_io(self.proc), 0o400, private=True)
        self.file("cgroup", lambda t: b"0::/\n")
        self.file("mounts", lambda t: fs.render_mounts(self.fs_task().fs.root))
        self.file("mountinfo", lambda t: fs.render_mountinfo(self.fs_task().fs.root))
        self.file("wchan", self.wchan)
        self.file("oom_score", lambda t: b"0\n")
        self.file("oom_score_adj", lambda t: b"%d\n" % self.oom_adj(), 0o644, self.set_oom_adj)
        self.file("oom_adj", self.oom_adj_old, 0o644, self.set_oom_adj_old)
        self.file("loginuid", lambda t: b"%d" % fs.state.loginuid.get(self.proc, LOGINUID_UNSET),
                  0o644, self.set_loginuid)
        self.file("sessionid", lambda t: b"%d" % LOGINUID_UNSET)
        self.file("personality", lambda t: b"%08x\n" % self.proc.personality, 0o400,
                  private=True)
        self.file("setgroups", lambda t: b"allow\n")
        for m in ("uid_map", "gid_map"):
            self.file(m, lambda t: b"%10d %10d %10d\n" % (0, 0, 4294967295))
        self.link("cwd", lambda t: fs.d_path_for(t, self.fs_task().fs.cwd),
                  lambda t: self.fs_task().fs.cwd)
        self.link("root", lambda t: fs.d_path_for(t, self.fs_task().fs.root),
                  lambda t: self.fs_task().fs.root)
        self.link("exe", self.exe_target)
        self.add("fd", lambda: FdDir(self, info=False))
        self.add("fdinfo", lambda: FdDir(self, info=True))
        self.add("net", lambda: Dir(fs, dynamic=fs.net_entries, owner=self.owner_ids))
        if whole:
            self.add("task", lambda: Dir(fs, dynamic=self.threads, owner=self.owner_ids))
        else:
            self.file("children", lambda t: b"".join(
                b"%d " % c.pid for c in self.proc.children))

    # -- contents
    def vmas(self, idents: bool) -> list[pt.VMA]:
        """The address space; with idents, file mappings get their st_dev and inode."""
        mm, live = self.proc.mm, pt.live_thread(self.proc)
        if mm is None or live is None:
            return []
        vmas = pt.guest_maps(self.sb.host.maps(live.host_tid), mm.mappings, mm.brk_start,
                             mm.brk)
        if not idents:
            return vmas
        ids: dict[str, tuple[tuple[int, int], int]] = {}
        for v in vmas:
            if v.name and not v.name.startswith("["):
                if v.name not in ids:
                    ids[v.name] = self.sb.file_ident(v.name)
                v.dev, v.ino = ids[v.name]
        return vmas

    def _memory_text(self, start: int, end: int, fallback: list[bytes]) -> bytes:
        """argv/envp as the process' memory holds them now (setproctitle shows), or as
        exec recorded them."""
        mm = self.proc.mm
        if self.proc.zombie or mm is None:
            return b""
        if 0 < start < end:
            try:
                return mm.copy_in(start, min(end - start, 1 << 20))
            except Errno:
                pass
        return b"".join(a + b"\0" for a in fallback)

    def cmdline(self, t: "Task | None") -> bytes:
        mm = self.proc.mm
        a0, a1 = (mm.arg_start, mm.arg_end) if mm is not None else (0, 0)
        return self._memory_text(a0, a1, self.proc.cmdline)

    def environ(self, t: "Task | None") -> bytes:
        mm = self.proc.mm
        e0, e1 = (mm.env_start, mm.env_end) if mm is not None else (0, 0)
        return self._memory_text(e0, e1, self.proc.environ)

    def comm(self, t: "Task | None") -> bytes:
        task = self.task
        return ((task.comm if task is not None and task.comm else self.proc.comm) + b"\n")

    def set_comm(self, t: "Task | None", data: bytes) -> None:
        """Only a thread of the same process may rename it (else EINVAL), as Linux."""
        self.need_alive()
        if t is not None and t.process is not self.proc:
            raise Errno(errno.EINVAL)
        name = data[:15]
        task = self.task
        if task is not None:
            task.comm = name
        if task is None or task.tid == self.proc.pid:
            self.proc.comm = name

    def wchan(self, t: "Task | None") -> bytes:
        """Where a sleeping task waits: our syscall for tasks parked in our kernel, the
        host's symbol for calls the host runs natively, "0" when running."""
        task = self.task
        if not pt.may_ptrace(t, self.proc) or task is None or self.proc.zombie:
            return b"0"
        if task.state == ts.PARKED:
            name = self.sb.kernel.table.name(task.in_syscall_nr)
            return WCHAN.get(name, "do_sys_" + name).encode()
        if task.state == ts.RUNNING:
            w = self.sb.host.wchan(task.host_tid)
            return w.encode() if w not in ("", "0") else b"0"
        return b"do_signal_stop" if task.state == ts.HELD else b"0"

    def exe_target(self, t: "Task | None") -> bytes:
        if self.proc.zombie or self.proc.mm is None or not self.proc.exe:
            raise Errno(errno.ENOENT)
        return self.proc.exe.encode()

    def oom_adj(self) -> int:
        return self.sb.state.oom_score_adj.get(self.proc, 0)

    def set_oom_adj(self, t: "Task | None", data: bytes) -> None:
        self.need_alive()
        val = parse_int(data)
        if not -1000 <= val <= 1000:
            raise Errno(errno.EINVAL)
        if val < self.oom_adj() and t is not None and t.creds.euid != 0:
            raise Errno(errno.EACCES)        # lowering needs CAP_SYS_RESOURCE
        self.sb.state.oom_score_adj[self.proc] = val

    def oom_adj_old(self, t: "Task | None") -> bytes:
        adj = self.oom_adj()
        old = OOM_ADJ_MAX if adj == OOM_SCORE_ADJ_MAX else int(adj * -OOM_DISABLE / 1000)
        return b"%d\n" % old

    def set_oom_adj_old(self, t: "Task | None", data: bytes) -> None:
        val = parse_int(data)
        if not OOM_DISABLE <= val <= OOM_ADJ_MAX:
            raise Errno(errno.EINVAL)
        adj = OOM_SCORE_ADJ_MAX if val == OOM_ADJ_MAX else int(val * 1000 / -OOM_DISABLE)
        self.set_oom_adj(t, b"%d" % adj)

    def set_loginuid(self, t: "Task | None", data: bytes) -> None:
        if t is not None and t.creds.euid != 0:
            raise Errno(errno.EPERM)         # CAP_AUDIT_CONTROL
        self.sb.state.loginuid[self.proc] = parse_int(data) & 0xFFFFFFFF

    def threads(self) -> Mapping[bytes, Inode]:
        if not self.alive():
            return {}
        live = [t for t in self.proc.threads if t.state != ts.DEAD] or self.proc.threads[:1]
        return {b"%d" % t.tid: self.sb.thread_dir(self.proc, t) for t in live}


WCHAN = {"wait4": "do_wait", "waitid": "do_wait", "nanosleep": "hrtimer_nanosleep",
         "clock_nanosleep": "hrtimer_nanosleep", "poll": "do_sys_poll",
         "ppoll": "do_sys_poll", "select": "do_select", "pselect6": "do_select",
         "epoll_wait": "do_epoll_wait", "epoll_pwait": "do_epoll_wait",
         "pause": "sys_pause", "rt_sigsuspend": "sigsuspend", "read": "wait_woken",
         "futex": "futex_wait_queue", "accept": "inet_csk_accept",
         "accept4": "inet_csk_accept", "rt_sigtimedwait": "do_sigtimedwait"}


def parse_int(data: bytes) -> int:
    try:
        return int(data.strip() or b"x", 0)
    except ValueError:
        raise Errno(errno.EINVAL) from None


class FdDir(Dir):
    """fd/ (magic links to the open files) or fdinfo/ (pos, flags, mnt_id, ino)."""

    sb: "ProcFS"

    def __init__(self, pid: PidDir, info: bool) -> None:
        self.pid = pid
        self.info = info
        super().__init__(pid.sb, dynamic=self.fds, mode=0o555 if info else 0o500,
                         owner=pid.owner_ids, check=pid.ptrace_check)
        self.cache: dict[int, tuple["File", Inode]] = {}

    def files(self):
        try:
            return self.pid.fs_task().files
        except Errno:
            return None

    def fds(self) -> Mapping[bytes, Inode]:
        files = self.files()
        if files is None or not self.pid.alive():
            return {}
        out: dict[bytes, Inode] = {}
        live: dict[int, tuple["File", Inode]] = {}
        for fd, f in files:
            hit = self.cache.get(fd)
            if hit is None or hit[0] is not f:
                hit = (f, self.make(fd, f))
            live[fd] = hit
            out[b"%d" % fd] = hit[1]
        self.cache = live
        return out

    def lookup_dynamic(self, name: bytes) -> Inode | None:
        if not name.isdigit() or (len(name) > 1 and name[:1] == b"0"):
            return None
        return self.fds().get(name)

    def current_file(self, fd: int, f: "File") -> "File":
        """The file still at fd (ENOENT once it was closed or replaced)."""
        files = self.files()
        if files is None or fd not in files or files.get(fd) is not f:
            raise Errno(errno.ENOENT)
        return f

    def make(self, fd: int, f: "File") -> Inode:
        fs = self.sb
        if self.info:
            return GenFile(fs, lambda t: self.fdinfo(fd, self.current_file(fd, f)), 0o444,
                           owner=self.pid.owner_ids)
        mode = (0o500 if f.readable else 0) | (0o300 if f.writable else 0)
        return Link(fs, lambda t: fs.file_name(t, self.current_file(fd, f)),
                    lambda t: fs.file_path(self.current_file(fd, f)),
                    owner=self.pid.owner_ids, check=self.pid.ptrace_check,
                    mode=mode, size=64)

    def fdinfo(self, fd: int, f: "File") -> bytes:
        files = self.files()
        flags = f.flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)
        if f.vpath is not None:
            flags |= O_LARGEFILE             # open(2) forces it on 64-bit
        if files is not None and fd in files.cloexec:
            flags |= O_CLOEXEC
        st = f.stat()
        if f.vpath is not None and f.vpath.mount is not self.sb.anon_mount:
            mnt = f.vpath.mount.id
        else:
            kind = f.name().split(b":", 1)[0].decode(errors="replace")
            mnt = PSEUDO_MNT_IDS.get(kind, ANON_MNT_ID)
        return b"pos:\t%d\nflags:\t0%o\nmnt_id:\t%d\nino:\t%d\n" % (f.pos, flags, mnt, st.ino)


def mount_lines(fs: "ProcFS", root: Path, info: bool) -> bytes:
    """/proc/<pid>/mounts (info False) or mountinfo, as seen from root: mounts outside
    it are left out, mount points are shown relative to it."""
    vfs = fs.kernel.vfs
    out = []
    for m in vfs.mounts:
        point = vfs.d_path(Path(m.parent, m.mountpoint), root) \
            if m.parent is not None and m.mountpoint is not None else \
            (b"/" if m is root.mount else b"(unreachable)")
        if point.startswith(b"(unreachable)"):
            continue
        opts = "ro" if m.readonly else "rw"
        for bit, name in ((2, "nosuid"), (4, "nodev"), (8, "noexec")):
            if m.flags & bit:
                opts += "," + name
        opts += ",relatime"
        sb_opts = "ro" if m.sb.flags & 1 else "rw"
        source = mangle(m.source.encode(errors="replace") or b"none")
        if info:
            parent = m.parent.id if m.parent is not None else 1
            out.append(b"%d %d %d:%d %s %s %s - %s %s %s\n" % (
                m.id, parent, major(m.sb.dev), minor(m.sb.dev), mangle(sb_path(m)),
                mangle(point), opts.encode(), m.sb.fstype.encode(), source, sb_opts.encode()))
        else:
            out.append(b"%s %s %s %s 0 0\n" % (source, mangle(point), m.sb.fstype.encode(),
                                               opts.encode()))
    return b"".join(out)


def sb_path(m) -> bytes:
    """The path of a mount's root inside its filesystem (not "/" for bind mounts)."""
    parts = []
    d = m.root
    while d.parent is not None:
        parts.append(d.name)
        d = d.parent
    return b"/" + b"/".join(reversed(parts))
