"""Commit accounting for `mem=` (issue 2), without tracing: the interval records, the
seccomp filter (run through a small classic-BPF interpreter), and the mm handlers against
fake tasks."""
from __future__ import annotations

import errno
import os
import random
import struct

import pytest

from usermode.host import seccomp as sc
from usermode.host.seccomp import COMMIT_THRESHOLD, build_filter
from usermode.kernel.errors import Errno
from usermode.kernel.mm import MM, Intervals
from usermode.kernel.syscalls import sys_mm as m
from usermode.kernel.syscalls.numbers import NR
from usermode.kernel.syscalls.table import NATIVE, Table

MiB = 1 << 20
PG = 4096


# ---------------------------------------------------------------- intervals
def test_intervals_add_merges_and_counts_only_new_bytes():
    iv = Intervals()
    assert iv.add(0x10000, 0x20000) == 0x10000
    assert iv.add(0x20000, 0x30000) == 0x10000            # adjacent: merged
    assert list(iv) == [(0x10000, 0x30000)]
    assert iv.add(0x18000, 0x38000) == 0x8000              # only the uncovered tail
    assert iv.add(0x50000, 0x60000) == 0x10000
    assert list(iv) == [(0x10000, 0x38000), (0x50000, 0x60000)]
    assert iv.add(0, 0x70000) == 0x70000 - 0x28000 - 0x10000   # swallows both
    assert list(iv) == [(0, 0x70000)] and iv.total == 0x70000
    assert iv.add(5, 5) == 0


def test_intervals_remove_subtracts_exactly_the_overlap():
    iv = Intervals()
    iv.add(0x100000, 0x200000)
    iv.add(0x300000, 0x400000)
    assert iv.remove(0x180000, 0x190000) == 0x10000        # a hole in the middle
    assert list(iv) == [(0x100000, 0x180000), (0x190000, 0x200000), (0x300000, 0x400000)]
    assert iv.remove(0x1F0000, 0x310000) == 0x10000 + 0x10000   # across a gap
    assert iv.remove(0x500000, 0x600000) == 0               # nothing there
    assert iv.remove(0x200000, 0x300000) == 0               # exactly the gap
    assert iv.overlap(0, 1 << 40) == iv.total == 0x80000 + 0x60000 + 0xF0000
    assert iv.take(0x0, 0x190000) == [(0x100000, 0x180000)]
    assert iv.clear() == 0x60000 + 0xF0000 and iv.total == 0 and not len(iv)


def test_intervals_overlap_and_pieces():
    iv = Intervals()
    iv.add(10, 20)
    iv.add(30, 40)
    assert iv.overlap(0, 10) == 0 and iv.overlap(20, 30) == 0 and iv.overlap(40, 99) == 0
    assert iv.overlap(15, 35) == 10 and iv.overlap(0, 100) == 20 and iv.overlap(12, 13) == 1
    assert iv.pieces(15, 35) == [(15, 20), (30, 35)]
    assert iv.pieces(20, 30) == []
    c = iv.copy()
    c.remove(0, 100)
    assert iv.total == 20 and list(iv) == [(10, 20), (30, 40)] and c.total == 0


def test_intervals_random_against_a_page_set():
    rnd = random.Random(2)
    iv = Intervals()
    pages: set[int] = set()
    for _ in range(3000):
        a = rnd.randrange(0, 200)
        b = a + rnd.randrange(0, 30)
        span = set(range(a, b))
        op = rnd.randrange(4)
        if op < 2:
            assert iv.add(a * PG, b * PG) == len(span - pages) * PG
            pages |= span
        elif op == 2:
            assert iv.remove(a * PG, b * PG) == len(span & pages) * PG
            pages -= span
        else:
            assert iv.overlap(a * PG, b * PG) == len(span & pages) * PG
        assert iv.total == len(pages) * PG
        assert all(s < e for s, e in iv)
        flat = [x for r in iv for x in r]
        assert flat == sorted(flat) and len(set(flat)) == len(flat)   # disjoint, merged


