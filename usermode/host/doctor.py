"""Preflight: what this host lacks, in plain words (`usermode doctor`)."""
from __future__ import annotations

import os
import platform
import shutil
import signal

from usermode.host import ptrace as pt


def _kernel_ok() -> tuple[bool, str]:
    rel = platform.release()
    try:
        major, minor = (int(x) for x in rel.split(".")[:2])
    except ValueError:
        return False, rel
    return (major, minor) >= (5, 3), rel


def _seize_ok() -> tuple[bool, str]:
    """Fork a child, PTRACE_SEIZE it, and see it stop under PTRACE_INTERRUPT."""
    pid = os.fork()
    if pid == 0:
        try:
            signal.pause()
        finally:
            os._exit(0)
    try:
        pt.seize(pid, 0)
        pt.interrupt(pid)
        _, status = os.waitpid(pid, pt.WALL)
        ok = os.WIFSTOPPED(status)
        return ok, "" if ok else "the traced child did not stop"
    except OSError as e:
        return False, f"ptrace refused ({e.strerror}); check /proc/sys/kernel/yama/ptrace_scope, " \
                      "container seccomp profiles (docker: --cap-add SYS_PTRACE)"
    finally:
        os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def check() -> list[tuple[bool, str, str]]:
    out: list[tuple[bool, str, str]] = []
    out.append((platform.machine() == "x86_64", f"x86-64 host ({platform.machine()})",
                "usermode runs x86-64 guests on x86-64 hosts only"))
    ok, rel = _kernel_ok()
    out.append((ok, f"host kernel {rel}", "Linux 5.3 or newer is needed (PTRACE_GET_SYSCALL_INFO era)"))
    try:
        with open("/proc/self/status") as f:
            has_seccomp = any(line.startswith("Seccomp:") for line in f)
    except OSError:
        has_seccomp = False
    out.append((has_seccomp, "seccomp filters", "the host kernel lacks CONFIG_SECCOMP_FILTER"))
    ok, why = _seize_ok()
    out.append((ok, "ptrace (PTRACE_SEIZE, PTRACE_INTERRUPT)", why))
    scope = "/proc/sys/kernel/yama/ptrace_scope"
    if os.path.exists(scope):
        with open(scope) as f:
            v = f.read().strip()
        out.append((v in ("0", "1"), f"Yama ptrace_scope={v}", "set it to 1 or 0 (3 forbids ptrace)"))
    out.append((os.access("/proc/self/mem", os.W_OK), "/proc/<pid>/mem writable",
                "procfs must be mounted read-write"))
    bb = shutil.which("busybox") or ""
    out.append((bool(bb), "busybox (for the default guest)", "apt-get install busybox-static"))
    return out
