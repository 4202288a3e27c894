"""UML-style boot from switches (`usermode root=... init=... mem=... con0=fd:0,fd:1`)."""
from __future__ import annotations

import sys

from usermode.machine import DEFAULT_ENV, BootError, Machine

HELP = """usage: usermode [switch ...] [init arguments]

Switches (as in User-Mode Linux):
  root=/dev/root rootfstype=hostfs rootflags=DIR   use host directory DIR as the root
  init=PATH        program to run as pid 1 (default /sbin/init, then /bin/sh)
  mem=SIZE         guest memory, e.g. mem=128M
  con0=fd:0,fd:1   console 0 on host fds (the default)
  quiet            do not print the kernel log
  --help, --version, --showconfig, --syscalls
Other commands: usermode run, usermode doctor
Unknown switches of the form name=value are passed to init's environment, other words
become init's arguments, as Linux does.
"""


def boot_main(argv: list[str]) -> int:
    root = None
    init = None
    mem = "128M"
    quiet = False
    env = list(DEFAULT_ENV)
    args: list[str] = []
    rootfstype = "hostfs"
    rootflags = None
    for a in argv:
        if a in ("--help", "-h"):
            print(HELP, end="")
            return 0
        if a == "--showconfig":
            print("CONFIG_HOSTFS=y\nCONFIG_UML=y\nCONFIG_64BIT=y")
            return 0
        if a.startswith("-"):
            raise BootError(f"unknown option {a} (see usermode --help)")
        key, eq, val = a.partition("=")
        if not eq:
            if a == "quiet":
                quiet = True
            elif a in ("ro", "rw", "debug", "single"):
                pass
            else:
                args.append(a)
            continue
        if key == "root":
            root = val
        elif key == "rootfstype":
            rootfstype = val
        elif key == "rootflags":
            rootflags = val
        elif key == "init":
            init = val
        elif key == "mem":
            mem = val
        elif key.startswith("con") or key.startswith("ssl"):
            if not (val.startswith("fd:") or val in ("null",) or val.startswith("pts")
                    or val.startswith("pty") or val.startswith("port:") or val == "xterm"):
                raise BootError(f"{a}: unknown channel type (fd:N, null, pty, pts, port:N, xterm)")
        elif key in ("umid", "uml_dir", "ubd0", "ubda", "eth0"):
            pass
        else:
            env.append(a)
    if rootfstype != "hostfs":
        raise BootError(f"rootfstype={rootfstype}: only hostfs roots are supported so far")
    host_root = rootflags or (root if root and not root.startswith("/dev/") else None)
    if host_root is None:
        from usermode.tools.busybox_root import default_root
        host_root = default_root()
    m = Machine(root=host_root, init=[init or "/sbin/init"] + args, env=env, mem=mem,
                quiet=quiet, cmdline=" ".join(argv))
    return m.run()


if __name__ == "__main__":
    sys.exit(boot_main(sys.argv[1:]))
