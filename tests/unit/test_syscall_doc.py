"""docs/syscalls.md is what `usermode --syscalls --markdown` prints: the table it is made
from and the document the README points at must not drift apart."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

from usermode.cli import cmd_syscalls

DOC = Path(__file__).resolve().parents[2] / "docs" / "syscalls.md"


def test_syscall_doc_is_current() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cmd_syscalls(["--markdown"]) == 0
    assert out.getvalue() in DOC.read_text(), \
        "docs/syscalls.md is stale: usermode --syscalls --markdown > docs/syscalls.md"
