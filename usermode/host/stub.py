"""The stub: a tiny static ELF every guest process is built in (UML's skas stub).

On exec, a guest process really execve()s this file on the host, which gives it a fresh
address space, ends its other threads and releases a vfork parent; our kernel then loads the
guest's program into it. The stub's only code is `syscall; int3`, which the kernel uses to
inject system calls into a stopped task.
"""
from __future__ import annotations

import os
import struct
import tempfile

STUB_BASE = 0x3FF000000000
STUB_SYSCALL = STUB_BASE + 0x1000      # address of the `syscall` instruction
STUB_AFTER_SYSCALL = STUB_SYSCALL + 2  # rip once the syscall has been executed
CODE = b"\x0f\x05\xcc" + b"\xcc" * 13


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
