"""Side-by-side benchmarks: native, the real UML kernel, gVisor (runsc, ptrace platform),
PRoot and usermode.

    .venv/bin/python bench/run.py [--reps 3] [--scale 1] [--json out.json] [--png out.png]
                                  [--debian DIR] [--only micro,macro,boot]

Each round runs every benchmark on every system in turn, so that machine drift hits all
alike; the table shows medians with the ratio usermode/UML, and a PNG plots every peer's
figure relative to usermode's. Microbenchmarks are the static bench/micro.c (µs per
operation). Macrobenchmarks are timed inside the guest by the static bench/timeit.c, so
boot time is not counted: busybox tools over 2,000 files (bench/macro/tree2000.sh), and,
on a Debian tree (--debian, or the one `usermode-debian-image` caches), python3 startup and
gcc compile-and-run of bench/macro/hello.c. Boot to init, boot to a shell prompt and host
memory (peak RSS of all the instance's host processes, idle and during tree2000) complete
the set. Native runs are chroots of the same tree.
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
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from usermode.tools.busybox_root import build  # noqa: E402

USERMODE = os.path.join(ROOT, ".venv/bin/usermode")
PEERS = ("native", "uml", "uml1", "gvisor", "proot", "usermode")
UMLS = ("uml", "uml1")     # the real UML as it starts, and under `taskset -c 0`


def uml_command(who: str, root: str, umldir: str, *switches: str,
                mem: str = "64M") -> list[str] | None:
    """The real UML kernel booting root over hostfs; uml1 is pinned to one host CPU the
    way usermode pins itself (host/cpus.py), to show what pinning alone is worth."""
    linux = shutil.which("linux")
    if linux is None:
        return None
    pin = ["taskset", "-c", "0"] if who == "uml1" else []
    return [*pin, linux, f"mem={mem}", "root=/dev/root", "rootfstype=hostfs",
            f"rootflags={root}", "rw", "con0=fd:0,fd:1", "con=null", f"uml_dir={umldir}",
            *switches]
MEM = "256M"
TREE_LINES = ("files", "grep", "lines", "sums", "tar", "listing")


def parse(out: str) -> dict[str, float]:
    """The "name number" lines a benchmark prints."""
    res = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                res[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return res


@dataclass
class Run:
    out: str
    peak_rss_kib: float


def run_sampled(cmd: list[str], sample: bool = False, timeout: float = 1200) -> Run:
    """Run cmd in its own session, its stdout captured; with sample, track the peak RSS of
    its whole process tree every 50 ms."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        peak, deadline = 0, time.monotonic() + timeout
        while True:
            try:
                p.wait(timeout=0.05 if sample else max(0.1, deadline - time.monotonic()))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    kill_all(p, cmd)
                    break
                if sample:
                    peak = max(peak, tree_rss_kb(p.pid))
        out.seek(0)
        return Run(out.read().decode(errors="replace"), float(peak))


def guest_command(who: str, root: str, argv: list[str], umldir: str) -> list[str] | None:
    """The host command line that runs argv inside system `who` on the tree root."""
    if who == "native":
        return ["chroot", root, *argv]
    if who == "usermode":
        return [USERMODE, "run", "--root", root, "--mem", MEM, "--", *argv]
    if who == "proot":
        return ["proot", "-w", "/", "-r", root, *argv] if shutil.which("proot") else None
    if who == "gvisor":
        if shutil.which("runsc") is None:
            return None
        return ["runsc", "--platform=ptrace", "--network=none", f"--root={umldir}/runsc",
                "do", f"--root={root}", "--", *argv]
    if who in UMLS:
        if shutil.which("linux") is None:
            return None
        script = os.path.join(root, "bench", "uml-init.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\n" + " ".join(f"'{a}'" for a in argv)
                    + "\n/bin/poweroff -f 2>/dev/null || /sbin/poweroff -f\n")
        os.chmod(script, 0o755)
        return uml_command(who, root, umldir, "init=/bench/uml-init.sh", "quiet", mem=MEM)
    raise ValueError(who)