# ---------------------------------------------------------------- the filter
def run_bpf(prog: bytes, nr: int, args=(0, 0, 0, 0, 0, 0), arch=sc.AUDIT_ARCH_X86_64) -> int:
    """Classic BPF as the kernel runs a seccomp filter (the instructions _Asm emits)."""
    args = (tuple(args) + (0,) * 6)[:6]
    data = struct.pack("<IIQ6Q", nr, arch, 0, *[a & (1 << 64) - 1 for a in args])
    ins = [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]
    acc, pc = 0, 0
    for _ in range(10000):
        code, jt, jf, k = ins[pc]
        pc += 1
        if code == 0x20:                           # BPF_LD | BPF_W | BPF_ABS
            assert k % 4 == 0 and k + 4 <= len(data)
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:                         # BPF_ALU | BPF_AND | BPF_K
            acc &= k
        elif code in (0x15, 0x35, 0x45):           # JEQ, JGE, JSET (K)
            cond = acc == k if code == 0x15 else acc >= k if code == 0x35 else bool(acc & k)
            pc += jt if cond else jf
        elif code == 0x06:                         # BPF_RET | BPF_K
            return k
        else:
            raise AssertionError(f"unknown BPF op {code:#x}")
        assert pc < len(ins), "fell off the end of the program"
    raise AssertionError("no return")


ALLOW, TRACE = sc.RET_ALLOW, sc.RET_TRACE
ENOSYS = sc.RET_ERRNO | sc.ENOSYS
RW, ANON, PRIV = m.PROT_READ | m.PROT_WRITE, m.MAP_ANONYMOUS, m.MAP_PRIVATE


@pytest.fixture(scope="module")
def prog() -> bytes:
    return build_filter()


@pytest.mark.parametrize("length, verdict", [
    (PG, ALLOW), (COMMIT_THRESHOLD - PG, ALLOW), (COMMIT_THRESHOLD - 1, ALLOW),
    (COMMIT_THRESHOLD, TRACE), (256 * MiB, TRACE),
    (1 << 32, TRACE), ((1 << 32) + 5, TRACE), (1 << 63, TRACE), ((1 << 64) - 1, TRACE),
])
def test_filter_anonymous_mmap_by_length(prog, length, verdict):
    assert run_bpf(prog, NR["mmap"], (0, length, RW, PRIV | ANON, -1, 0)) == verdict
    assert run_bpf(prog, NR["mmap"], (0, length, 0, PRIV | ANON | 0x4000, -1, 0)) == verdict


def test_filter_file_mmap_always_traps(prog):
    for length in (PG, 64 * MiB, (1 << 32) + PG):
        assert run_bpf(prog, NR["mmap"], (0, length, m.PROT_READ, PRIV, 3, 0)) == TRACE
        assert run_bpf(prog, NR["mmap"], (0, length, m.PROT_READ, m.MAP_SHARED, 3, 0)) == TRACE


@pytest.mark.parametrize("length, verdict", [
    (0, ALLOW), (PG, ALLOW), (COMMIT_THRESHOLD - PG, ALLOW), (COMMIT_THRESHOLD, TRACE),
    (16 * MiB, TRACE), (1 << 32, TRACE), ((1 << 32) | PG, TRACE),
])
def test_filter_munmap_by_length(prog, length, verdict):
    assert run_bpf(prog, NR["munmap"], (0x10000, length)) == verdict


@pytest.mark.parametrize("old, new, verdict", [
    (PG, 2 * PG, ALLOW), (COMMIT_THRESHOLD - PG, PG, ALLOW),
    (PG, COMMIT_THRESHOLD, TRACE), (COMMIT_THRESHOLD, PG, TRACE), (4 * MiB, 8 * MiB, TRACE),
    (PG, 1 << 32, TRACE), ((1 << 32) | PG, PG, TRACE), (0, PG, ALLOW),
])
def test_filter_mremap_by_lengths(prog, old, new, verdict):
    assert run_bpf(prog, NR["mremap"], (0x10000, old, new, 1, 0)) == verdict


