"""The `usermode` command: UML switches in, a Machine out.

    usermode [switch=value ...] [init args]        boot like UML (see --help)
    usermode run [--root DIR] [--cwd DIR] [--env K=V] -- PROG [ARGS]   run one program as init
    usermode doctor                                what this host lacks
    usermode --syscalls                            the syscall table
"""
from __future__ import annotations

import argparse
import sys

from usermode import __version__
from usermode.machine import DEFAULT_ENV, BootError, Machine


def fail(msg: str, code: int = 1) -> int:
    sys.stderr.write(f"usermode: {msg}\n")
    return code


def cmd_run(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="usermode run", description="Run PROG as init of a "
                                 "fresh guest whose root is a host directory (hostfs).")
    ap.add_argument("--root", default="/", help="host directory to use as / (default: /)")
    ap.add_argument("--cwd", default="/", help="guest working directory of PROG")
    ap.add_argument("--env", action="append", default=[], metavar="K=V")
    ap.add_argument("--mem", default="128M")
    ap.add_argument("--ncpus", type=int, default=1, help="guest CPUs = host CPUs used (default 1)")
    ap.add_argument("--hostfs", default=None, metavar="DIR",
                    help="allow `mount -t hostfs` of directories below DIR")
    ap.add_argument("--verbose", "-v", action="store_true", help="print the kernel log")
    ap.add_argument("--strace", action="store_true", help="log every trapped syscall (stderr)")
    ap.add_argument("--umid", default=None, help="mconsole name (UML_DIR/UMID/mconsole)")
    ap.add_argument("--uml-dir", default=None, metavar="DIR", help="default ~/.uml")
    ap.add_argument("--ubd", action="append", default=[], metavar="SPEC",
                    help="a ubd block device, e.g. ubdb=disk.img or ubdb=disk.cow,base.img "
                    "(repeatable)")
    ap.add_argument("prog", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    prog = args.prog[1:] if args.prog[:1] == ["--"] else args.prog
    if not prog:
        return fail("run: no program given")
    from usermode.drivers.ubd import UbdError, parse as parse_ubd
    for spec in args.ubd:
        try:
            parse_ubd(spec)
        except UbdError as e:
            return fail(str(e))
    env = list(DEFAULT_ENV)
    for e in args.env:
        if "=" not in e:
            return fail(f"--env {e}: expected K=V")
        key = e.split("=", 1)[0] + "="
        env = [x for x in env if not x.startswith(key)] + [e]
    m = Machine(root=args.root, init=prog, env=env, cwd=args.cwd, mem=args.mem,
                quiet=not (args.verbose or args.strace), cmdline=" ".join(prog),
                strace=args.strace, hostfs=args.hostfs, umid=args.umid,
                uml_dir=args.uml_dir, ubd=args.ubd, ncpus=args.ncpus)
    return m.run()


def cmd_syscalls(argv: list[str]) -> int:
    from usermode.kernel.syscalls.table import Table
    rows = Table().rows()
    md = "--markdown" in argv
    if md:
        print("| nr | syscall | level | note |\n|---|---|---|---|")
    counts: dict[str, int] = {}
    for nr, name, level, note in rows:
        counts[level] = counts.get(level, 0) + 1
        if md:
            print(f"| {nr} | {name} | {level} | {note} |")
        else:
            print(f"{nr:4d} {name:24s} {level:10s} {note}")
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(("\n" if md else "") + f"{len(rows)} syscalls: {summary}")
    return 0


def cmd_doctor(argv: list[str]) -> int:
    from usermode.host.doctor import check
    problems = 0
    for ok, what, advice in check():
        print(f"[{'ok' if ok else 'FAIL'}] {what}" + ("" if ok else f": {advice}"))
        problems += not ok
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["run"]:
            return cmd_run(argv[1:])
        if argv[:1] == ["mkimage"]:
            from usermode.tools.mkimage import main as mkimage_main
            return mkimage_main(argv[1:])
        if argv[:1] == ["doctor"]:
            return cmd_doctor(argv[1:])
        if argv[:1] in (["--syscalls"], ["syscalls"]):
            return cmd_syscalls(argv[1:])
        if argv[:1] == ["--version"]:
            print(f"usermode {__version__} (User-Mode Linux in Python; guest kernel 6.1.0-usermode)")
            return 0
        from usermode.boot import boot_main
        return boot_main(argv)
    except BootError as e:
        return fail(str(e))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