def in_guest(who: str, root: str, argv: list[str], sample: bool = False) -> Run | None:
    with tempfile.TemporaryDirectory() as umldir:
        cmd = guest_command(who, root, argv, umldir)
        return None if cmd is None else run_sampled(cmd, sample)


def install_bench_programs(root: str) -> None:
    """Static micro and timeit, and the macro scripts, into root/bench."""
    dest = os.path.join(root, "bench")
    os.makedirs(dest, exist_ok=True)
    os.makedirs(os.path.join(root, "tmp"), exist_ok=True)
    for prog in ("micro", "timeit"):
        subprocess.run(["gcc", "-O2", "-static", "-o", os.path.join(dest, prog),
                        os.path.join(HERE, prog + ".c")], check=True)
    for name in os.listdir(os.path.join(HERE, "macro")):
        shutil.copy2(os.path.join(HERE, "macro", name), dest)


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


def kill_all(p: subprocess.Popen, cmd: list[str]) -> None:
    """Kill an instance with all its host processes: UML's run in sessions of their own,
    so beyond the process group, every process whose command line names its uml_dir."""
    os.killpg(p.pid, 9)
    p.wait()
    for arg in cmd:
        if arg.startswith("uml_dir="):
            subprocess.run(["pkill", "-9", "-f", arg], capture_output=True)


def time_until(cmd: list[str], marker: bytes, timeout: float = 120.0) -> float | None:
    """Seconds from starting cmd until marker appears on its stdout (then it is killed)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        return _seconds_until(p.stdout.fileno(), lambda b: marker in b, t0, timeout)
    finally:
        kill_all(p, cmd)


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
    for who in UMLS:
        cmd = uml_command(who, root, tempfile.mkdtemp(), "quiet")
        if cmd:
            cmds[who] = cmd
    out = {}
    for who, cmd in cmds.items():
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(8)
        out[who] = float(tree_rss_kb(p.pid))
        kill_all(p, cmd)
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
        kill_all(p, cmd)
        os.close(master)


def prompt_times(root: str) -> dict[str, float]:
    """Boot to a shell prompt: the default busybox init and inittab of the same tree."""
    out: dict[str, float] = {}
    um = time_to_prompt([os.path.join(ROOT, ".venv/bin/usermode"), f"rootflags={root}",
                         "mem=64M", "quiet"])
    if um is not None:
        out["usermode"] = um * 1e6
    for who in UMLS:
        with tempfile.TemporaryDirectory() as umldir:
            cmd = uml_command(who, root, umldir, "quiet")
            uml = time_to_prompt(cmd) if cmd else None
        if uml is not None:
            out[who] = uml * 1e6
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
    for who in UMLS:
        with tempfile.TemporaryDirectory() as umldir:
            cmd = uml_command(who, root, umldir, "init=/boot.sh", "quiet")
            uml = time_until(cmd, b"USERMODE-BOOTED") if cmd else None
        if uml is not None:
            out[who] = uml * 1e6
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
    with open(os.path.join(root, "ubdio.sh"), "w") as f:
        f.write(f"#!/bin/sh\n/ubdio /dev/ubdb {count}\n/bin/poweroff -f\n")
    os.chmod(os.path.join(root, "ubdio.sh"), 0o755)
    for who in UMLS:
        with tempfile.TemporaryDirectory() as umldir:
            cmd = uml_command(who, root, umldir, "init=/ubdio.sh", f"ubdb={img}")
            if cmd is None:
                continue
            fresh()
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                               stdin=subprocess.DEVNULL)
        out[who] = parse(p.stdout)
    return {who: {k: v for k, v in res.items() if k.startswith("ubd_")}
            for who, res in out.items()}


PACKAGES = {"linux": "user-mode-linux", "runsc": "runsc", "proot": "proot"}


def ensure_peers() -> None:
    """Install the peers we compare against (Debian packages) when they are missing."""
    missing = [pkg for cmd, pkg in PACKAGES.items() if shutil.which(cmd) is None]
    if missing and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True).returncode:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True)


def debian_tree(path: str | None, work: str) -> str:
    """A scratch copy of the Debian tree for the python3 and gcc macrobenchmarks (--debian,
    else the cached one, built when missing), so the peers' writes land in the copy."""
    if not path:
        from usermode.tools import debian_image
        path = debian_image.ensure()
    copy = os.path.join(work, "debian")
    subprocess.run(["cp", "-a", "--reflink=auto", path, copy], check=True)
    return copy


