"""ELF parsing for exec (pyelftools reads the headers) and the load into a fresh address space."""
from __future__ import annotations

import errno
import io
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from usermode.kernel.errors import Errno
from usermode.kernel.mm import PAGE, Mapping, page_down, page_up

PT_LOAD, PT_INTERP, PT_PHDR = 1, 3, 6
PF_X, PF_W, PF_R = 1, 2, 4
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_NORESERVE = 0x02, 0x10, 0x20, 0x4000
MAP_FIXED_NOREPLACE = 0x100000
NR_MMAP = 9
PIE_BASE = 0x555555554000
PHDR = struct.Struct("<IIQQQQQQ")
STACK_SIZE = 8 << 20


@dataclass(slots=True)
class Segment:
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    flags: int

    @property
    def prot(self) -> int:
        return ((PROT_READ if self.flags & PF_R else 0) | (PROT_WRITE if self.flags & PF_W else 0)
                | (PROT_EXEC if self.flags & PF_X else 0))


@dataclass(slots=True)
class Image:
    path: str
    data: bytes
    pie: bool
    entry: int
    phoff: int
    phnum: int
    segments: list[Segment]
    phdr_vaddr: int | None
    interp: str | None
    key: tuple = ()         # the file's identity (dev, ino, mtime, size): its page cache

    def mappable(self) -> bool:
        """Every segment can be a file mapping (offset and address agree modulo a page)."""
        return bool(self.key) and all((s.offset - s.vaddr) % PAGE == 0 for s in self.segments)


def parse(path: str, data: bytes) -> Image:
    """Check and parse an x86-64 ELF executable; ENOEXEC for anything else, like Linux."""
    if data[:4] != b"\x7fELF" or len(data) < 64:
        raise Errno(errno.ENOEXEC)
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf.elfclass != 64 or not elf.little_endian or elf["e_machine"] != "EM_X86_64":
            raise Errno(errno.ENOEXEC)
        etype = elf["e_type"]
        if etype not in ("ET_EXEC", "ET_DYN"):
            raise Errno(errno.ENOEXEC)
        phoff, phnum, phentsize = elf["e_phoff"], elf["e_phnum"], elf["e_phentsize"]
        if phentsize != PHDR.size or phnum == 0 or phnum > 4096 or phoff + phnum * PHDR.size > len(data):
            raise Errno(errno.ENOEXEC)
        segs: list[Segment] = []
        interp = None
        phdr = None
        # program headers straight from the table: pyelftools' segment objects would parse
        # the section headers too, which costs more than the whole exec
        for i in range(phnum):
            ptype, flags, off, vaddr, _, filesz, memsz, _ = PHDR.unpack_from(data, phoff + i * PHDR.size)
            if ptype == PT_LOAD:
                if filesz > memsz or off + filesz > len(data):
                    raise Errno(errno.EINVAL)
                if memsz:
                    segs.append(Segment(off, vaddr, filesz, memsz, flags))
            elif ptype == PT_INTERP:
                interp = data[off:off + filesz].split(b"\0")[0].decode("utf-8", "surrogateescape")
            elif ptype == PT_PHDR:
                phdr = vaddr
        if not segs:
            raise Errno(errno.ENOEXEC)
        return Image(path, data, etype == "ET_DYN", elf["e_entry"], phoff, phnum, segs, phdr,
                     interp)
    except (ELFError, struct.error, ValueError, IndexError):
        raise Errno(errno.ENOEXEC) from None


_cache: "OrderedDict[tuple, Image]" = OrderedDict()
CACHE_SIZE = 64


def parse_cached(key: tuple, path: str, read) -> Image:
    """parse() through a small cache keyed by the file's identity (dev, ino, mtime, size),
    so exec of the same binaries (a shell loop, ld.so) reads and parses each once."""
    img = _cache.get(key)
    if img is not None:
        _cache.move_to_end(key)
        if img.path == path:
            return img
        img = Image(path, img.data, img.pie, img.entry, img.phoff, img.phnum, img.segments,
                    img.phdr_vaddr, img.interp, key)
        return img
    img = parse(path, read())
    img.key = key
    _cache[key] = img
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return img