def test_filter_untouched_native_calls_still_allowed(prog):
    assert "munmap" not in sc.NATIVE and "mremap" not in sc.NATIVE
    for name in sc.NATIVE:
        for args in ((0,) * 6, ((1 << 64) - 1,) * 6, (0x12345678, 1 << 40, 7, 0, 0, 0)):
            assert run_bpf(prog, NR[name], args) == ALLOW, name


def test_filter_other_calls(prog):
    assert run_bpf(prog, NR["getpid"], ()) == TRACE
    assert run_bpf(prog, NR["openat"], (0, 0, 0)) == TRACE
    assert run_bpf(prog, NR["getpid"], (), arch=0x40000003) == ENOSYS       # i386
    assert run_bpf(prog, NR["getpid"] | sc.X32_BIT, ()) == ENOSYS
    assert run_bpf(prog, NR["madvise"], (0, PG, 4)) == ALLOW                 # DONTNEED
    assert run_bpf(prog, NR["madvise"], (0, PG, 100)) == TRACE               # HWPOISON
    assert run_bpf(prog, NR["futex"], (0, 0x80)) == ALLOW                    # WAIT|PRIVATE
    assert run_bpf(prog, NR["futex"], (0, 6)) == TRACE                       # LOCK_PI
    assert run_bpf(prog, NR["arch_prctl"], (0x1002, 0)) == ALLOW
    assert run_bpf(prog, NR["arch_prctl"], (0x1011, 0)) == TRACE
    assert run_bpf(prog, NR["sched_getparam"], (0, 0)) == ALLOW
    assert run_bpf(prog, NR["sched_getparam"], (5, 0)) == TRACE
    assert run_bpf(prog, NR["sched_getaffinity"], (0, 128, 0)) == TRACE     # guest's ncpus


def test_trapped_memory_calls_have_handlers():
    t = Table()
    for name in ("mmap", "munmap", "mremap", "brk"):
        assert t.entries[NR[name]] is not None, name


# ---------------------------------------------------------------- handlers
class FakeKernel:
    def __init__(self, mem: int = 64 * MiB) -> None:
        self.mem_bytes = mem
        self.committed = 0


class FakeRegs:
    def __init__(self) -> None:
        self.r = [0] * 32
        self.dirty = False


class FakeProcess:
    rlimits: dict = {}


class FakeTask:
    def __init__(self, kernel: FakeKernel, mm: MM) -> None:
        self.kernel, self.mm = kernel, mm
        self.regs = FakeRegs()
        self.process = FakeProcess()
        self.after_native = None


@pytest.fixture
def mm():
    x = MM(os.getpid())
    yield x
    x.close()


@pytest.fixture
def t(mm):
    return FakeTask(FakeKernel(), mm)


def native(t, res):
    """Finish a call the handler let run on the host, as the syscall-exit stop does."""
    fn, t.after_native = t.after_native, None
    return fn(t, res) if fn is not None else res


def mmap(t, addr, length, prot=RW, flags=PRIV | ANON, res=None):
    out = m.sys_mmap(t, addr, length, prot, flags, (1 << 64) - 1, 0)
    assert out is NATIVE
    return native(t, addr if res is None else res)


def test_mmap_large_anonymous_is_charged_and_limited(t):
    k = t.kernel
    assert mmap(t, 0x30000000, 8 * MiB, res=-errno.ENOMEM) == -errno.ENOMEM  # host refused
    assert k.committed == 0 and not len(t.mm.commit)
    assert mmap(t, 0x10000000, 16 * MiB) == 0x10000000
    assert k.committed == 16 * MiB and list(t.mm.commit) == [(0x10000000, 0x11000000)]
    with pytest.raises(Errno) as e:
        m.sys_mmap(t, 0, 49 * MiB, RW, PRIV | ANON, -1, 0)
    assert e.value.errno == errno.ENOMEM and t.after_native is None
    mmap(t, 0x20000000, 48 * MiB)                                      # exactly mem=
    assert k.committed == 64 * MiB
    with pytest.raises(Errno):
        m.sys_mmap(t, 0, COMMIT_THRESHOLD, RW, PRIV | ANON, -1, 0)


