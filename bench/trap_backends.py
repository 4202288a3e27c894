"""Measure the trap mechanisms a Python kernel could use, on this host, for one trapped
getppid: PTRACE_SYSEMU (every syscall stops) and seccomp RET_TRACE (only filtered ones
stop; usermode's choice). Each tracer is a minimal Python loop, so the figures are the
floor for a Python kernel on that mechanism.

    .venv/bin/python bench/trap_backends.py
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from usermode.host import ptrace as pt  # noqa: E402
from usermode.host import seccomp  # noqa: E402

N = 20000
PROG = r"""
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int main(void) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < %d; i++) syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / %d);
    return 0;
}
""" % (N, N)
PTRACE_SYSEMU = 31


def build() -> str:
    d = tempfile.mkdtemp()
    src, exe = os.path.join(d, "p.c"), os.path.join(d, "p")
    with open(src, "w") as f:
        f.write(PROG)
    subprocess.run(["gcc", "-O2", "-static", "-o", exe, src], check=True)
    return exe


def run(exe: str, mode: str) -> str:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        pt.traceme()
        os.kill(os.getpid(), signal.SIGSTOP)
        if mode == "seccomp":
            seccomp.install(seccomp.build_filter())
        os.execv(exe, [exe])
    os.close(w)
    os.waitpid(pid, 0)
    opts = pt.O_TRACESYSGOOD | pt.O_EXITKILL | (pt.O_TRACESECCOMP if mode == "seccomp" else 0)
    pt._call(pt.SETOPTIONS, pid, None, opts)
    regs = pt.Regs()
    getppid = os.getpid()
    resume = (lambda: pt._call(PTRACE_SYSEMU, pid, None, 0)) if mode == "sysemu" else \
        (lambda: pt.cont(pid))
    resume()
    while True:
        _, status = os.waitpid(pid, pt.WALL)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            break
        sig = (status >> 8) & 0xFF
        event = status >> 16
        is_call = (mode == "sysemu" and sig == signal.SIGTRAP | 0x80) or \
                  (mode == "seccomp" and event == pt.EVENT_SECCOMP)
        if is_call:
            pt.getregs(pid, regs)
            if regs[pt.ORIG_RAX] == 110:               # getppid: emulate it
                regs[pt.RAX] = getppid
                regs[pt.ORIG_RAX] = (1 << 64) - 1
                pt.setregs(pid, regs)
            elif mode == "sysemu":                     # anything else: run it for real
                regs[pt.RIP] -= 2
                regs[pt.RAX] = regs[pt.ORIG_RAX]
                pt.setregs(pid, regs)
                pt.syscall(pid)
                os.waitpid(pid, pt.WALL)              # entry stop of the re-issued call
                pt.syscall(pid)
                os.waitpid(pid, pt.WALL)              # its exit stop
            resume()
        elif os.WIFSTOPPED(status) and sig not in (signal.SIGTRAP, signal.SIGTRAP | 0x80):
            pt.cont(pid, sig) if mode == "seccomp" else pt._call(PTRACE_SYSEMU, pid, None, sig)
        else:
            resume()
    out = os.read(r, 100).decode().strip()
    os.close(r)
    return out


def main() -> int:
    exe = build()
    native = subprocess.run([exe], capture_output=True, text=True).stdout.strip()
    print(f"getppid native                    {native} us")
    for mode in ("sysemu", "seccomp", "sysemu", "seccomp"):
        print(f"getppid, Python tracer, {mode:8s}  {run(exe, mode)} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