@dataclass(slots=True)
class ExecPlan:
    """Everything exec needs after the point of no return, prepared before it."""
    filename: bytes                 # as the guest named it (AT_EXECFN)
    argv: list[bytes]
    envp: list[bytes]
    main: Image
    interp: Image | None = None
    uid: int = 0
    euid: int = 0
    gid: int = 0
    egid: int = 0
    mappings: list[Mapping] = field(default_factory=list)
    arg_range: tuple[int, int, int, int] = (0, 0, 0, 0)
    auxv: bytes = b""               # as /proc/<pid>/auxv shows it
    stub_sealed: bool = False       # the stub's pages are sealed: batches may use its data page


NR_CLOSE, NR_MUNMAP, NR_PIDFD_OPEN, NR_PIDFD_GETFD, NR_MSEAL = 3, 11, 434, 438, 462
MAP_STACK = 0x20000


class LoadBatch:
    """exec's system calls, collected so that the stub runs them all in one stop
    (Injector.batch). An entry may add an earlier entry's result to its address (a1: the
    load base of an image placed by the host) or to its fd (a5: a borrowed memfd)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, tuple[int, ...], int, int]] = []

    def add(self, nr: int, *args: int, base: int | None = None, fd: int | None = None) -> int:
        self.calls.append((nr, args, 0 if base is None else base + 1, 0 if fd is None else fd + 1))
        return len(self.calls) - 1


@dataclass(slots=True)
class Staged:
    """One image's part of the batch, and what to finish once the results are in."""
    img: Image
    lo: int
    size: int                   # hi - lo: the span of its segments
    bias: int                   # the load bias, when known before the batch
    reserve: int | None         # else: the entry that placed it (bias = result - lo)
    getfd: int | None           # the entry that borrowed its memfd, if mapped from it