MICRO = ("getppid", "clock_gettime", "write4k", "read4k", "pipe_pingpong", "fork_wait",
         "fork_exec_wait", "mmap_touch_1m", "open_close", "stat")
LABELS = {
    "getppid": "getppid (trapped) µs", "clock_gettime": "clock_gettime (vDSO) µs",
    "write4k": "pwrite 4 KiB µs", "read4k": "pread 4 KiB µs",
    "pipe_pingpong": "pipe ping-pong µs", "fork_wait": "fork+wait µs",
    "fork_exec_wait": "fork+exec+wait µs", "mmap_touch_1m": "mmap+touch+munmap 1 MiB µs",
    "open_close": "open+close µs", "stat": "stat µs",
    "tree2000": "busybox tools over 2,000 files ms", "python3_startup": "python3 -c pass ms",
    "compile_run": "gcc -O2 hello.c + run ms", "boot_to_init": "boot to init s",
    "boot_to_prompt": "boot to a shell prompt s", "idle_rss_kib": "host RSS idle, mem=64M MiB",
    "busy_rss_kib": "host RSS peak during tree2000 MiB",
    "ubd_seq_write_4k": "ubd sequential 4 KiB write µs", "ubd_rand_write_4k":
    "ubd random 4 KiB write µs", "ubd_seq_read_4k": "ubd sequential 4 KiB read µs",
    "ubd_rand_read_4k": "ubd random 4 KiB read µs",
}
SCALE = {"tree2000": 1e-3, "python3_startup": 1e-3, "compile_run": 1e-3, "boot_to_init": 1e-6,
         "boot_to_prompt": 1e-6, "idle_rss_kib": 1 / 1024, "busy_rss_kib": 1 / 1024}


class Rounds:
    """Figures per system per round, and the outputs that must agree between systems."""

    def __init__(self) -> None:
        self.runs: dict[str, list[dict[str, float]]] = {p: [] for p in PEERS}
        self.outputs: dict[str, dict[str, set[str]]] = {}

    def new_round(self) -> None:
        for figures in self.runs.values():
            figures.append({})

    def add(self, who: str, figures: dict[str, float]) -> None:
        self.runs[who][-1].update(figures)

    def expect_same(self, bench: str, who: str, out: str, keys: tuple[str, ...]) -> None:
        lines = [ln for ln in out.splitlines() if ln.split()[:1] and ln.split()[0] in keys]
        self.outputs.setdefault(bench, {}).setdefault("\n".join(lines), set()).add(who)

    def medians(self) -> dict[str, dict[str, float]]:
        return {who: {n: statistics.median(r[n] for r in rounds if n in r)
                      for n in LABELS if any(n in r for r in rounds)}
                for who, rounds in self.runs.items()}


def micro_round(rounds: Rounds, root: str, scale: int) -> None:
    for who in PEERS:
        run = in_guest(who, root, ["/bench/micro", str(scale), "/tmp"])
        if run:
            rounds.add(who, {k: v for k, v in parse(run.out).items() if k in MICRO})


def tree_round(rounds: Rounds, root: str) -> None:
    for who in PEERS:
        run = in_guest(who, root, ["/bench/timeit", "tree2000", "1", "/bin/sh",
                                   "/bench/tree2000.sh"], sample=True)
        if run and "tree2000" in parse(run.out):
            rounds.add(who, {"tree2000": parse(run.out)["tree2000"],
                             "busy_rss_kib": run.peak_rss_kib})
            rounds.expect_same("tree2000", who, run.out, TREE_LINES)


