"""tty_replay: play back a usermode (or UML) tty log, with its original timing.

    tty_replay [--fast] [--speed X] [--max-delay S] [--input] [--tty ID] [--list|--execs] LOG...

LOG is a file written with tty_log_dir= (one terminal) or tty_log_fd= (all of them);
the format is in docs/ttylog.md. What the terminal showed is written to stdout, waiting
between records as long as the session did (divided by --speed, each wait at most
--max-delay seconds, none with --fast). --input shows what was typed instead; --tty
picks one terminal of a shared log; --list prints the terminals a log holds, --execs the
programs started on them (time, terminal, arguments).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from usermode.drivers import ttylog


class ReplayError(Exception):
    pass


def load(paths: list[str]) -> list[ttylog.Record]:
    records: list[ttylog.Record] = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except OSError as e:
            raise ReplayError(f"{path}: {e.strerror}") from None
        got = list(ttylog.parse(blob))
        if blob and not got:
            raise ReplayError(f"{path}: not a tty log")
        records += got
    records.sort(key=lambda r: r.time)
    return records


def names(records: list[ttylog.Record]) -> dict[int, str]:
    return {r.tty: r.data.decode(errors="replace") for r in records
            if r.what == ttylog.TTY_LOG_OPEN}


def play(records: list[ttylog.Record], direction: int, tty: int | None, fast: bool,
         speed: float, max_delay: float, out) -> None:
    last = None
    for r in records:
        if r.what != ttylog.TTY_LOG_WRITE or r.direction != direction:
            continue
        if tty is not None and r.tty != tty:
            continue
        if not fast and last is not None:
            time.sleep(min(max(r.time - last, 0) / speed, max_delay))
        last = r.time
        out.write(r.data)
        out.flush()


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="tty_replay", description="play back a tty log")
    ap.add_argument("logs", nargs="+", metavar="LOG")
    ap.add_argument("--fast", action="store_true", help="no waits between records")
    ap.add_argument("--speed", type=float, default=1.0, help="play X times faster")
    ap.add_argument("--max-delay", type=float, default=float("inf"), metavar="S",
                    help="wait at most S seconds between records")
    ap.add_argument("--input", action="store_true", help="show what was typed")
    ap.add_argument("--tty", type=int, help="only this terminal (see --list)")
    ap.add_argument("--list", action="store_true", help="list the terminals in the logs")
    ap.add_argument("--execs", action="store_true", help="list the programs started")
    args = ap.parse_args(argv)
    if args.speed <= 0 or args.max_delay < 0:
        ap.error("--speed must be positive and --max-delay not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        records = load(args.logs)
    except ReplayError as e:
        print(f"tty_replay: {e}", file=sys.stderr)
        return 1
    if args.list:
        for tty, name in sorted(names(records).items()):
            n = sum(len(r.data) for r in records if r.tty == tty and r.what == ttylog.TTY_LOG_WRITE)
            print(f"{tty}\t{name}\t{n} bytes")
        return 0
    if args.execs:
        for r in records:
            if r.what == ttylog.TTY_LOG_EXEC and args.tty in (None, r.tty):
                words = r.data.rstrip(b"\0").split(b"\0")
                print(f"{r.time:.6f}\t{r.tty}\t" + " ".join(w.decode(errors="replace")
                                                         for w in words))
        return 0
    direction = ttylog.TTY_READ if args.input else ttylog.TTY_WRITE
    try:
        play(records, direction, args.tty, args.fast, args.speed, args.max_delay,
             sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
