"""Append-only host log outputs (the tty log): a file we create, or an fd we were given."""
from __future__ import annotations

import os


class LogFile:
    """Whole writes to a host file or fd; write errors are counted, not raised (a full
    disk must not take the instance down)."""

    def __init__(self, path: str | None = None, fd: int = -1) -> None:
        self.owned = path is not None
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                          0o644) if path is not None else fd
        self.errors = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except InterruptedError:
                continue
            except OSError:
                self.errors += 1
                return
            view = view[n:]

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


def check_fd(fd: int) -> str | None:
    """None if fd is open for writing here, else why not."""
    try:
        import fcntl
        mode = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError as e:
        return e.strerror
    return None if mode in (os.O_WRONLY, os.O_RDWR) else "not open for writing"
