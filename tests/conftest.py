"""Shared harness for the differential syscall tests (see tests/README.md).

The guest programs in tests/syscalls/*.c are compiled at test time, twice
(``gcc -O1 -static`` and ``gcc -O1``, glibc-dynamic), then each binary is run
natively and under ``usermode run --root / -- BINARY ARGS``; stdout and the exit
status must be identical.
"""

from __future__ import annotations

import difflib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SYSCALLS = REPO / "tests" / "syscalls"
USERMODE = Path(os.environ.get("USERMODE", REPO / ".venv" / "bin" / "usermode"))

# The environment `usermode run` gives init by default; native runs get the
# same one so that the two sides start alike.
GUEST_ENV = {
    "HOME": "/",
    "TERM": "linux",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
}

RUN_TIMEOUT = 120  # seconds, per run (native or guest)
LINKS = ("static", "dynamic")


@dataclass
class Result:
    argv: list[str]
    returncode: int | None  # None: timed out (and killed)
    stdout: bytes
    stderr: bytes

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def describe_rc(self) -> str:
        return "timed out" if self.timed_out else str(self.returncode)


def run(argv, *, cwd=None, env=None, timeout=RUN_TIMEOUT) -> Result:
    """Run argv with stdin from /dev/null, capturing stdout and stderr.

    The child gets its own session so that on timeout the whole process group
    (a guest kernel and what it started) can be killed.
    """
    argv = [str(a) for a in argv]
    p = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=timeout)
        return Result(argv, p.returncode, out, err)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        return Result(argv, None, out, err)


def usermode_argv(*args) -> list[str]:
    if not USERMODE.exists():
        pytest.fail(f"{USERMODE} does not exist: run scripts/setup.sh first")
    return [str(USERMODE), *map(str, args)]


def run_native(exe: Path, args, cwd: Path) -> Result:
    return run([exe, *args], cwd=cwd, env=dict(GUEST_ENV))


def run_guest(exe: Path, args, cwd: Path, *, extra=()) -> Result:
    """Run exe as init under usermode with the host root as its root."""
    argv = usermode_argv("run", "--root", "/", "--cwd", cwd, *extra, "--", exe, *args)
    return run(argv, cwd=cwd, env=_host_env())


def _host_env() -> dict[str, str]:
    # usermode itself runs with a normal host environment; the guest's is
    # usermode's default (GUEST_ENV).
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _tail(data: bytes, n: int) -> str:
    lines = data.decode(errors="replace").splitlines()
    if len(lines) > n:
        lines = [f"... ({len(lines) - n} lines before)"] + lines[-n:]
    return "\n".join(lines)


def diff_text(expected: bytes, actual: bytes, max_lines: int = 80) -> str:
    a = expected.decode(errors="replace").splitlines(keepends=True)
    b = actual.decode(errors="replace").splitlines(keepends=True)
    d = list(difflib.unified_diff(a, b, "native", "usermode", n=2))
    if len(d) > max_lines:
        d = d[:max_lines] + [f"... ({len(d) - max_lines} more diff lines)\n"]
    return "".join(line if line.endswith("\n") else line + "\n" for line in d)


def assert_no_traceback(res: Result) -> None:
    for stream in (res.stderr, res.stdout):
        if b"Traceback (most recent call last)" in stream:
            pytest.fail(
                "usermode printed a Python traceback:\n" + _tail(res.stderr, 40),
                pytrace=False,
            )


def assert_same(native: Result, guest: Result) -> None:
    """The differential check: same stdout bytes, same exit status."""
    assert_no_traceback(guest)
    if native.stdout == guest.stdout and native.returncode == guest.returncode:
        return
    msg = [
        f"native exit {native.describe_rc()}, usermode exit {guest.describe_rc()}",
        "command: " + " ".join(guest.argv),
    ]
    if native.stdout != guest.stdout:
        msg.append("stdout differs:\n" + diff_text(native.stdout, guest.stdout))
    else:
        msg.append("stdout identical")
    if guest.stderr:
        msg.append("usermode stderr (tail):\n" + _tail(guest.stderr, 25))
    pytest.fail("\n".join(msg), pytrace=False)


def assert_native_ok(native: Result) -> None:
    """The native side is the reference: if it fails, the suite is broken."""
    if native.returncode != 0 or not native.stdout.endswith(b"done\n"):
        pytest.fail(
            f"native run failed (a bug in the test program or the host), exit "
            f"{native.describe_rc()}\n{_tail(native.stdout, 20)}\n{_tail(native.stderr, 20)}",
            pytrace=False,
        )


class Builder:
    """Compiles tests/syscalls/NAME.c on first use, into BUILD/LINK/NAME."""

    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[tuple[str, str], Path] = {}

    def __call__(self, name: str, link: str) -> Path:
        key = (name, link)
        if key in self.cache:
            return self.cache[key]
        gcc = shutil.which("gcc")
        if gcc is None:
            pytest.fail("gcc not found: run scripts/setup.sh", pytrace=False)
        src = SYSCALLS / f"{name}.c"
        outdir = self.root / link
        outdir.mkdir(parents=True, exist_ok=True)
        exe = outdir / name
        cmd = [gcc, "-O1", "-Wall", "-pthread"]
        if link == "static":
            cmd.append("-static")
        cmd += ["-o", str(exe), str(src)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            pytest.fail(f"compile failed: {' '.join(cmd)}\n{p.stderr}", pytrace=False)
        self.cache[key] = exe
        return exe


@pytest.fixture(scope="session")
def build(tmp_path_factory) -> Builder:
    """build(name, link) -> path of the compiled guest program."""
    return Builder(tmp_path_factory.mktemp("guestbin"))


def programs() -> list[str]:
    """All differential programs (escape.c runs only under usermode)."""
    return sorted(p.stem for p in SYSCALLS.glob("*.c") if p.stem != "escape")