@pytest.mark.parametrize("prot, flags", [
    (0, PRIV | ANON), (RW, PRIV | ANON | m.MAP_NORESERVE), (RW, PRIV | ANON | m.MAP_STACK),
    (m.PROT_READ, PRIV | ANON), (0, m.MAP_SHARED | ANON),
])
def test_mmap_reservations_are_not_charged(t, prot, flags):
    assert m.sys_mmap(t, 0, 256 * MiB, prot, flags, -1, 0) is NATIVE
    assert t.after_native is None and t.kernel.committed == 0          # no exit stop either


def test_mmap_shared_anonymous_is_charged(t):
    with pytest.raises(Errno):
        m.sys_mmap(t, 0, 256 * MiB, m.PROT_READ, m.MAP_SHARED | ANON, -1, 0)
    mmap(t, 0x10000000, 4 * MiB, flags=m.MAP_SHARED | ANON)
    assert t.kernel.committed == 4 * MiB


def test_mmap_fixed_replaces_records(t):
    mmap(t, 0x10000000, 32 * MiB)
    # a reservation over the middle uncharges what it replaced
    mmap(t, 0x10400000, 8 * MiB, prot=0, flags=PRIV | ANON | m.MAP_FIXED)
    assert t.kernel.committed == 24 * MiB
    # the limit check counts what a MAP_FIXED mapping frees
    t.kernel.mem_bytes = 40 * MiB
    mmap(t, 0x10000000, 32 * MiB, flags=PRIV | ANON | m.MAP_FIXED)
    assert t.kernel.committed == 32 * MiB
    # MAP_FIXED_NOREPLACE does not replace
    flags = PRIV | ANON | m.MAP_FIXED | m.MAP_FIXED_NOREPLACE
    with pytest.raises(Errno):
        m.sys_mmap(t, 0x10000000, 16 * MiB, RW, flags, -1, 0)


def test_mmap_invalid_arguments_left_to_the_host(t):
    t.kernel.mem_bytes = MiB
    for args in ((0, 0, RW, PRIV | ANON, -1, 0), (0, 256 * MiB, RW, ANON, -1, 0),
                 (0, 256 * MiB, RW, PRIV | ANON, -1, 1),
                 (0x1001, 256 * MiB, RW, PRIV | ANON | m.MAP_FIXED, -1, 0)):
        assert m.sys_mmap(t, *args) is NATIVE and t.after_native is None


def test_munmap_partial(t):
    k = t.kernel
    assert m.sys_munmap(t, 0x10000000, 4 * MiB) is NATIVE and t.after_native is None
    mmap(t, 0x10000000, 32 * MiB)
    assert m.sys_munmap(t, 0x10800000, 8 * MiB) is NATIVE and t.after_native is None
    assert k.committed == 24 * MiB
    assert m.sys_munmap(t, 0x10000001, 32 * MiB) is NATIVE      # the host's EINVAL
    assert m.sys_munmap(t, 0x10000000, 1 << 63) is NATIVE       # EINVAL too
    assert k.committed == 24 * MiB
    assert m.sys_munmap(t, 0x20000000, 8 * MiB) is NATIVE and k.committed == 24 * MiB
    assert m.sys_munmap(t, 0x0F000000, 64 * MiB) is NATIVE
    assert k.committed == 0 and not len(t.mm.commit) and t.after_native is None


def mremap(t, old, olen, nlen, flags=0, new=0, res=None):
    out = m.sys_mremap(t, old, olen, nlen, flags, new)
    assert out is NATIVE
    return native(t, old if res is None else res)


