"""Memory syscalls the filter traps: brk, file-backed mmap, and the large anonymous
mmap/munmap/mremap calls that are committed against `mem=` (small anonymous mmap, munmap
and mremap, mprotect and madvise run natively on the guest's own address space).

Commit accounting (Linux's vm.overcommit_memory=2, for what we can see): kernel.committed
is the sum of every address space's records (MM.commit, disjoint start -> end ranges).
Charged: brk growth; private writable and shared anonymous mappings of at least
COMMIT_THRESHOLD (1 MiB); private writable file mappings of that size; and, at fork, a
copy of the parent's records. A call that would take kernel.committed past mem_bytes
fails with ENOMEM (brk keeps the old break). Not charged: PROT_NONE reservations,
MAP_NORESERVE, MAP_STACK, private read-only mappings, and anything under the threshold:
the filter lets small calls run natively for speed, unseen. Records are only made for
ranges of at least the threshold so that undoing them (a munmap/mremap of them) traps too;
a recorded range later unmapped in small native pieces, or replaced by a small native
MAP_FIXED mmap, stays charged until its address space is gone (an over-count, never
negative). mprotect is native, so making a PROT_NONE reservation writable is not charged.
"""
from __future__ import annotations

import errno

from usermode.host import ptrace as pt
from usermode.host.platform import BorrowRefused, InjectError, Injector
from usermode.host.seccomp import COMMIT_THRESHOLD
from usermode.kernel.errors import Errno, s32
from usermode.kernel.mm import PAGE, Mapping, page_up
from usermode.kernel.syscalls.table import NATIVE
from usermode.kernel.task import Task

NR_MMAP, NR_MUNMAP = 9, 11
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE = 0x01, 0x02, 0x03
MAP_FIXED, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE = 0x10, 0x20, 0x100000
MAP_NORESERVE, MAP_STACK = 0x4000, 0x20000
MAP_TYPE = 0x0F
MAX_FILE_MAP = 1 << 30
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4


def _accountable(prot: int, flags: int, size: int) -> bool:
    """Whether a new mapping is charged: Linux's VM_ACCOUNT (private writable; shared
    anonymous memory is charged too), minus what must not trip the limit (PROT_NONE,
    MAP_NORESERVE, MAP_STACK), at or above the threshold the filter traps."""
    if size < COMMIT_THRESHOLD or flags & (MAP_NORESERVE | MAP_STACK):
        return False
    if flags & MAP_TYPE == MAP_PRIVATE:
        return bool(prot & PROT_WRITE)
    return bool(flags & MAP_ANONYMOUS and prot & (PROT_READ | PROT_WRITE | PROT_EXEC))


def _replaces(flags: int) -> bool:
    return bool(flags & MAP_FIXED) and not flags & MAP_FIXED_NOREPLACE


def _record(t: Task, res: int, size: int, prot: int, flags: int) -> None:
    """A file mapping was made at res: what it replaced is uncharged, it is charged."""
    mm = t.mm
    if _replaces(flags):
        mm.uncharge(t.kernel, res, res + size)
    if _accountable(prot, flags, size):
        mm.charge(t.kernel, res, res + size)


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
        k = t.kernel
        if k.committed + (new_end - old_end) > k.mem_bytes:              # mem= limit
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

    def done(t: Task, res: int, addr: int = addr, grow: bool = new_end > old_end,
             old_end: int = old_end, new_end: int = new_end) -> int:
        mm = t.mm
        if grow and res == old_end:
            mm.brk = addr
            mm.charge(t.kernel, old_end, new_end)
        elif not grow and res == 0:
            mm.brk = addr
            mm.uncharge(t.kernel, new_end, old_end)
        return mm.brk
    t.after_native = done
    return NATIVE


def _mmap_anon(t: Task, addr: int, length: int, prot: int, flags: int, off: int) -> int:
    """A large anonymous mmap (the filter runs small ones natively): check the commit,
    run it on the host, record the range on success."""
    kind = flags & MAP_TYPE
    if (length == 0 or off & (PAGE - 1) or kind not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE)
            or (flags & MAP_FIXED and addr & (PAGE - 1))):
        return NATIVE                                   # the host's EINVAL
    size = page_up(length)
    acct = _accountable(prot, flags, size)
    replace = _replaces(flags)
    mm = t.mm
    if acct:
        k = t.kernel
        freed = mm.commit.overlap(addr, addr + size) if replace else 0
        if k.committed - freed + size > k.mem_bytes:
            raise Errno(errno.ENOMEM)
    elif not (replace and mm.commit.starts):
        return NATIVE                                   # nothing to record: no exit stop

    def done(t: Task, res: int, size: int = size, acct: bool = acct,
             replace: bool = replace) -> int:
        if res < 0:
            return res
        mm = t.mm
        if replace:
            mm.uncharge(t.kernel, res, res + size)
        if acct:
            mm.charge(t.kernel, res, res + size)
        return res
    t.after_native = done
    return NATIVE


