"""Smoke tests of the `usermode` command line."""

import re
import shutil
import subprocess
import tomllib

import pytest

from conftest import GUEST_ENV, REPO, assert_no_traceback, run, usermode_argv


def error_lines(stderr: bytes) -> list[str]:
    """stderr lines that are not an argparse-style usage block."""
    out = []
    for line in stderr.decode(errors="replace").splitlines():
        if not line.strip() or line.startswith("usage:") or line.startswith(" "):
            continue
        out.append(line)
    return out


def test_version():
    res = run(usermode_argv("--version"), timeout=60)
    assert_no_traceback(res)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    text = (res.stdout + res.stderr).decode()
    assert re.search(r"\d+\.\d+", text), text
    assert version in text, f"--version printed {text!r}, pyproject says {version}"


def test_run_missing_program_is_a_one_line_error():
    res = run(usermode_argv("run", "--", "/nonexistent"), timeout=60)
    assert_no_traceback(res)
    assert res.returncode != 0
    lines = [l for l in res.stderr.decode(errors="replace").splitlines() if l.strip()]
    assert len(lines) == 1, f"expected a one-line error, got:\n{res.stderr.decode()}"
    assert "nonexistent" in lines[0] or "No such file" in lines[0], lines[0]


@pytest.mark.parametrize("argv", [
    ["run", "--no-such-switch", "--", "/bin/true"],
    ["--no-such-switch"],
])
def test_bad_switch_is_a_one_line_error(argv):
    res = run(usermode_argv(*argv), timeout=60)
    assert_no_traceback(res)
    assert res.returncode != 0
    lines = error_lines(res.stderr)
    assert len(lines) == 1, f"expected a one-line error, got:\n{res.stderr.decode()}"
    assert "no-such-switch" in lines[0], lines[0]


@pytest.mark.parametrize("cmd,status", [
    (["/bin/true"], 0),
    (["/bin/false"], 1),
    (["/bin/sh", "-c", "exit 7"], 7),
])
def test_exit_status_propagated(cmd, status):
    res = run(usermode_argv("run", "--root", "/", "--", *cmd))
    assert_no_traceback(res)
    assert res.returncode == status, res.stderr.decode(errors="replace")


def test_killed_init_exits_128_plus_signal(build, tmp_path):
    src = tmp_path / "crash.c"
    src.write_text("int main(void) { *(volatile int *)0 = 1; return 0; }\n")
    exe = tmp_path / "crash"
    subprocess.run([shutil.which("gcc") or "gcc", "-O0", "-static", "-o", exe, src], check=True)
    res = run(usermode_argv("run", "--root", "/", "--", exe))
    assert_no_traceback(res)
    assert res.returncode == 128 + 11, res.stderr.decode(errors="replace")


def test_stdout_env_and_cwd(tmp_path):
    res = run(usermode_argv("run", "--root", "/", "--", "/bin/echo", "hello", "world"))
    assert_no_traceback(res)
    assert res.stdout == b"hello world\n", res.stderr.decode(errors="replace")

    res = run(usermode_argv("run", "--root", "/", "--", "/usr/bin/env"))
    assert_no_traceback(res)
    got = dict(l.split("=", 1) for l in res.stdout.decode().splitlines() if "=" in l)
    assert got == GUEST_ENV, res.stdout.decode()

    res = run(usermode_argv("run", "--root", "/", "--cwd", tmp_path, "--env", "FOO=bar",
                            "--", "/bin/sh", "-c", 'echo "$FOO"; pwd'))
    assert_no_traceback(res)
    assert res.stdout.decode() == f"bar\n{tmp_path}\n", res.stderr.decode(errors="replace")
