"""Host helper processes a driver talks to over pipes (UML's run_helper): the harddog's
uml_watchdog. A helper is started as a grandchild, not a child, so the kernel loop's
wait4(-1) only ever reaps guest tasks."""
from __future__ import annotations

import os
import select
import signal


class HelperError(Exception):
    """The helper could not be started or did not answer: one line."""


class Helper:
    """A running helper: write() to its stdin, read_byte() from its stdout."""

    def __init__(self, argv: list[str]) -> None:
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        try:
            pid = os.fork()
            if pid == 0:
                self._child(argv, to_r, from_w)
            os.waitpid(pid, 0)
        finally:
            os.close(to_r)
            os.close(from_w)

    @staticmethod
    def _child(argv: list[str], stdin: int, stdout: int) -> None:
        """In the intermediate child: fork the helper and leave at once."""
        try:
            if os.fork() == 0:
                os.setsid()
                signal.pthread_sigmask(signal.SIG_SETMASK, [])
                os.dup2(stdin, 0)
                os.dup2(stdout, 1)
                os.closerange(3, 1 << 16)
                os.execv(argv[0], argv)
        except BaseException:
            pass
        os._exit(0)

    def read_byte(self, timeout: float) -> bytes:
        """One byte from the helper (b"" at end of file or after timeout seconds)."""
        r, _, _ = select.select([self.from_r], [], [], timeout)
        if not r:
            return b""
        try:
            return os.read(self.from_r, 1)
        except OSError:
            return b""

    def write(self, data: bytes) -> bool:
        """False when the helper is gone (it fired, or was killed)."""
        try:
            os.write(self.to_w, data)
            return True
        except OSError:
            return False

    def close(self) -> None:
        """Close both pipes: a helper that reads its stdin to the end then exits."""
        for fd in (self.to_w, self.from_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.to_w = self.from_r = -1
