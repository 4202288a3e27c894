"""UML-style boot from switches (`usermode root=... init=... mem=... con0=fd:0,fd:1`)."""
from __future__ import annotations

import sys

from usermode.machine import DEFAULT_ENV, BootError, Machine

HELP = """usage: usermode [switch ...] [init arguments]

Switches (as in User-Mode Linux):
  root=/dev/root rootfstype=hostfs rootflags=DIR   use host directory DIR as the root
  init=PATH        program to run as pid 1 (default /sbin/init, then /bin/sh)
  mem=SIZE         guest memory, e.g. mem=128M
  con0=fd:0,fd:1   console 0 on host fds (the default); con0=null discards it
  hostfs=DIR       let the guest `mount -t hostfs none /mnt -o SUBDIR` below DIR
  quiet            do not print the kernel log
  --help, --version, --showconfig, --syscalls
Other commands: usermode run, usermode doctor
Unknown switches of the form name=value are passed to init's environment, other words
become init's arguments, as Linux does.
"""


CHANNELS_LATER = ("pty", "pts", "port", "xterm", "tty", "file")


def parse_channel(switch: str, val: str) -> tuple[int, int]:
    """A console channel as UML writes it: fd:N or fd:IN,fd:OUT, or null (as in+out fds)."""
    if val == "null":
        return -1, -1
    parts = val.split(",")
    fds = []
    for p in parts:
        kind, _, arg = p.partition(":")
        if kind == "fd" and arg.isdigit():
            fds.append(int(arg))
        elif kind == "null":
            fds.append(-1)
        elif kind in CHANNELS_LATER:
            raise BootError(f"{switch}: the {kind} channel is not supported yet (use fd:N or null)")
        else:
            raise BootError(f"{switch}: unknown channel type {kind!r} (fd:N, null)")
    if len(fds) == 1:
        fds.append(fds[0])
    if len(fds) != 2:
        raise BootError(f"{switch}: expected CHANNEL or IN,OUT")
    return fds[0], fds[1]


def boot_main(argv: list[str]) -> int:
    root = None
    init = None
    mem = "128M"
    quiet = False
    env = list(DEFAULT_ENV)
    args: list[str] = []
    rootfstype = "hostfs"
    rootflags = None
    console: tuple[int, int] = (0, 1)
    hostfs = None
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
        elif key in ("con", "con0", "ssl", "ssl0") or key[:3] in ("con", "ssl") and key[3:].isdigit():
            chan = parse_channel(a, val)
            if key == "con0":
                console = chan
        elif key == "hostfs":
            hostfs = val.split(",")[0]
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
                quiet=quiet, cmdline=" ".join(argv), stdin=console[0], stdout=console[1],
                hostfs=hostfs)
    return m.run()


if __name__ == "__main__":
    sys.exit(boot_main(sys.argv[1:]))
