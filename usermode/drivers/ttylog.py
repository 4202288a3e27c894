"""tty logging for honeypots (UML's tty_log.c): every byte typed on and shown by a guest
terminal — console lines and pty slaves — recorded with a timestamp.

    tty_log_dir=DIR     one file per terminal: DIR/<seconds>-<tty id>
    tty_log_fd=N        every terminal into the host's fd N (already open for writing)

The format (docs/ttylog.md) is UML's: records of struct tty_log_buf as x86-64 lays it out,
native byte order, 40 bytes, each followed by `len` bytes of data:

    int what; (4 bytes padding) unsigned long tty; int len; int direction;
    unsigned long sec; unsigned long usec;

what: 1 open (data: the terminal's name, e.g. "pts/0" or "tty1" — UML put a pointer
here), 2 close (no data), 3 write (the bytes), 4 exec (a program its session started:
the arguments, each NUL-terminated). direction (write records): 1 read = typed
on the terminal (what the line discipline received, so passwords typed without echo too),
2 write = shown on it (program output and echo, after output processing).
usermode/tools/tty_replay.py plays a log back.
"""
from __future__ import annotations

import itertools
import struct
import time
from dataclasses import dataclass
from typing import Iterator

from usermode.host.logfile import LogFile

TTY_LOG_OPEN, TTY_LOG_CLOSE, TTY_LOG_WRITE, TTY_LOG_EXEC = 1, 2, 3, 4
TTY_READ, TTY_WRITE = 1, 2
RECORD = struct.Struct("=i4xQiiQQ")


@dataclass
class Record:
    what: int
    tty: int
    direction: int
    sec: int
    usec: int
    data: bytes

    @property
    def time(self) -> float:
        return self.sec + self.usec / 1e6


def pack(what: int, tty: int, direction: int, data: bytes, now: float) -> bytes:
    sec = int(now)
    return RECORD.pack(what, tty, len(data), direction, sec, int((now - sec) * 1e6)) + data


def parse(blob: bytes) -> Iterator[Record]:
    """The records of a log; a truncated last record (a log still being written) ends it."""
    off = 0
    while off + RECORD.size <= len(blob):
        what, tty, length, direction, sec, usec = RECORD.unpack_from(blob, off)
        off += RECORD.size
        if length < 0 or off + length > len(blob):
            return
        yield Record(what, tty, direction, sec, usec, blob[off:off + length])
        off += length


class TtyLog:
    """One terminal's log channel."""

    def __init__(self, logger: "TtyLogger", name: str) -> None:
        self.logger = logger
        self.id = next(logger.ids)
        self.out = logger.output_for(self.id)
        self.closed = False
        self.emit(TTY_LOG_OPEN, 0, name.encode())

    def emit(self, what: int, direction: int, data: bytes) -> None:
        self.out.write(pack(what, self.id, direction, data, time.time()))

    def read(self, data: bytes) -> None:
        if data and not self.closed:
            self.emit(TTY_LOG_WRITE, TTY_READ, bytes(data))

    def write(self, data: bytes) -> None:
        if data and not self.closed:
            self.emit(TTY_LOG_WRITE, TTY_WRITE, bytes(data))

    def exec(self, argv: list[bytes]) -> None:
        """A program started by a process of this terminal: its arguments, each
        NUL-terminated (UML's log_exec)."""
        if not self.closed:
            self.emit(TTY_LOG_EXEC, 0, b"".join(a + b"\0" for a in argv))

    def close(self) -> None:
        if not self.closed:
            self.emit(TTY_LOG_CLOSE, 0, b"")
            self.closed = True
            if self.out is not self.logger.shared:
                self.out.close()


class TtyLogger:
    """The instance's tty logging: `open(name)` gives each terminal its TtyLog."""

    def __init__(self, log_dir: str | None = None, log_fd: int = -1) -> None:
        self.dir = log_dir
        self.shared = LogFile(fd=log_fd) if log_fd >= 0 else None
        self.ids = itertools.count(1)

    def output_for(self, tty_id: int) -> LogFile:
        if self.shared is not None:
            return self.shared
        try:
            return LogFile(f"{self.dir}/{int(time.time())}-{tty_id}")
        except OSError:
            return LogFile(fd=-1)           # writes fail and are counted; the tty works on

    def open(self, name: str) -> TtyLog:
        return TtyLog(self, name)
