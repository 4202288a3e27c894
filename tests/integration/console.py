"""Drive a usermode console on a host pty, the way a person at a terminal would."""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
USERMODE = os.path.join(ROOT, ".venv", "bin", "usermode")


class Console:
    def __init__(self, args: list[str], rows: int = 30, cols: int = 100) -> None:
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, False)
        import fcntl
        import struct
        import termios
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen([USERMODE, *args], stdin=slave, stdout=slave, stderr=slave,
                                     close_fds=True, start_new_session=True)
        os.close(slave)
        self.buf = b""

    def read_until(self, pattern: bytes, timeout: float = 20.0) -> bytes:
        """Everything up to and including pattern; raises TimeoutError with the screen."""
        deadline = time.monotonic() + timeout
        while pattern not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"waited for {pattern!r}; got {self.buf[-2000:]!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                if not data:
                    if pattern not in self.buf:
                        raise TimeoutError(f"console closed; got {self.buf[-2000:]!r}")
                    break
                self.buf += data
        i = self.buf.index(pattern) + len(pattern)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def run(self, line: str, prompt: bytes, timeout: float = 20.0) -> bytes:
        """Type a command line; return what the guest printed before the next prompt."""
        self.send(line.encode() + b"\r")
        out = self.read_until(prompt, timeout)
        out = ANSI.sub(b"", out[: -len(prompt)]).replace(b"\r\n", b"\n")
        echoed = line.encode()
        if out.startswith(echoed):
            out = out[len(echoed):]
        return out.lstrip(b"\n")

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            os.close(self.master)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