def test_mremap_in_place_and_moves(t):
    k = t.kernel
    mmap(t, 0x10000000, 24 * MiB)
    with pytest.raises(Errno) as e:
        m.sys_mremap(t, 0x10000000, 24 * MiB, 200 * MiB, m.MREMAP_MAYMOVE, 0)
    assert e.value.errno == errno.ENOMEM
    mremap(t, 0x10000000, 24 * MiB, 4 * MiB)                           # shrink in place
    assert k.committed == 4 * MiB
    mremap(t, 0x10000000, 4 * MiB, 16 * MiB, m.MREMAP_MAYMOVE)         # grow in place
    assert k.committed == 16 * MiB and list(t.mm.commit) == [(0x10000000, 0x11000000)]
    mremap(t, 0x10000000, 16 * MiB, 20 * MiB, m.MREMAP_MAYMOVE, res=0x40000000)   # moved
    assert k.committed == 20 * MiB and list(t.mm.commit) == [(0x40000000, 0x41400000)]
    mremap(t, 0x40000000, 20 * MiB, 2 * MiB, m.MREMAP_MAYMOVE | m.MREMAP_FIXED,
           new=0x50000000, res=0x50000000)
    assert k.committed == 2 * MiB and list(t.mm.commit) == [(0x50000000, 0x50200000)]
    # a failed mremap changes nothing
    assert mremap(t, 0x50000000, 2 * MiB, 8 * MiB, res=-errno.ENOMEM) == -errno.ENOMEM
    assert k.committed == 2 * MiB


def test_mremap_sources_without_records(t):
    k = t.kernel
    # a small native mapping grown past the threshold is taken as charged
    mremap(t, 0x10000000, 256 * 1024, 8 * MiB, m.MREMAP_MAYMOVE, res=0x20000000)
    assert k.committed == 8 * MiB - 256 * 1024
    # a large mapping without a record (a reservation) stays uncharged
    assert m.sys_mremap(t, 0x30000000, 64 * MiB, 128 * MiB, m.MREMAP_MAYMOVE, 0) is NATIVE
    assert t.after_native is None


def test_mremap_dontunmap_charges_the_copy(t):
    k = t.kernel
    mmap(t, 0x10000000, 8 * MiB)
    mremap(t, 0x10000000, 8 * MiB, 8 * MiB, m.MREMAP_MAYMOVE | m.MREMAP_DONTUNMAP,
           res=0x20000000)
    assert k.committed == 16 * MiB
    assert list(t.mm.commit) == [(0x10000000, 0x10800000), (0x20000000, 0x20800000)]


def brk(t, addr, ok=True):
    out = m.sys_brk(t, addr)
    if out is not NATIVE:
        return out
    old_end = m.page_up(t.mm.brk)
    grow = t.regs.r[m.pt.ORIG_RAX] == m.NR_MMAP
    return native(t, (old_end if grow else 0) if ok else -errno.ENOMEM)


def test_brk_growth_is_charged_and_limited(t):
    k, mm = t.kernel, t.mm
    mm.brk_start = mm.brk = 0x600000
    assert brk(t, 0x600000 + 8 * MiB) == 0x600000 + 8 * MiB
    assert k.committed == 8 * MiB
    assert brk(t, 0x600000 + 80 * MiB) == 0x600000 + 8 * MiB          # past mem=: old break
    assert k.committed == 8 * MiB
    assert brk(t, 0x600000 + 4 * MiB) == 0x600000 + 4 * MiB
    assert k.committed == 4 * MiB
    assert brk(t, 0x600000 + 6 * MiB, ok=False) == 0x600000 + 4 * MiB  # the host refused
    assert k.committed == 4 * MiB


def test_fork_copies_count_again_and_release_never_goes_negative(mm):
    k = FakeKernel()
    mm.charge(k, 0x10000000, 0x10000000 + 16 * MiB)
    child = MM(os.getpid())
    try:
        child.inherit_commit(k, mm)
        assert k.committed == 32 * MiB
        child.uncharge(k, 0x10000000, 0x10000000 + 8 * MiB)
        assert k.committed == 24 * MiB and mm.commit.total == 16 * MiB
        child.release_commit(k)
        assert k.committed == 16 * MiB
        child.release_commit(k)
        assert k.committed == 16 * MiB
        k.committed = 0                       # even if the counter were reset under us
        mm.release_commit(k)
        assert k.committed == 0
    finally:
        child.close()
