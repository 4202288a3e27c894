"""Side-by-side microbenchmarks: native, the real UML kernel, gVisor (runsc, ptrace
platform), PRoot and usermode.

    .venv/bin/python bench/run.py [--reps 3] [--scale 1] [--json out.json]

Each round runs the static bench/micro.c natively, in Debian's user-mode-linux (booting a
busybox hostfs root), in Debian's runsc and proot on the same tree, and under usermode,
interleaved so drift hits all alike; the table shows medians in microseconds per
operation and the ratio usermode/UML.
"""
from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from usermode.tools.busybox_root import build  # noqa: E402


def parse(out: str) -> dict[str, float]:
    res = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                res[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return res


def run_native(binary: str, scale: int, tmp: str) -> dict[str, float]:
    return parse(subprocess.run([binary, str(scale), tmp], capture_output=True, text=True,
                                timeout=600).stdout)


def run_usermode(root: str, scale: int) -> dict[str, float]:
    cmd = [os.path.join(ROOT, ".venv/bin/usermode"), "run", "--root", root, "--",
           "/micro", str(scale), "/tmp"]
    return parse(subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                                stdin=subprocess.DEVNULL).stdout)


def run_proot(root: str, scale: int) -> dict[str, float]:
    if shutil.which("proot") is None:
        return {}
    return parse(subprocess.run(["proot", "-w", "/", "-r", root, "/micro", str(scale), "/tmp"],
                                capture_output=True, text=True, timeout=1200,
                                stdin=subprocess.DEVNULL).stdout)


def run_gvisor(root: str, scale: int) -> dict[str, float]:
    """gVisor's runsc on its ptrace platform, the same tree as its root."""
    if shutil.which("runsc") is None:
        return {}
    with tempfile.TemporaryDirectory() as state:
        p = subprocess.run(["runsc", "--platform=ptrace", "--network=none", f"--root={state}",
                            "do", f"--root={root}", "--", "/micro", str(scale), "/tmp"],
                           capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL)
    return parse(p.stdout)


def run_uml(root: str, scale: int) -> dict[str, float]:
    linux = shutil.which("linux")
    if linux is None:
        return {}
    with open(os.path.join(root, "bench.sh"), "w") as f:
        f.write(f"#!/bin/sh\n/micro {scale} /tmp\n/bin/poweroff -f\n")
    os.chmod(os.path.join(root, "bench.sh"), 0o755)
    with tempfile.TemporaryDirectory() as umldir:
        p = subprocess.run([linux, "mem=64M", "root=/dev/root", "rootfstype=hostfs",
                            f"rootflags={root}", "rw", "init=/bench.sh", "con0=fd:0,fd:1",
                            "con=null", f"uml_dir={umldir}"], capture_output=True, text=True,
                           timeout=1200, stdin=subprocess.DEVNULL)
    return parse(p.stdout)


PROMPT = re.compile(rb"usermode:/[#$] ")
BOOT_SCRIPT = "#!/bin/sh\necho USERMODE-BOOTED\n/bin/poweroff -f\n"


def _seconds_until(fd: int, found, t0: float, timeout: float) -> float | None:
    """Read fd until found(output) holds: seconds since t0, or None on EOF or timeout."""
    buf = b""
    while not found(buf):
        r, _, _ = select.select([fd], [], [], max(0.0, t0 + timeout - time.monotonic()))
        if not r:
            return None
        try:
            data = os.read(fd, 65536)
        except OSError:
            return None
        if not data:
            return None
        buf += data
    return time.monotonic() - t0


def time_until(cmd: list[str], marker: bytes, timeout: float = 120.0) -> float | None:
    """Seconds from starting cmd until marker appears on its stdout (then it is killed)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    try:
        return _seconds_until(p.stdout.fileno(), lambda b: marker in b, t0, timeout)
    finally:
        p.kill()
        p.wait()


def tree_rss_kb(pid: int) -> int:
    """VmRSS summed over a process and all its descendants (the whole instance)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
                kids.setdefault(int(st[st.rfind(")") + 2:].split()[1]), []).append(int(d))
            except OSError:
                pass
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
        stack += kids.get(p, [])
    return total


