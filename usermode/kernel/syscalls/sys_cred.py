"""Credentials, limits and system information: the guest's own, never the host's."""
from __future__ import annotations

import errno
import struct

from usermode.kernel.errors import Errno, s32
from usermode.kernel.task import Task

NGROUPS_MAX = 65536
KEEP = 0xFFFFFFFF               # (uid_t)-1: leave unchanged
INF = (1 << 64) - 1
# defaults as a fresh Linux boot gives init
RLIMIT_DEFAULTS = {0: (INF, INF), 1: (INF, INF), 2: (INF, INF), 3: (8 << 20, INF), 4: (0, INF),
                   5: (INF, INF), 6: (63432, 63432), 7: (1024, 4096), 8: (8 << 20, 8 << 20),
                   9: (INF, INF), 10: (INF, INF), 11: (63432, 63432), 12: (819200, 819200),
                   13: (0, 0), 14: (0, 0), 15: (INF, INF)}


def sys_getuid(t: Task) -> int:
    """getuid(2)"""
    return t.creds.uid


def sys_geteuid(t: Task) -> int:
    """geteuid(2)"""
    return t.creds.euid


def sys_getgid(t: Task) -> int:
    """getgid(2)"""
    return t.creds.gid


def sys_getegid(t: Task) -> int:
    """getegid(2)"""
    return t.creds.egid


def _set_ids(t: Task, r: int, e: int, s: int, group: bool) -> int:
    """The setres[ug]id rule: unprivileged callers may only pick among their current ids."""
    c = t.creds
    cur = (c.gid, c.egid, c.sgid) if group else (c.uid, c.euid, c.suid)
    if not c.is_root:
        for v in (r, e, s):
            if v != KEEP and v not in cur:
                raise Errno(errno.EPERM)
    nr, ne, ns = (cur[0] if r == KEEP else r, cur[1] if e == KEEP else e,
                  cur[2] if s == KEEP else s)
    if group:
        c.gid, c.egid, c.sgid, c.fsgid = nr, ne, ns, ne
    else:
        c.uid, c.euid, c.suid, c.fsuid = nr, ne, ns, ne
    return 0


def sys_setresuid(t: Task, r: int, e: int, s: int) -> int:
    """setresuid(2)"""
    return _set_ids(t, r & KEEP, e & KEEP, s & KEEP, False)


def sys_setresgid(t: Task, r: int, e: int, s: int) -> int:
    """setresgid(2)"""
    return _set_ids(t, r & KEEP, e & KEEP, s & KEEP, True)


def sys_setuid(t: Task, uid: int) -> int:
    """setuid(2)"""
    uid &= KEEP
    if uid == KEEP:
        raise Errno(errno.EINVAL)
    if t.creds.is_root:
        return _set_ids(t, uid, uid, uid, False)
    return _set_ids(t, KEEP, uid, KEEP, False)


def sys_setgid(t: Task, gid: int) -> int:
    """setgid(2)"""
    gid &= KEEP
    if gid == KEEP:
        raise Errno(errno.EINVAL)
    if t.creds.is_root:
        return _set_ids(t, gid, gid, gid, True)
    return _set_ids(t, KEEP, gid, KEEP, True)


def _setre(t: Task, r: int, e: int, group: bool) -> int:
    c = t.creds
    real = c.gid if group else c.uid
    s = KEEP
    if r != KEEP or (e != KEEP and e != real):
        s = e if e != KEEP else (c.egid if group else c.euid)
    if not c.is_root and s != KEEP:
        cur = (c.gid, c.egid, c.sgid) if group else (c.uid, c.euid, c.suid)
        if s not in cur:
            raise Errno(errno.EPERM)
        return _set_ids(t, r, e, KEEP, group) or _force_saved(t, s, group)
    return _set_ids(t, r, e, s, group)


def _force_saved(t: Task, s: int, group: bool) -> int:
    if group:
        t.creds.sgid = s
    else:
        t.creds.suid = s
    return 0


def sys_setreuid(t: Task, r: int, e: int) -> int:
    """setreuid(2)"""
    return _setre(t, r & KEEP, e & KEEP, False)


def sys_setregid(t: Task, r: int, e: int) -> int:
    """setregid(2)"""
    return _setre(t, r & KEEP, e & KEEP, True)


def _getres(t: Task, a: int, b: int, c: int, vals: tuple[int, int, int]) -> int:
    for p, v in zip((a, b, c), vals):
        t.mm.write_u32(p, v)
    return 0


def sys_getresuid(t: Task, r: int, e: int, s: int) -> int:
    """getresuid(2)"""
    return _getres(t, r, e, s, (t.creds.uid, t.creds.euid, t.creds.suid))


def sys_getresgid(t: Task, r: int, e: int, s: int) -> int:
    """getresgid(2)"""
    return _getres(t, r, e, s, (t.creds.gid, t.creds.egid, t.creds.sgid))


def sys_setfsuid(t: Task, uid: int) -> int:
    """setfsuid(2)"""
    old = t.creds.fsuid
    uid &= KEEP
    if uid != KEEP and (t.creds.is_root or uid in (t.creds.uid, t.creds.euid, t.creds.suid)):
        t.creds.fsuid = uid
    return old


