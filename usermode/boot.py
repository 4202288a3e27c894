"""UML-style boot from switches (`usermode root=... init=... mem=... con0=fd:0,fd:1`)."""
from __future__ import annotations

import sys

from usermode.machine import DEFAULT_ENV, BootError, Machine

HELP = """usage: usermode [switch ...] [init arguments]

Switches (as in User-Mode Linux):
  root=/dev/root rootfstype=hostfs rootflags=DIR   use host directory DIR as the root
  init=PATH        program to run as pid 1 (default /sbin/init, then /bin/sh)
  mem=SIZE         guest memory, e.g. mem=128M
  ncpus=N          guest CPUs (default 1); the instance runs on N host CPUs
  con0=fd:0,fd:1   console 0 on host fds (the default); con0=null discards it
  conN=CHANNEL     console N (/dev/ttyN); con=CHANNEL for every console but con0
  sslN=CHANNEL     serial line N (/dev/ttySN); ssl=CHANNEL for every serial line
                   channels: fd:N, fd:IN,fd:OUT, null, pty, port:N (telnet to
                   127.0.0.1:N), xterm (needs $DISPLAY)
  umid=NAME        management name: UML_DIR/NAME/{pid,mconsole} (random if not given)
  uml_dir=DIR      where umid directories live (default ~/.uml)
  mconsole=notify:SOCKET   send the mconsole socket's path to SOCKET at boot
  ubd<N><FLAGS>=FILE[,BACKING]   block device /dev/ubdN (N a-z or 0-15) on host image
                   FILE, a COW file over BACKING if given; flags r read-only,
                   s synchronous, d data only (no COW), c shared (no lock)
  tty_log_dir=DIR  log every guest terminal's input and output, one file per terminal
  tty_log_fd=N     ... or all into the host's fd N (format: docs/ttylog.md; tty_replay)
  harddog.nowayout=1   closing /dev/watchdog does not stop the watchdog (its host
                   helper uml_watchdog; $USERMODE_WATCHDOG_TIMEOUT: seconds, default 60)
  hostfs=DIR       let the guest `mount -t hostfs none /mnt -o SUBDIR` below DIR
  quiet            do not print the kernel log
  --help, --version, --showconfig, --syscalls
Other commands: usermode run, usermode doctor
Unknown switches of the form name=value are passed to init's environment, other words
become init's arguments, as Linux does.
"""


def parse_channel(switch: str, val: str) -> str:
    """A console/serial channel as UML writes it (fd:N, fd:IN,fd:OUT, null, pty, port:N,
    xterm): checked now, opened when the machine boots. Returns the spec."""
    from usermode.host.channels import ChannelError, check_spec
    try:
        check_spec(val)
    except ChannelError as e:
        raise BootError(f"{switch}: {e}") from None
    return val


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
    con0: str | None = None
    lines: dict[tuple[str, int], str] = {}
    line_defaults: dict[str, str] = {}
    hostfs = None
    mc: dict[str, str] = {}          # umid=, uml_dir=, mconsole=notify: (Machine fields)
    ubd: list[str] = []              # ubd<n><flags>=FILE[,BACKING] switches, as given
    root_rw = False                  # Linux mounts the root read-only unless told "rw"
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
            elif a in ("ro", "rw"):
                root_rw = a == "rw"          # a ubd root; hostfs roots are always rw
            elif a in ("debug", "single"):
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
        elif key == "ncpus":
            if not val.isdigit() or not 1 <= int(val) <= 64:
                raise BootError(f"{a}: expected ncpus=N with N from 1 to 64")
            mc["ncpus"] = int(val)
        elif key in ("con", "con0", "ssl", "ssl0") or key[:3] in ("con", "ssl") and key[3:].isdigit():
            chan = parse_channel(a, val)
            if key == "con0":
                from usermode.host.channels import fd_pair
                pair = fd_pair(chan)
                if pair is not None:
                    console, con0 = pair, None
                else:
                    con0 = chan
            elif key in ("con", "ssl"):
                line_defaults[key] = chan
            else:
                n = int(key[3:])
                if n >= 64:
                    raise BootError(f"{a}: {key[:3]} lines are numbered 0-63")
                lines[(key[:3], n)] = chan
        elif key == "hostfs":
            hostfs = val.split(",")[0]
        elif key in ("umid", "uml_dir"):
            mc[key] = val
        elif key == "mconsole":
            if not val.startswith("notify:") or len(val) == len("notify:"):
                raise BootError(f"{a}: expected mconsole=notify:SOCKET")
            mc["mconsole_notify"] = val[len("notify:"):]
        elif key.startswith("ubd"):
            from usermode.drivers.ubd import UbdError, parse
            try:
                parse(a)
            except UbdError as e:
                raise BootError(str(e)) from None
            ubd.append(a)
        elif key == "tty_log_dir":
            if not val:
                raise BootError(f"{a}: expected tty_log_dir=DIR")
            mc["tty_log_dir"] = val
        elif key == "tty_log_fd":
            if not val.isdigit():
                raise BootError(f"{a}: expected tty_log_fd=N (an open host file descriptor)")
            mc["tty_log_fd"] = int(val)
        elif key == "harddog.nowayout":
            if val not in ("0", "1"):
                raise BootError(f"{a}: expected harddog.nowayout=0 or 1")
            mc["harddog_nowayout"] = val == "1"
        elif key == "eth0":
            pass
        else:
            env.append(a)
    root_device = None
    if root and root.startswith("/dev/ubd"):
        root_device = root                      # ext2/3/4 on a ubd device, read-only for now
        rootfstype = "ext4"
    elif rootfstype != "hostfs":
        raise BootError(f"rootfstype={rootfstype}: only hostfs and ubd roots are supported so far")
    host_root = rootflags or (root if root and not root.startswith("/dev/") else None)
    root_image = None
    if host_root is None and root_device is None and any(
            _ubd_index(u) == 0 for u in ubd):
        root_device, rootfstype = "/dev/ubda", "ext4"   # UML's root= default
    elif host_root is None and root_device is None:
        # the default guest: the busybox image through a COW file of this instance
        from usermode.tools.busybox_root import default_image
        from usermode.tools.mkimage import MkimageError
        try:
            root_image = default_image()
        except (MkimageError, OSError) as e:
            raise BootError(f"cannot build the default root image: {e}") from None
        root_rw = True
    m = Machine(root=host_root or "/", root_device=root_device, root_image=root_image,
                root_rw=root_rw,
                init=[init or "/sbin/init"] + args, env=env, mem=mem,
                quiet=quiet, cmdline=" ".join(argv), stdin=console[0], stdout=console[1],
                con0=con0, lines=lines, line_defaults=line_defaults,
                hostfs=hostfs, ubd=ubd, **mc)
    return m.run()


def _ubd_index(switch: str) -> int:
    from usermode.drivers.ubd import parse
    return parse(switch).index


if __name__ == "__main__":
    sys.exit(boot_main(sys.argv[1:]))
