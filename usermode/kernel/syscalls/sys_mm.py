"""Memory syscalls the filter traps: brk and file-backed mmap (anonymous mmap, munmap,
mprotect, mremap and madvise run natively on the guest's own address space)."""
from __future__ import annotations

import errno

from usermode.host import ptrace as pt
from usermode.host.platform import Injector
from usermode.kernel.errors import Errno, s32
from usermode.kernel.mm import PAGE, Mapping, page_up
from usermode.kernel.syscalls.table import NATIVE
from usermode.kernel.task import Task

NR_MMAP, NR_MUNMAP = 9, 11
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE = 0x01, 0x02, 0x03
MAP_FIXED, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE = 0x10, 0x20, 0x100000
MAP_TYPE = 0x0F
MAX_FILE_MAP = 1 << 30


def sys_brk(t: Task, addr: int) -> int:
    """brk(2): the heap after the program's bss, grown and shrunk with native mmap/munmap."""
    mm = t.mm
    if addr < mm.brk_start or addr >= (1 << 47):
        return mm.brk
    old_end, new_end = page_up(mm.brk), page_up(addr)
    if new_end == old_end:
        mm.brk = addr
        return addr
    r = t.regs.r
    if new_end > old_end:
        limit = t.process.rlimits.get(2, ((1 << 64) - 1,))[0]          # RLIMIT_DATA
        if addr - mm.brk_start > limit:
            return mm.brk
        r[pt.ORIG_RAX] = NR_MMAP
        r[pt.RDI], r[pt.RSI] = old_end, new_end - old_end
        r[pt.RDX] = PROT_READ | PROT_WRITE
        r[pt.R10] = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE
        r[pt.R8], r[pt.R9] = (1 << 64) - 1, 0
    else:
        r[pt.ORIG_RAX] = NR_MUNMAP
        r[pt.RDI], r[pt.RSI] = new_end, old_end - new_end
    t.regs.dirty = True

    def done(t: Task, res: int, addr: int = addr, grow: bool = new_end > old_end) -> int:
        if (grow and res == old_end) or (not grow and res == 0):
            t.mm.brk = addr
        return t.mm.brk
    t.after_native = done
    return NATIVE


def sys_mmap(t: Task, addr: int, length: int, prot: int, flags: int, fd: int, off: int) -> int:
    """mmap(2) of a file: an anonymous private mapping filled with the file's bytes.

    Private file mappings (what ld.so makes) behave as on Linux except that later writes to
    the file are not seen through the mapping; shared writable file mappings are refused.
    """
    flags = s32(flags) & 0xFFFFFFFF
    fd = s32(fd)
    f = t.files.get(fd)
    if length == 0 or off & (PAGE - 1) or length > (1 << 47):
        raise Errno(errno.EINVAL)
    kind = flags & MAP_TYPE
    if kind not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        raise Errno(errno.EINVAL)
    if not f.mappable:
        raise Errno(errno.ENODEV)
    if not f.readable:
        raise Errno(errno.EACCES)
    if kind != MAP_PRIVATE and prot & PROT_WRITE:
        if not f.writable:
            raise Errno(errno.EACCES)
        raise Errno(errno.ENODEV)
    size = page_up(length)
    vpath = getattr(f, "vpath", None)
    name = t.kernel.vfs.d_path(vpath, t.fs.root).decode("utf-8", "surrogateescape") if vpath else ""
    if vpath is not None and vpath.dentry.inode.is_reg:
        return _map_regular(t, f, vpath.dentry.inode, addr, length, prot, flags, off, name)
    data = b""
    if size <= MAX_FILE_MAP:
        try:
            data = f.pread(t, size, off)
        except Errno as e:
            if e.errno != errno.ESPIPE:
                raise
            data = b""                 # character devices like /dev/zero: zero pages
    r = t.regs.r
    r[pt.R10] = (flags & ~MAP_TYPE) | MAP_PRIVATE | MAP_ANONYMOUS
    r[pt.R8], r[pt.R9] = (1 << 64) - 1, 0
    t.regs.dirty = True

    def done(t: Task, res: int, data: bytes = data) -> int:
        if res < 0 or res >= (1 << 63):
            return res
        if data:
            t.mm.mem.write(res, data[:length])
        t.mm.mappings.append(Mapping(res, res + size, prot, name, off))
        return res
    t.after_native = done
    return NATIVE


def _map_regular(t: Task, f, inode, addr: int, length: int, prot: int, flags: int, off: int,
                 name: str) -> int:
    """A regular file: map its page-cache memfd (shared pages, SIGBUS past EOF)."""
    st = inode.getattr()
    key = (st.dev, st.ino, st.mtime_ns, st.size)
    k = t.kernel
    kfd = k.pagecache.memfd(key, st.size, lambda o, n: f.pread(t, n, o))
    inj = Injector(t.host_tid)
    saved = pt.Regs.from_buffer_copy(t.regs.r)
    try:
        res = inj.map_host_fd(kfd, addr, length, prot, flags, off)
    finally:
        pt.setregs(t.host_tid, saved)
        t.regs.r[:] = saved
        for sig in inj.deferred_signals:
            k.send_signal_to_task(t, sig)
    if res < 0:
        raise Errno(-res)
    t.mm.mappings.append(Mapping(res, res + page_up(length), prot, name, off))
    _record(t, res, page_up(length), prot, flags)
    return res