def debian_round(rounds: Rounds, root: str) -> None:
    cmds = {"python3_startup": ["/bench/timeit", "python3_startup", "10", "/usr/bin/python3",
                                "-c", "pass"],
            "compile_run": ["/bench/timeit", "compile_run", "3", "/bin/sh", "-c",
                            "export PATH=/usr/bin:/bin; gcc -O2 -o /tmp/hello "
                            "/bench/hello.c && /tmp/hello"]}
    for name, argv in cmds.items():
        for who in PEERS:
            run = in_guest(who, root, argv)
            if run and name in parse(run.out):
                rounds.add(who, {name: parse(run.out)[name]})
                if name == "compile_run":
                    rounds.expect_same(name, who, run.out, ("gvisor",))


def boot_round(rounds: Rounds, root: str) -> None:
    figures = {"boot_to_init": boot_times(root), "boot_to_prompt": prompt_times(root),
               "idle_rss_kib": idle_rss(root)}
    for name, per_system in figures.items():
        for who, value in per_system.items():
            rounds.add(who, {name: value})


def print_table(med: dict[str, dict[str, float]], reps: int) -> None:
    print(f"{reps} interleaved rounds, medians")
    print(f"{'benchmark':36s}" + "".join(f" {c:>9s}" for c in PEERS)
          + f" {'um/UML':>7s} {'um/UML1':>7s}")
    for n, label in LABELS.items():
        vals = [med[c].get(n) for c in PEERS]
        if all(v is None for v in vals):
            continue
        um = med["usermode"].get(n)
        ratios = [f"{um / med[u][n]:.2f}" if um and med[u].get(n) else "-" for u in UMLS]
        cells = "".join(f" {v * SCALE.get(n, 1):9.2f}" if v is not None else f" {'-':>9s}"
                        for v in vals)
        print(f"{label:36s}{cells} {ratios[0]:>7s} {ratios[1]:>7s}")


def plot(med: dict[str, dict[str, float]], path: str) -> None:
    """Each system's figure divided by usermode's, one row per benchmark, log scale."""
    try:
        import matplotlib
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"],
                       stderr=subprocess.DEVNULL, check=True)
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in LABELS if med["usermode"].get(n)]
    others = [p for p in PEERS if p != "usermode"]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(names) + 1.5))
    height = 0.8 / len(others)
    for i, who in enumerate(others):
        ys, xs = [], []
        for row, n in enumerate(names):
            if med[who].get(n):
                ys.append(row + (i - (len(others) - 1) / 2) * height)
                xs.append(med[who][n] / med["usermode"][n])
        ax.barh(ys, xs, height=height, label="UML, taskset -c 0" if who == "uml1" else who, left=0)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(names)), [LABELS[n] for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("time or memory relative to usermode (log scale; right of 1 = usermode ahead)")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--json", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--png", default=os.path.join(HERE, "results.png"))
    ap.add_argument("--debian", help="Debian tree for the python3 and gcc benchmarks")
    ap.add_argument("--only", default="micro,macro,boot,storage",
                    help="comma-separated groups: micro, macro, boot, storage")
    args = ap.parse_args()
    groups = set(args.only.split(","))
    ensure_peers()
    work = tempfile.mkdtemp(prefix="usermode-bench-")
    root = build(os.path.join(work, "root"))
    install_bench_programs(root)
    debian = debian_tree(args.debian, work) if "macro" in groups else None
    if debian:
        install_bench_programs(debian)
    rounds = Rounds()
    for _ in range(args.reps):
        rounds.new_round()
        if "micro" in groups:
            micro_round(rounds, root, args.scale)
        if "macro" in groups:
            tree_round(rounds, root)
            if debian:
                debian_round(rounds, debian)
        if "boot" in groups:
            boot_round(rounds, root)
        if "storage" in groups:
            for who, figures in ubd_io(root, work).items():
                rounds.add(who, figures)
    med = rounds.medians()
    print_table(med, args.reps)
    for bench, variants in rounds.outputs.items():
        if len(variants) > 1:
            print(f"warning: {bench} printed different results: "
                  + "; ".join(f"{sorted(w)}: {out!r}" for out, w in variants.items()))
    with open(args.json, "w") as f:
        json.dump({"medians": med, "reps": args.reps, "scale": args.scale,
                   "date": time.strftime("%Y-%m-%d")}, f, indent=1)
    plot(med, args.png)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
