"""/dev/hwrng (misc char device 10,183): UML's hw_random driver, fed from the host's
random source. Reads of any size are filled (up to 16 MiB per call); writes are refused
and seeking is a no-op, as with Linux's rng-core."""
from __future__ import annotations

import errno
import secrets
from typing import TYPE_CHECKING

from usermode.fs.file import File, POLLIN, POLLRDNORM
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.kernel.task import Task

MISC_MAJOR, HWRNG_MINOR = 10, 183
MAX_READ = 1 << 24


class HwrngFile(File):
    def name(self) -> bytes:
        return b"/dev/hwrng"

    def poll(self) -> int:
        return POLLIN | POLLRDNORM

    def read(self, t: "Task", n: int) -> bytes:
        return secrets.token_bytes(min(n, MAX_READ))    # the host's getrandom/urandom

    def write(self, t: "Task", data: bytes) -> int:
        raise Errno(errno.EINVAL)

    def lseek(self, off: int, whence: int) -> int:
        return 0


def register(vfs) -> None:
    vfs.register_chrdev(MISC_MAJOR, HWRNG_MINOR, lambda t, flags: HwrngFile(flags),
                        "hwrng", 0o600)