def idle_rss(root: str) -> dict[str, float]:
    """Host memory of an idle instance (mem=64M, booted to a busybox shell), in KiB."""
    cmds = {"usermode": [os.path.join(ROOT, ".venv/bin/usermode"), f"rootflags={root}",
                         "mem=64M", "quiet"]}
    if shutil.which("linux"):
        cmds["uml"] = [shutil.which("linux"), "mem=64M", "root=/dev/root", "rootfstype=hostfs",
                       f"rootflags={root}", "rw", "con0=fd:0,fd:1", "con=null", "quiet",
                       f"uml_dir={tempfile.mkdtemp()}"]
    out = {}
    for who, cmd in cmds.items():
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(8)
        out[who] = float(tree_rss_kb(p.pid))
        os.killpg(p.pid, 9)
        p.wait()
    return out


def time_to_prompt(cmd: list[str], timeout: float = 120.0) -> float | None:
    """Seconds from start until a busybox shell prompt appears on a pty console."""
    master, slave = pty.openpty()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        return _seconds_until(master, lambda b: PROMPT.search(b) is not None, t0, timeout)
    finally:
        os.killpg(p.pid, 9)
        p.wait()
        os.close(master)


def prompt_times(root: str) -> dict[str, float]:
    """Boot to a shell prompt: the default busybox init and inittab of the same tree."""
    out: dict[str, float] = {}
    um = time_to_prompt([os.path.join(ROOT, ".venv/bin/usermode"), f"rootflags={root}",
                         "mem=64M", "quiet"])
    if um is not None:
        out["usermode"] = um * 1e6
    linux = shutil.which("linux")
    if linux:
        with tempfile.TemporaryDirectory() as umldir:
            uml = time_to_prompt([linux, "mem=64M", "root=/dev/root", "rootfstype=hostfs",
                                  f"rootflags={root}", "rw", "con0=fd:0,fd:1", "con=null",
                                  f"uml_dir={umldir}", "quiet"])
        if uml is not None:
            out["uml"] = uml * 1e6
    return out


def boot_times(root: str) -> dict[str, float]:
    """Boot to init: time until init's first output, for UML and usermode, same tree."""
    with open(os.path.join(root, "boot.sh"), "w") as f:
        f.write(BOOT_SCRIPT)
    os.chmod(os.path.join(root, "boot.sh"), 0o755)
    out: dict[str, float] = {}
    um = time_until([os.path.join(ROOT, ".venv/bin/usermode"), f"rootflags={root}",
                     "init=/boot.sh", "quiet"], b"USERMODE-BOOTED")
    if um is not None:
        out["usermode"] = um * 1e6
    linux = shutil.which("linux")
    if linux:
        with tempfile.TemporaryDirectory() as umldir:
            uml = time_until([linux, "mem=64M", "root=/dev/root", "rootfstype=hostfs",
                              f"rootflags={root}", "rw", "init=/boot.sh", "con0=fd:0,fd:1",
                              "con=null", f"uml_dir={umldir}", "quiet"], b"USERMODE-BOOTED")
        if uml is not None:
            out["uml"] = uml * 1e6
    return out