def sys_munmap(t: Task, addr: int, length: int) -> int:
    """munmap(2) of at least COMMIT_THRESHOLD (smaller ones run natively): runs on the
    host; on success the overlap with the commit records is returned."""
    mm = t.mm
    end = addr + page_up(length)
    if not mm.commit.starts or addr & (PAGE - 1) or not mm.commit.overlap(addr, end):
        return NATIVE                                   # nothing recorded there: no exit stop

    def done(t: Task, res: int, addr: int = addr, end: int = end) -> int:
        if res == 0:
            t.mm.uncharge(t.kernel, addr, end)
        return res
    t.after_native = done
    return NATIVE


def sys_mremap(t: Task, old: int, old_len: int, new_len: int, flags: int,
               new_addr: int) -> int:
    """mremap(2) with a length of at least COMMIT_THRESHOLD (smaller ones run natively):
    growth of a charged mapping is checked against mem= first; on success the records
    shrink, grow or move with the mapping.

    A source with no record is taken as charged when it is small (a native private
    writable mapping, as glibc's realloc of an mmapped chunk) and as uncharged when large
    (it would have a record if it were: PROT_NONE, MAP_NORESERVE or MAP_STACK)."""
    flags &= 0xFFFFFFFF
    if old & (PAGE - 1) or flags & ~7 or new_len == 0:
        return NATIVE                                   # the host's EINVAL
    mm = t.mm
    k = t.kernel
    olen, nlen = page_up(old_len), page_up(new_len)
    has = bool(mm.commit.starts)
    in_src = has and mm.commit.overlap(old, old + olen) > 0
    src_acct = old_len != 0 and (in_src or olen < COMMIT_THRESHOLD)
    dontunmap = bool(flags & MREMAP_DONTUNMAP)
    fixed = bool(flags & MREMAP_FIXED)
    charge = 0
    if src_acct:
        charge = nlen if dontunmap else max(0, nlen - olen)
    freed = mm.commit.overlap(new_addr, new_addr + nlen) if fixed and has else 0
    if charge and k.committed + charge - freed > k.mem_bytes:
        raise Errno(errno.ENOMEM)
    if not charge and not in_src and not freed:
        return NATIVE                                   # nothing to record: no exit stop

    def done(t: Task, res: int) -> int:
        if res < 0:
            return res
        mm, k = t.mm, t.kernel
        if res == old and not dontunmap:                # resized in place
            if nlen < olen:
                mm.uncharge(k, old + nlen, old + olen)
            elif src_acct and nlen > olen:
                mm.charge(k, old + olen, old + nlen)
            return res
        if fixed:
            mm.uncharge(k, res, res + nlen)             # the target was unmapped first
        keep = min(olen, nlen)
        if dontunmap:
            pieces = mm.commit.pieces(old, old + keep)
        else:
            pieces = mm.take_commit(k, old, old + olen)
        delta = res - old
        for s, e in pieces:
            if s < old + keep:
                mm.charge(k, s + delta, min(e, old + keep) + delta)
        if src_acct:
            if dontunmap:
                mm.charge(k, res, res + nlen)
            elif nlen > olen:
                mm.charge(k, res + olen, res + nlen)
        return res
    t.after_native = done
    return NATIVE


def sys_madvise(t: Task, addr: int, length: int, advice: int) -> int:
    """madvise(2): advice the filter does not pass natively (safe ones run on the host)."""
    advice = s32(advice)
    if advice in (100, 101):                 # MADV_HWPOISON, MADV_SOFT_OFFLINE
        raise Errno(errno.EPERM)
    raise Errno(errno.EINVAL)


ARCH_GET_CPUID, ARCH_SET_CPUID = 0x1011, 0x1012


def sys_arch_prctl(t: Task, code: int, addr: int) -> int:
    """arch_prctl(2): FS/GS run natively; CPUID faulting is not offered."""
    code = s32(code)
    if code == ARCH_GET_CPUID:
        return 1
    if code == ARCH_SET_CPUID:
        raise Errno(errno.ENODEV)
    raise Errno(errno.EINVAL)


SYSCALLS = [
    ("madvise", sys_madvise, "supported", "safe advice runs natively; HWPOISON refused"),
    ("arch_prctl", sys_arch_prctl, "supported", "FS/GS natively; no CPUID faulting"),
    ("brk", sys_brk, "supported", ""),
    ("mmap", sys_mmap, "partial", "file mappings are private copies; shared writable ones ENODEV"),
]
