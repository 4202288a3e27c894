"""Escape attempts (tests/syscalls/escape.c), run only under usermode: every
attempt must report "refused" or "confined", none "ESCAPED"."""

import os
import re

import pytest

from conftest import LINKS, _tail, assert_no_traceback, run, usermode_argv

# one line per attempt in escape.c
ATTEMPTS = [
    "host fds 3..63",
    "int $0x80 getpid",
    "int $0x80 kill(host pid)",
    "x32 getpid",
    "x32 kill(host pid)",
    "io_uring_setup",
    "ptrace(PTRACE_ATTACH, getppid())",
    "ptrace seize guest parent",
    "ptrace seize the kernel",
    "ptrace seize a host pid",
    "kill the kernel",
    "kill a host pid",
    "tgkill a host pid",
    "process_vm_readv kernel",
    "process_vm_writev kernel",
    "process_vm_readv pid 1",
    "/proc/<kernel>/mem",
    "/proc/<kernel>/cmdline",
    "clone(CLONE_UNTRACED)",
    "rewrite the stub's code",
]


def tracer_of(pid) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0


@pytest.fixture(scope="module")
def escape_runs(build, tmp_path_factory):
    """Run escape.c once per link mode; the attempts are checked one by one."""
    results = {}
    for link in LINKS:
        exe = build("escape", link)
        d = tmp_path_factory.mktemp(f"escape-{link}")
        # `exec` keeps the shell's pid, so $$ is the usermode kernel's host pid
        # and $PPID this pytest process.
        argv = ["/bin/sh", "-c", 'exec "$@" "$$" "$PPID"', "sh",
                *usermode_argv("run", "--root", "/", "--cwd", d, "--", exe, d)]
        results[link] = run(argv, cwd=d)
    return results


@pytest.mark.parametrize("link", LINKS)
def test_escape_program_ran(escape_runs, link):
    res = escape_runs[link]
    assert_no_traceback(res)
    assert res.returncode == 0 and res.stdout.endswith(b"done\n"), (
        f"escape ({link}) exit {res.describe_rc()}\nstdout:\n{_tail(res.stdout, 30)}\n"
        f"stderr:\n{_tail(res.stderr, 20)}")
    assert tracer_of(os.getpid()) == 0, "pytest is being traced after the escape run"


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_escape_refused(escape_runs, attempt, link):
    res = escape_runs[link]
    assert_no_traceback(res)
    lines = res.stdout.decode(errors="replace").splitlines()
    found = [line for line in lines if line.startswith(attempt + ": ")]
    assert found, (f"no report for {attempt!r} (exit {res.describe_rc()})\n"
                   f"stdout:\n{_tail(res.stdout, 30)}\nstderr:\n{_tail(res.stderr, 20)}")
    verdict = found[0][len(attempt) + 2:]
    assert re.match(r"(refused|confined) \(", verdict), f"{attempt}: {verdict}"


UNSEALED = ("import sys, usermode.kernel.elf as elf; elf.NR_MSEAL = 39; "   # getpid, not mseal
            "from usermode.cli import main; sys.argv[0] = 'usermode'; sys.exit(main())")


def test_rewritten_stub_is_caught_without_mseal(build, tmp_path):
    """Where the host has no mseal (before 6.10) the guest can rewrite the stub's page;
    the kernel then refuses to let the rewritten call run and kills the task."""
    exe = build("escape", "static")
    python = usermode_argv()[0].replace("/usermode", "/python")
    argv = ["/bin/sh", "-c", 'exec "$@" "$$" "$PPID"', "sh", python, "-c", UNSEALED,
            "run", "--root", "/", "--cwd", tmp_path, "--", exe, tmp_path]
    res = run(argv, cwd=tmp_path)
    assert_no_traceback(res)
    lines = res.stdout.decode(errors="replace").splitlines()
    found = [line for line in lines if line.startswith("rewrite the stub's code: ")]
    assert found == ["rewrite the stub's code: refused (killed by signal 9)"], lines
