"""The stub: a tiny static ELF every guest process is built in (UML's skas stub).

On exec, a guest process really execve()s this file on the host, which gives it a fresh
address space, ends its other threads and releases a vfork parent; our kernel then loads the
guest's program into it. The stub's code is `syscall; int3`, which the kernel uses to
inject one system call into a stopped task, and a loop that runs a table of calls in a row
(stub_batch.S) so that exec's dozen mmaps cost one stop instead of one each.
"""
from __future__ import annotations

import os
import struct
import tempfile

STUB_BASE = 0x3FF000000000
STUB_SYSCALL = STUB_BASE + 0x1000      # address of the `syscall` instruction
STUB_AFTER_SYSCALL = STUB_SYSCALL + 2  # rip once the syscall has been executed
STUB_BATCH = STUB_SYSCALL + 16        # the batch loop: r12 = its table (stub_batch.S)
STUB_DATA = STUB_SYSCALL + 0x1000     # a private page exec maps and seals: batch tables
# stub_batch.S assembled (`as`; tests/unit/test_stub.py checks these bytes against it)
BATCH_CODE = bytes.fromhex(
    "4d89e5498b45004883f8ff7448498b7d08498b7510498b55184d8b55204d8b45284d8b4d30"
    "410fb64d3885c9740948c1e10649037c0cc0410fb64d3985c9740948c1e1064d03440cc0"
    "0f05498945004983c540ebaecc")
STUB_BATCH_DONE = STUB_BATCH + len(BATCH_CODE)   # rip after the loop's closing int3
BATCH_ENTRY = 64                       # bytes per table entry: nr, a1..a6, ref1, ref5
CODE = b"\x0f\x05\xcc" + b"\xcc" * 13 + BATCH_CODE


def stub_image() -> bytes:
    ehdr_size, phdr_size = 64, 56
    code_off = 0x1000
    ehdr = struct.pack(
        "<4sBBBBB7xHHIQQQIHHHHHH",
        b"\x7fELF", 2, 1, 1, 0, 0,          # 64-bit, little endian, SysV
        2, 0x3E, 1,                          # ET_EXEC, x86-64, version
        STUB_SYSCALL, ehdr_size, 0,          # entry, phoff, shoff
        0, ehdr_size, phdr_size, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, code_off, STUB_SYSCALL, STUB_SYSCALL,
                       len(CODE), len(CODE), 0x1000)   # PT_LOAD, R+X
    head = ehdr + phdr
    return head + b"\0" * (code_off - len(head)) + CODE


def write_stub() -> str:
    """Write the stub to a private directory and return its host path."""
    d = tempfile.mkdtemp(prefix="usermode-")
    path = os.path.join(d, "stub")
    with open(path, "wb") as f:
        f.write(stub_image())
    os.chmod(path, 0o500)
    os.chmod(d, 0o700)
    return path
