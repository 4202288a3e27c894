"""execve(2) and execveat(2): everything that can fail is checked here, before the point
of no return; then the task really execve()s the stub on the host and our loader
(lifecycle.on_exec) builds the program in the fresh address space."""
from __future__ import annotations

import errno

from usermode.host import ptrace as pt
from usermode.kernel.elf import ExecPlan, parse_cached
from usermode.kernel.errors import Errno, s32
from usermode.kernel.syscalls.table import NATIVE
from usermode.kernel.task import Task

AT_FDCWD = -100
AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW = 0x1000, 0x100
ARG_MAX = 2 << 20
MAX_ARG_STRLEN = 131072
NR_EXECVE = 59
BINPRM_BUF = 256
MAX_INTERP_DEPTH = 4


def _text(p: "bytes | str") -> str:
    return p if isinstance(p, str) else p.decode("utf-8", "surrogateescape")


def _read_strings(t: Task, ptr: int) -> list[bytes]:
    return [t.mm.read_cstr(p, MAX_ARG_STRLEN) for p in t.mm.read_ptr_array(ptr)]


def _head(t: Task, f) -> bytes:
    return f.pread(t, BINPRM_BUF, 0)


def _load(t: Task, dirfd: int, path: bytes, flags: int):
    """Open for exec; returns (file, inode, resolved path, first bytes)."""
    vfs = t.kernel.vfs
    f, inode, resolved = vfs.open_exec(t, path, dirfd, flags)
    return f, inode, _text(resolved), _head(t, f)


def _image(t: Task, f, inode, resolved: str):
    st = inode.getattr()
    key = (st.dev, st.ino, st.mtime_ns, st.size)
    return parse_cached(key, resolved, lambda: t.kernel.vfs.read_all(t, f))


def prepare(t: Task, dirfd: int, filename: bytes, argv: list[bytes], envp: list[bytes],
            flags: int = 0) -> ExecPlan:
    """Resolve #! interpreters and the ELF interpreter; raise Errno as execve would."""
    path = filename
    for _ in range(MAX_INTERP_DEPTH + 1):
        f, inode, resolved, data = _load(t, dirfd, path, flags)
        if data[:2] == b"#!":
            line = data[2:BINPRM_BUF].split(b"\n", 1)[0].strip(b" \t")
            if not line:
                raise Errno(errno.ENOEXEC)
            parts = line.split(None, 1)
            interp = parts[0]
            args = [interp] + ([parts[1].strip(b" \t")] if len(parts) > 1 else [])
            argv = args + [path] + argv[1:]
            path, dirfd, flags = interp, AT_FDCWD, 0
            continue
        if data[:4] != b"\x7fELF":
            raise Errno(errno.ENOEXEC)
        main = _image(t, f, inode, resolved)
        plan = ExecPlan(filename, argv, envp, main)
        c = t.creds
        plan.uid, plan.gid, plan.euid, plan.egid = c.uid, c.gid, c.euid, c.egid
        mode = getattr(inode, "mode", 0)
        if mode & 0o4000:
            plan.euid = inode.uid
        if mode & 0o2000 and mode & 0o010:
            plan.egid = inode.gid
        if main.interp:
            ipath = main.interp.encode("utf-8", "surrogateescape")
            fi, iinode, iresolved, _ = _load(t, AT_FDCWD, ipath, 0)
            interp_img = _image(t, fi, iinode, iresolved)
            if interp_img.interp:
                raise Errno(errno.ELIBBAD)
            plan.interp = interp_img
        return plan
    raise Errno(errno.ELOOP)


def do_execve(t: Task, dirfd: int, pathp: int, argvp: int, envpp: int, flags: int) -> int:
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
        raise Errno(errno.EINVAL)
    filename = t.mm.read_cstr(pathp, 4096)
    if not filename and not flags & AT_EMPTY_PATH:
        raise Errno(errno.ENOENT)
    argv = _read_strings(t, argvp)
    envp = _read_strings(t, envpp)
    if sum(len(a) + 9 for a in argv) + sum(len(e) + 9 for e in envp) > ARG_MAX:
        raise Errno(errno.E2BIG)
    plan = prepare(t, dirfd, filename, argv, envp, flags)
    ctty = t.process.ctty
    if ctty is not None and ctty.log is not None:        # tty_log_dir=: UML's log_exec
        ctty.log.exec(argv)
    # Point of no return is the host's execve of the stub: write its path and an argv
    # into dead stack space below the red zone, and let the rewritten call run.
    r = t.regs.r
    stub = t.kernel.stub_path.encode() + b"\0"
    scratch = ((r[pt.RSP] - 8192) & ~15)
    blob = stub.ljust((len(stub) + 15) & ~15, b"\0")
    argv_at = scratch + len(blob)
    t.mm.copy_out(scratch, blob + scratch.to_bytes(8, "little") + bytes(8))
    r[pt.ORIG_RAX] = NR_EXECVE
    r[pt.RDI], r[pt.RSI], r[pt.RDX] = scratch, argv_at, argv_at + 8
    t.regs.dirty = True
    t.exec_pending = plan
    return NATIVE


def sys_execve(t: Task, path: int, argv: int, envp: int) -> int:
    """execve(2)"""
    return do_execve(t, AT_FDCWD, path, argv, envp, 0)


def sys_execveat(t: Task, dirfd: int, path: int, argv: int, envp: int, flags: int) -> int:
    """execveat(2)"""
    return do_execve(t, s32(dirfd), path, argv, envp, s32(flags) & 0xFFFFFFFF)


SYSCALLS = [
    ("execve", sys_execve, "supported", "ELF (static, PIE, dynamic) and #! scripts"),
    ("execveat", sys_execveat, "supported", ""),
]
