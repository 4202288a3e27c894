"""Bad switches and missing pieces: one clear line and a non-zero exit, never a traceback."""
from __future__ import annotations

import subprocess

import pytest

from tests.integration.console import USERMODE

CASES = [
    (["rootflags=/nonexistent/dir"], "root directory"),
    (["con0=bogus:1"], "unknown channel type"),
    (["con0=port:0"], "port channel needs a port number"),
    (["mem=12Q"], "mem=12Q"),
    (["mem=0"], "mem=0"),
    (["init=/does/not/exist"], "cannot run init /does/not/exist"),
    (["--no-such-option"], "unknown option"),
    (["run", "--", "/nonexistent"], "cannot run init /nonexistent"),
    (["run", "--root", "/nonexistent", "--", "/bin/true"], "root directory"),
    (["run"], "no program given"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    p = subprocess.run([USERMODE, *args, "quiet"] if args[0] != "run" else [USERMODE, *args],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert message in lines[0]
