"""Harness for the Debian bookworm tests (issue 7): the cached debootstrap tree, a writable
scratch copy of it per test session, and one script run two ways, in usermode (the tree
as a hostfs root, /bin/bash as init) and natively (`chroot TREE /bin/bash`)."""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from usermode.tools import debian_image

REPO = Path(__file__).resolve().parents[2]
USERMODE = REPO / ".venv" / "bin" / "usermode"
ENV = {"HOME": "/root", "TERM": "linux", "LANG": "C.UTF-8",
       "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


@dataclass
class Ran:
    status: int | None          # None: timed out
    out: str
    err: str


@pytest.fixture(scope="session")
def debian_root(tmp_path_factory) -> Path:
    """A scratch copy of the cached tree (built when missing): tests may write to it."""
    tree = debian_image.ensure()
    root = tmp_path_factory.mktemp("debian") / "root"
    subprocess.run(["cp", "-a", "--reflink=auto", tree, root], check=True)
    return root


def _run(argv: list[str], timeout: float, stdin: str | None = None) -> Ran:
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True,
                         errors="replace", start_new_session=True)
    try:
        out, err = p.communicate(stdin, timeout=timeout)
        return Ran(p.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return Ran(None, out, err)


def guest(root: Path, script: str, mem: str = "512M", timeout: float = 300) -> Ran:
    """bash -c SCRIPT as init of a machine whose root is the tree."""
    argv = [str(USERMODE), "run", "--root", str(root), "--mem", mem, "--cwd", "/root"]
    argv += [f"--env={k}={v}" for k, v in ENV.items()]
    return _run(argv + ["--", "/bin/bash", "-c", script], timeout)


def native(root: Path, script: str, timeout: float = 300) -> Ran:
    """The same script natively: chroot into the tree (we are root), in a private mount
    namespace with /proc and the host's /dev mounted inside, as a booted system has them."""
    setup = (f"mount -t proc proc {root}/proc && mount --rbind /dev {root}/dev && "
             f'exec chroot {root} /bin/bash -c "cd /root && $0"')
    return _run(["unshare", "--mount", "--propagation", "private", "sh", "-c", setup, script],
                timeout)


def both(root: Path, script: str, timeout: float = 300) -> tuple[Ran, Ran]:
    """Run natively and in usermode; assert both succeeded; return (native, guest)."""
    n = native(root, script, timeout)
    assert n.status == 0, f"native run failed ({n.status}): {n.err[-2000:]}"
    g = guest(root, script, timeout=timeout)
    assert g.status == 0, f"guest run failed ({g.status}): {g.err[-2000:]}\n{g.out[-2000:]}"
    return n, g