def sys_mmap(t: Task, addr: int, length: int, prot: int, flags: int, fd: int, off: int) -> int:
    """mmap(2) of a file. Regular files are mapped from host memory: private mappings from
    the page cache (a memfd snapshot of the file), shared ones from memory every mapper
    and read/write share (a tmpfs file's memfd, a hostfs file's own host file), so
    MAP_SHARED works as on Linux. Anonymous mappings arrive here only when large."""
    flags = s32(flags) & 0xFFFFFFFF
    if flags & MAP_ANONYMOUS:
        return _mmap_anon(t, addr, length, prot, flags, off)
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
    if kind != MAP_PRIVATE and prot & PROT_WRITE and not f.writable:
        raise Errno(errno.EACCES)
    size = page_up(length)
    if _accountable(prot, flags, size):
        k = t.kernel
        freed = t.mm.commit.overlap(addr, addr + size) if _replaces(flags) else 0
        if k.committed - freed + size > k.mem_bytes:
            raise Errno(errno.ENOMEM)
    vpath = getattr(f, "vpath", None)
    name = t.kernel.vfs.d_path(vpath, t.fs.root).decode("utf-8", "surrogateescape") if vpath else ""
    if vpath is not None and vpath.dentry.inode.is_reg and \
            (t.kernel.borrow_memfds or kind != MAP_PRIVATE):
        inode = vpath.dentry.inode
        shared = _shared_fd(f, inode, kind != MAP_PRIVATE)
        if kind != MAP_PRIVATE and shared is None:
            raise Errno(errno.ENODEV)
        try:
            return _map_regular(t, f, inode, addr, length, prot, flags, off, name, shared)
        except BorrowRefused:
            if kind != MAP_PRIVATE:
                raise Errno(errno.ENODEV) from None
            t.kernel.borrow_memfds = False
            t.kernel.printk("usermode: the host refuses pidfd_getfd; file mappings are copies")
            # and on to the copy below: private mappings only need the bytes
    if kind != MAP_PRIVATE and prot & PROT_WRITE:
        raise Errno(errno.ENODEV)
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
        mm = t.mm
        if data:
            mm.mem.write(res, data[:length])
        mm.mappings.append(Mapping(res, res + size, prot, name, off))
        _record(t, res, size, prot, flags)
        return res
    t.after_native = done
    return NATIVE


def _shared_fd(f, inode, want: bool) -> int | None:
    """The kernel-side host fd that IS this file's memory, if it has one: a tmpfs file
    already mapped shared (or now, when `want`), or a hostfs file's host fd."""
    if getattr(inode, "shared", None) is not None or (want and hasattr(inode, "shared_fd")):
        return inode.shared_fd()
    if want:
        return getattr(f, "hfd", None)
    return None


def _map_regular(t: Task, f, inode, addr: int, length: int, prot: int, flags: int, off: int,
                 name: str, kfd: int | None = None) -> int:
    """A regular file: map host memory holding it (SIGBUS past EOF, shared pages)."""
    k = t.kernel
    if kfd is None:
        st = inode.getattr()
        key = (st.dev, st.ino, st.mtime_ns, st.size)
        kfd = k.pagecache.memfd(key, st.size, lambda o, n: f.pread(t, n, o))
    mm = t.mm
    inj = Injector(t.host_tid, mm.mem)
    # one stop instead of five when nothing else can touch the batch table: the stub is
    # sealed and no other task shares this address space
    alone = mm.stub_sealed and mm.users == 1 and len(t.process.alive_threads()) == 1
    saved = pt.Regs.from_buffer_copy(t.regs.r)
    try:
        if alone:
            res = inj.map_host_fd_at_once(kfd, addr, length, prot, flags, off)
        else:
            res = inj.map_host_fd(kfd, addr, length, prot, flags, off)
    except InjectError as e:            # the task is gone, or killed for tampering
        k.printk(f"usermode: pid {t.pid}: {e}")
        raise Errno(errno.EFAULT) from None
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
    host, and the overlap with the commit records is returned first, with no exit stop:
    a page-aligned munmap below 2^47 only fails if splitting a mapping passes the host's
    max_map_count, and then the range merely goes uncounted."""
    mm = t.mm
    end = addr + page_up(length)
    if mm.commit.starts and not addr & (PAGE - 1) and end <= (1 << 47):
        mm.uncharge(t.kernel, addr, end)
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
    ("brk", sys_brk, "supported", "growth is committed against mem= (the old break past it)"),
    ("mmap", sys_mmap, "partial", "file mappings are private copies; shared writable ones ENODEV; "
     "mappings of 1 MiB or more are committed against mem= (ENOMEM past it) unless "
     "PROT_NONE, read-only private, MAP_NORESERVE or MAP_STACK; smaller anonymous ones run "
     "natively, unaccounted"),
    ("munmap", sys_munmap, "supported", "native below 1 MiB; larger ones run natively and "
     "return their commit"),
    ("mremap", sys_mremap, "supported", "native below 1 MiB; larger ones run natively after "
     "growth is checked against mem="),
]