def ubd_io(root: str, work: str, count: int = 4096) -> dict[str, dict[str, float]]:
    """4 KiB sequential/random pwrite+pread on /dev/ubdb (a 16 MiB image): natively on the
    image file, in UML and in usermode (bench/ubdio.c)."""
    binary = os.path.join(root, "ubdio")
    subprocess.run(["gcc", "-O2", "-static", "-o", binary, os.path.join(HERE, "ubdio.c")],
                   check=True)
    img = os.path.join(work, "ubd.img")
    out: dict[str, dict[str, float]] = {}

    def fresh() -> None:
        with open(img, "wb") as f:
            f.truncate(count * 4096)
    fresh()
    out["native"] = parse(subprocess.run([binary, img, str(count)], capture_output=True,
                                         text=True, timeout=600).stdout)
    fresh()
    out["usermode"] = parse(subprocess.run(
        [os.path.join(ROOT, ".venv/bin/usermode"), "run", "--root", root, "--ubd",
         f"ubdb={img}", "--", "/ubdio", "/dev/ubdb", str(count)], capture_output=True,
        text=True, timeout=1200, stdin=subprocess.DEVNULL).stdout)
    linux = shutil.which("linux")
    if linux is not None:
        fresh()
        with open(os.path.join(root, "ubdio.sh"), "w") as f:
            f.write(f"#!/bin/sh\n/ubdio /dev/ubdb {count}\n/bin/poweroff -f\n")
        os.chmod(os.path.join(root, "ubdio.sh"), 0o755)
        with tempfile.TemporaryDirectory() as umldir:
            p = subprocess.run([linux, "mem=64M", "root=/dev/root", "rootfstype=hostfs",
                                f"rootflags={root}", "rw", "init=/ubdio.sh", f"ubdb={img}",
                                "con0=fd:0,fd:1", "con=null", f"uml_dir={umldir}"],
                               capture_output=True, text=True, timeout=1200,
                               stdin=subprocess.DEVNULL)
        out["uml"] = parse(p.stdout)
    return {who: {k: v for k, v in res.items() if k.startswith("ubd_")}
            for who, res in out.items()}


PEERS = {"linux": "user-mode-linux", "runsc": "runsc", "proot": "proot"}


def ensure_peers() -> None:
    """Install the peers we compare against (Debian packages) when they are missing."""
    missing = [pkg for cmd, pkg in PEERS.items() if shutil.which(cmd) is None]
    if missing and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True).returncode:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--json", default=os.path.join(HERE, "results.json"))
    args = ap.parse_args()
    ensure_peers()
    work = tempfile.mkdtemp(prefix="usermode-bench-")
    root = build(os.path.join(work, "root"))
    binary = os.path.join(root, "micro")
    subprocess.run(["gcc", "-O2", "-static", "-o", binary, os.path.join(HERE, "micro.c")],
                   check=True)
    runs: dict[str, list[dict[str, float]]] = {"native": [], "uml": [], "gvisor": [],
                                                "proot": [], "usermode": []}
    for _ in range(args.reps):
        runs["native"].append(run_native(binary, args.scale, work))
        runs["uml"].append(run_uml(root, args.scale))
        runs["gvisor"].append(run_gvisor(root, args.scale))
        runs["proot"].append(run_proot(root, args.scale))
        runs["usermode"].append(run_usermode(root, args.scale))
        boot = boot_times(root)
        prompt = prompt_times(root)
        rss = idle_rss(root)
        for who, res in ubd_io(root, work).items():
            runs[who][-1].update(res)
        for who in ("uml", "usermode"):
            if who in boot:
                runs[who][-1]["boot_to_init"] = boot[who]
            if who in prompt:
                runs[who][-1]["boot_to_prompt"] = prompt[who]
            if who in rss:
                runs[who][-1]["idle_rss_kib"] = rss[who]
    names = list(runs["native"][0]) + ["boot_to_init", "boot_to_prompt", "idle_rss_kib"]
    med = {k: {n: statistics.median(r[n] for r in v if n in r) for n in names
               if any(n in r for r in v)} for k, v in runs.items()}
    print(f"{args.reps} interleaved rounds; medians in microseconds per operation "
          "(boot_to_init: from process start to init's first output; idle_rss_kib: host RSS of an "
          "idle instance booted to a shell with mem=64M, in KiB)")
    cols = ("native", "uml", "gvisor", "proot", "usermode")
    print(f"{'benchmark (us/op)':18s}" + "".join(f" {c:>10s}" for c in cols) + f" {'um/UML':>8s}")
    fmt = lambda x: f"{x:10.2f}" if x is not None else f"{'-':>10s}"  # noqa: E731
    for n in names:
        vals = [med[c].get(n) for c in cols]
        um, uml = med["usermode"].get(n), med["uml"].get(n)
        ratio = f"{um / uml:.2f}" if um and uml else "-"
        print(f"{n:18s}" + "".join(" " + fmt(v) for v in vals) + f" {ratio:>8s}")
    with open(args.json, "w") as f:
        json.dump({"medians": med, "reps": args.reps, "scale": args.scale}, f, indent=1)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
