"""uml_watchdog: the host half of the harddog watchdog, compatible with uml-utilities'.

    uml_watchdog -pid PID [-timeout SECONDS]
    uml_watchdog -mconsole SOCKET [-timeout SECONDS]

The instance's harddog driver starts it with pipes on stdin and stdout. It answers one
byte on stdout when it is ready, then expects a byte on stdin at least every SECONDS
(60, as in UML; $USERMODE_WATCHDOG_TIMEOUT or -timeout change it, e.g. for tests).
End of input (the guest closed /dev/watchdog) ends it with status 0. When no ping comes
in time the instance is presumed hung: with -mconsole a "hang" notification (struct
mconsole_notify, type 2, no data) goes to SOCKET, the instance's mconsole=notify: socket;
with -pid the instance gets SIGINT, SIGINT a second later, then SIGKILL. Status 1 then.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time

from usermode.drivers import mconsole_proto as proto

USAGE = "usage: uml_watchdog -pid PID | -mconsole SOCKET [-timeout SECONDS]"
DEFAULT_TIMEOUT = 60.0


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> tuple[str, str, float]:
    """(mode, target, timeout) from the command line."""
    mode = target = None
    timeout = os.environ.get("USERMODE_WATCHDOG_TIMEOUT", str(DEFAULT_TIMEOUT))
    args = list(argv)
    while args:
        opt = args.pop(0)
        if opt in ("-pid", "-mconsole", "-timeout") and not args:
            raise UsageError(f"{opt} needs a value")
        if opt in ("-pid", "-mconsole"):
            mode, target = opt[1:], args.pop(0)
        elif opt == "-timeout":
            timeout = args.pop(0)
        else:
            raise UsageError(f"unknown option {opt!r}")
    if mode is None:
        raise UsageError("give -pid PID or -mconsole SOCKET")
    if mode == "pid" and not target.isdigit():
        raise UsageError(f"-pid {target}: not a process id")
    try:
        seconds = float(timeout)
    except ValueError:
        raise UsageError(f"timeout {timeout!r}: not a number of seconds") from None
    if seconds <= 0:
        raise UsageError(f"timeout {timeout!r}: must be positive")
    return mode, target, seconds


def kill_instance(pid: int) -> None:
    """As uml-utilities does: two SIGINTs a second apart, then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if sig != signal.SIGKILL:
            time.sleep(1)


def notify_hang(sock_path: str) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(proto.build_notify(proto.NOTIFY_HANG, b""), sock_path)
    except OSError as e:
        print(f"uml_watchdog: sendto {sock_path}: {e.strerror}", file=sys.stderr)
    finally:
        s.close()


def watch(timeout: float) -> bool:
    """Read pings until end of input (True) or until none comes in time (False)."""
    while True:
        r, _, _ = select.select([0], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(0, 4096)
        except InterruptedError:
            continue
        if not data:
            return True


def main(argv: list[str] | None = None) -> int:
    try:
        mode, target, timeout = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"uml_watchdog: {e}\n{USAGE}", file=sys.stderr)
        return 1
    if mode == "pid":
        try:
            os.kill(int(target), 0)
        except OSError as e:
            print(f"uml_watchdog: pid {target}: {e.strerror}", file=sys.stderr)
            return 1
    try:
        os.write(1, b"\0")                       # ready
        if watch(timeout):
            return 0
    except OSError as e:
        print(f"uml_watchdog: {e.strerror}", file=sys.stderr)
        return 1
    if mode == "pid":
        kill_instance(int(target))
    else:
        notify_hang(target)
    return 1


if __name__ == "__main__":
    sys.exit(main())
