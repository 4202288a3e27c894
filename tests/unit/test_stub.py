"""The stub's batch loop: the bytes in stub.py are what stub_batch.S assembles to."""
from __future__ import annotations

import subprocess
from pathlib import Path

from usermode.host.stub import BATCH_CODE, CODE, STUB_BATCH, STUB_BATCH_DONE, STUB_SYSCALL

SOURCE = Path(__file__).resolve().parents[2] / "usermode" / "host" / "stub_batch.S"


def test_batch_code_is_the_assembled_source(tmp_path) -> None:
    obj, raw = tmp_path / "b.o", tmp_path / "b.bin"
    subprocess.run(["as", "-o", obj, SOURCE], check=True)           # binutils, with gcc
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", obj, raw], check=True)
    assert raw.read_bytes() == BATCH_CODE
    assert CODE[STUB_BATCH - STUB_SYSCALL:] == BATCH_CODE
    assert CODE[STUB_BATCH_DONE - STUB_SYSCALL - 1] == 0xCC     # ends in int3