def stage_image(b: LoadBatch, img: Image, base_hint: int | None, memfd: int | None,
                pidfd: int | None) -> Staged:
    """Add the mmaps that load img. Its segments are private mappings of its page-cache
    memfd (processes share the pages until they write, as with Linux's file mappings)
    when memfd is given, else anonymous memory its bytes are written into afterwards.
    Gaps between segments stay unmapped, as Linux leaves them."""
    lo = page_down(min(s.vaddr for s in img.segments))
    hi = page_up(max(s.vaddr + s.memsz for s in img.segments))
    anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    reserve = None
    bias = 0
    if img.pie and base_hint is None:        # the host chooses where (ld.so)
        reserve = b.add(NR_MMAP, 0, hi - lo, img.segments[0].prot,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    elif img.pie:
        bias = base_hint - lo

    def at(vaddr: int) -> int:
        return vaddr - lo if reserve is not None else bias + vaddr
    getfd = None
    if memfd is not None and pidfd is not None:
        getfd = b.add(NR_PIDFD_GETFD, 0, memfd, 0, base=pidfd)
    for s in img.segments:
        start = page_down(s.vaddr)
        end = page_up(s.vaddr + s.memsz)
        file_end = page_up(s.vaddr + s.filesz) if s.filesz else start
        if getfd is None:
            b.add(NR_MMAP, at(start), end - start, s.prot, anon, -1, 0, base=reserve)
            continue
        if file_end > start:
            b.add(NR_MMAP, at(start), file_end - start, s.prot, MAP_PRIVATE | MAP_FIXED, 0,
                  page_down(s.offset), base=reserve, fd=getfd)
        if end > file_end:
            b.add(NR_MMAP, at(file_end), end - file_end, s.prot, anon, -1, 0, base=reserve)
    if getfd is not None:
        b.add(NR_CLOSE, 0, base=getfd)
    return Staged(img, lo, hi - lo, bias, reserve, getfd)


def finish_image(inj, st: Staged, res: list[int], mappings: list[Mapping]) -> int:
    """After the batch: the image's bias, its mappings recorded, the bytes that mmap did
    not provide written (the zeroed tail of a file page before the bss, like padzero;
    everything, for an image without a memfd)."""
    img = st.img
    bias = res[st.reserve] - st.lo if st.reserve is not None else st.bias
    prev_end = 0
    for s in img.segments:
        start = page_down(s.vaddr)
        end = page_up(s.vaddr + s.memsz)
        file_end = page_up(s.vaddr + s.filesz) if s.filesz else start
        if st.getfd is not None:
            # like padzero: the whole rest of the page, not only to memsz (ld.so's early
            # malloc starts at _end and uses the rest of that page)
            tail = s.vaddr + s.filesz
            if s.memsz > s.filesz and tail < file_end and \
                    not inj.write(bias + tail, bytes(file_end - tail)):
                raise Errno(errno.EFAULT)
        else:
            # Linux maps whole file pages, so bytes before vaddr in the first page come
            # from the file too (that is how AT_PHDR points at the headers); keep that.
            pre = s.vaddr - start if start >= prev_end and s.offset >= s.vaddr - start else 0
            chunk = img.data[s.offset - pre:s.offset + s.filesz]
            if chunk and not inj.write(bias + s.vaddr - pre, chunk):
                raise Errno(errno.EFAULT)
        # the file's pages carry its name; a bss beyond them is anonymous, as on Linux
        if file_end > start:
            mappings.append(Mapping(bias + start, bias + file_end, s.prot, img.path,
                                    page_down(s.offset)))
        if end > file_end:
            mappings.append(Mapping(bias + file_end, bias + end, s.prot))
        prev_end = end
    return bias


def phdr_address(img: Image, bias: int) -> int:
    if img.phdr_vaddr is not None:
        return bias + img.phdr_vaddr
    for s in img.segments:
        if s.offset <= img.phoff < s.offset + s.filesz:
            return bias + s.vaddr + img.phoff - s.offset
    return 0


AT = dict(NULL=0, PHDR=3, PHENT=4, PHNUM=5, PAGESZ=6, BASE=7, FLAGS=8, ENTRY=9, UID=11,
          EUID=12, GID=13, EGID=14, PLATFORM=15, HWCAP=16, CLKTCK=17, SECURE=23, RANDOM=25,
          HWCAP2=26, EXECFN=31, SYSINFO_EHDR=33, MINSIGSTKSZ=51)


def build_stack(top: int, plan: ExecPlan, auxv: list[tuple[int, int]]) -> tuple[int, bytes, int, int, int, int]:
    """The initial stack Linux builds: argc, argv, envp, auxv, then the strings.

    Returns (sp, blob, arg_start, arg_end, env_start, env_end); blob is written at sp.
    `auxv` entries pointing at AT_RANDOM/AT_EXECFN/AT_PLATFORM are filled in here.
    """
    execfn = plan.filename + b"\0"
    strings = b"".join(a + b"\0" for a in plan.argv)
    envs = b"".join(e + b"\0" for e in plan.envp)
    execfn_at = top - 8 - len(execfn)
    env_start = execfn_at - len(envs)
    arg_start = env_start - len(strings)
    platform = b"x86_64\0"
    platform_at = arg_start - len(platform)
    random_at = (platform_at - 16) & ~15
    rnd = os.urandom(16)
    aux = [(k, v) for k, v in auxv]
    aux += [(AT["RANDOM"], random_at), (AT["EXECFN"], execfn_at),
            (AT["PLATFORM"], platform_at), (AT["NULL"], 0)]
    nptrs = 1 + len(plan.argv) + 1 + len(plan.envp) + 1 + 2 * len(aux)
    sp = (random_at - 8 * nptrs) & ~15
    ptrs = [len(plan.argv)]
    p = arg_start
    for a in plan.argv:
        ptrs.append(p)
        p += len(a) + 1
    ptrs.append(0)
    p = env_start
    for e in plan.envp:
        ptrs.append(p)
        p += len(e) + 1
    ptrs.append(0)
    for k, v in aux:
        ptrs += [k, v]
    plan.auxv = struct.pack(f"<{2 * len(aux)}Q", *ptrs[len(ptrs) - 2 * len(aux):])
    head = struct.pack(f"<{len(ptrs)}Q", *ptrs)
    blob = bytearray(top - sp)
    blob[0:len(head)] = head
    blob[random_at - sp:random_at - sp + 16] = rnd
    blob[platform_at - sp:platform_at - sp + len(platform)] = platform
    blob[arg_start - sp:arg_start - sp + len(strings)] = strings
    blob[env_start - sp:env_start - sp + len(envs)] = envs
    blob[execfn_at - sp:execfn_at - sp + len(execfn)] = execfn
    return sp, bytes(blob), arg_start, env_start, env_start, execfn_at


def load(inj, plan: ExecPlan, host_aux: dict[int, int], table: int,
         memfd_of: Callable[[Image], int | None] = lambda img: None,
         borrow: bool = True) -> tuple[int, int, int, list[Mapping]]:
    """Load plan into the fresh stub address space, with one batch of calls (the table at
    `table`, in the fresh stack). Returns (entry, sp, brk, mappings). memfd_of gives an
    image's page-cache memfd (None: copy the contents instead); borrow False: do not try
    (the host refused pidfd_getfd before). Raises Errno; a host that refuses to lend the
    memfds gets a second batch that copies, and inj.refused_borrow is then set."""
    main = plan.main
    hints = [PIE_BASE - page_down(main.segments[0].vaddr) if main.pie else None, None]
    images = [main] + ([plan.interp] if plan.interp is not None else [])
    fds = [memfd_of(img) if borrow else None for img in images]
    b = LoadBatch()
    pidfd = b.add(NR_PIDFD_OPEN, inj.kernel_pid, 0) if any(f is not None for f in fds) else None
    staged = [stage_image(b, img, hint, fd, pidfd) for img, hint, fd in zip(images, hints, fds)]
    if pidfd is not None:
        b.add(NR_CLOSE, 0, base=pidfd)
    stack_at = b.add(NR_MMAP, 0, STACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0)
    # the stub's code can no longer be unmapped or made writable (hosts before 6.10 say
    # ENOSYS: the injector's checks of each call it sees still hold there), and its data
    # page, where later batches put their tables, can be written by this process only
    data = b.add(NR_MMAP, *inj.stub_data, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
    seals = [b.add(NR_MSEAL, *inj.stub_page, 0), b.add(NR_MSEAL, *inj.stub_data, 0)]
    res = inj.batch(b.calls, table)
    lent = [st.getfd for st in staged if st.getfd is not None]
    if pidfd is not None and (res[pidfd] < 0 or any(res[i] < 0 for i in lent)):
        # no pidfd_getfd here (Yama, an old host): undo what was placed, and copy
        undo = LoadBatch()
        placed = [(st.reserve, st.size) for st in staged if st.reserve is not None]
        for i, size in placed + [(stack_at, STACK_SIZE)]:
            if res[i] >= 0:
                undo.add(NR_MUNMAP, res[i], size)
        if undo.calls:
            inj.batch(undo.calls, table)
        inj.refused_borrow = True
        return load(inj, plan, host_aux, table, memfd_of, borrow=False)
    for i, r in enumerate(res):
        if r < 0 and i != data and i not in seals:
            raise Errno(-r)
    plan.stub_sealed = res[data] == inj.stub_data[0] and all(res[i] == 0 for i in seals)
    maps: list[Mapping] = []
    bias = finish_image(inj, staged[0], res, maps)
    end = max(bias + s.vaddr + s.memsz for s in main.segments)
    entry = bias + main.entry
    base = 0
    if plan.interp is not None:
        ibias = finish_image(inj, staged[1], res, maps)
        base = ibias + page_down(min(s.vaddr for s in plan.interp.segments))
        start = ibias + plan.interp.entry
    else:
        start = entry
    stack = res[stack_at]
    top = stack + STACK_SIZE
    maps.append(Mapping(stack, top, PROT_READ | PROT_WRITE, "[stack]"))
    auxv = [(AT["SYSINFO_EHDR"], host_aux.get(33, 0))] if host_aux.get(33) else []
    auxv += [(AT["MINSIGSTKSZ"], host_aux.get(51, 2048)),
             (AT["HWCAP"], host_aux.get(16, 0)), (AT["PAGESZ"], PAGE), (AT["CLKTCK"], 100),
             (AT["PHDR"], phdr_address(main, bias)), (AT["PHENT"], 56),
             (AT["PHNUM"], main.phnum), (AT["BASE"], base), (AT["FLAGS"], 0),
             (AT["ENTRY"], entry), (AT["UID"], plan.uid), (AT["EUID"], plan.euid),
             (AT["GID"], plan.gid), (AT["EGID"], plan.egid),
             (AT["SECURE"], int(plan.uid != plan.euid or plan.gid != plan.egid)),
             (AT["HWCAP2"], host_aux.get(26, 0))]
    sp, blob, a0, a1, e0, e1 = build_stack(top, plan, auxv)
    if not inj.write(sp, blob):
        raise Errno(errno.EFAULT)
    plan.mappings = maps
    plan.arg_range = (a0, a1, e0, e1)
    return start, sp, page_up(end), maps