def sys_setfsgid(t: Task, gid: int) -> int:
    """setfsgid(2)"""
    old = t.creds.fsgid
    gid &= KEEP
    if gid != KEEP and (t.creds.is_root or gid in (t.creds.gid, t.creds.egid, t.creds.sgid)):
        t.creds.fsgid = gid
    return old


def sys_getgroups(t: Task, size: int, lst: int) -> int:
    """getgroups(2)"""
    size = s32(size)
    groups = t.creds.groups
    if size < 0:
        raise Errno(errno.EINVAL)
    if size == 0:
        return len(groups)
    if size < len(groups):
        raise Errno(errno.EINVAL)
    t.mm.copy_out(lst, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


def sys_setgroups(t: Task, size: int, lst: int) -> int:
    """setgroups(2)"""
    size = s32(size)
    if not t.creds.is_root:
        raise Errno(errno.EPERM)
    if size < 0 or size > NGROUPS_MAX:
        raise Errno(errno.EINVAL)
    data = t.mm.copy_in(lst, 4 * size) if size else b""
    t.creds.groups = list(struct.unpack(f"<{size}I", data))
    return 0


def sys_capget(t: Task, hdr: int, data: int) -> int:
    """capget(2): root has every capability, others none."""
    version, _ = struct.unpack("<II", t.mm.copy_in(hdr, 8))
    if version not in (0x19980330, 0x20071026, 0x20080522):
        t.mm.write_u32(hdr, 0x20080522)
        raise Errno(errno.EINVAL)
    if data:
        full = 0xFFFFFFFF if t.creds.euid == 0 else 0
        words = 1 if version == 0x19980330 else 2
        t.mm.copy_out(data, struct.pack("<III", full, full, 0) * words)
    return 0


def sys_capset(t: Task, hdr: int, data: int) -> int:
    """capset(2): accepted for root, which keeps all capabilities."""
    t.mm.copy_in(hdr, 8)
    if not t.creds.is_root:
        raise Errno(errno.EPERM)
    return 0


# ---- limits
def rlimit(t: Task, res: int) -> tuple[int, int]:
    return t.process.rlimits.get(res, RLIMIT_DEFAULTS.get(res, (INF, INF)))


def _prlimit(t: Task, pid: int, res: int, new: int, old: int) -> int:
    pid, res = s32(pid), s32(res)
    proc = t.process if pid == 0 else t.kernel.procs.get(pid)
    if proc is None or proc.zombie:
        raise Errno(errno.ESRCH)
    if not 0 <= res < 16:
        raise Errno(errno.EINVAL)
    cur = proc.rlimits.get(res, RLIMIT_DEFAULTS.get(res, (INF, INF)))
    val = None
    if new:
        soft, hard = struct.unpack("<QQ", t.mm.copy_in(new, 16))
        if soft > hard:
            raise Errno(errno.EINVAL)
        if hard > cur[1] and not t.creds.is_root:
            raise Errno(errno.EPERM)
        if res == 7 and hard > 1 << 20:
            raise Errno(errno.EPERM)
        val = (soft, hard)
    if old:
        t.mm.copy_out(old, struct.pack("<QQ", *cur))
    if val is not None:
        proc.rlimits[res] = val
        if res == 7:                                   # RLIMIT_NOFILE bounds the fd table
            for th in proc.threads:
                if th.files is not None:
                    th.files.limit = min(val[0], 1 << 20)
    return 0


def sys_prlimit64(t: Task, pid: int, res: int, new: int, old: int) -> int:
    """prlimit(2)"""
    return _prlimit(t, pid, res, new, old)


def sys_getrlimit(t: Task, res: int, old: int) -> int:
    """getrlimit(2)"""
    return _prlimit(t, 0, res, 0, old)


def sys_setrlimit(t: Task, res: int, new: int) -> int:
    """setrlimit(2)"""
    return _prlimit(t, 0, res, new, 0)


SYSCALLS = [
    ("getuid", sys_getuid, "supported", ""),
    ("geteuid", sys_geteuid, "supported", ""),
    ("getgid", sys_getgid, "supported", ""),
    ("getegid", sys_getegid, "supported", ""),
    ("setuid", sys_setuid, "supported", ""),
    ("setgid", sys_setgid, "supported", ""),
    ("setreuid", sys_setreuid, "supported", ""),
    ("setregid", sys_setregid, "supported", ""),
    ("setresuid", sys_setresuid, "supported", ""),
    ("setresgid", sys_setresgid, "supported", ""),
    ("getresuid", sys_getresuid, "supported", ""),
    ("getresgid", sys_getresgid, "supported", ""),
    ("setfsuid", sys_setfsuid, "supported", ""),
    ("setfsgid", sys_setfsgid, "supported", ""),
    ("getgroups", sys_getgroups, "supported", ""),
    ("setgroups", sys_setgroups, "supported", ""),
    ("capget", sys_capget, "partial", "root has all capabilities, others none"),
    ("capset", sys_capset, "partial", "no capability changes"),
    ("prlimit64", sys_prlimit64, "partial", "limits are recorded; NOFILE, NPROC enforced"),
    ("getrlimit", sys_getrlimit, "supported", ""),
    ("setrlimit", sys_setrlimit, "supported", ""),
]
