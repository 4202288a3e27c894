"""Partitions of a ubd disk: /dev/ubda1..ubda4 from an MS-DOS (MBR) partition table.

Linux reads the table when the disk is registered (msdos_partition); each primary entry
with a non-zero type becomes a block device at minor disk_minor + n, a window on the
disk. An entry that reaches past the disk is truncated to it, as Linux does; extended
partitions' logical drives (ubda5 and up) and GPT tables are not read yet.
"""
from __future__ import annotations

import errno
import struct
import weakref
from typing import TYPE_CHECKING

from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.drivers.ubd import UbdDisk, UbdFile
    from usermode.kernel.task import Task

SECTOR = 512
EXTENDED = (0x05, 0x0F, 0x85)
GPT_PROTECTIVE = 0xEE
ENTRY = struct.Struct("<B3sB3sII")      # status, CHS first, type, CHS last, LBA, sectors


def read_table(disk: "UbdDisk") -> tuple[list[tuple[int, int, int]], list[str]]:
    """[(number, first sector, sectors)] of the primary partitions, and warnings."""
    try:
        mbr = disk.read(0, SECTOR)
    except Errno:
        return [], []
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        return [], []
    entries = [ENTRY.unpack_from(mbr, 446 + 16 * i) for i in range(4)]
    if any(status not in (0, 0x80) for status, *_ in entries):
        return [], []                        # a boot sector, not a partition table
    total = disk.size // SECTOR
    parts, warnings = [], []
    for n, (_, _, ptype, _, start, count) in enumerate(entries, 1):
        if ptype == 0 or count == 0:
            continue
        if ptype == GPT_PROTECTIVE:
            warnings.append("GPT partition table: not supported yet, no partitions")
            return [], warnings
        if ptype in EXTENDED:
            warnings.append(f"p{n}: extended partition, its logical drives are not read yet")
            continue
        if start >= total:
            warnings.append(f"p{n} start {start} is beyond EOD, skipped")
            continue
        if start + count > total:
            warnings.append(f"p{n} size {count} extends beyond EOD, truncated")
            count = total - start
        parts.append((n, start, count))
    return parts, warnings


class UbdPartition:
    """A window of a ubd disk, with the disk's I/O paths and its own counters."""

    def __init__(self, disk: "UbdDisk", number: int, first: int, sectors: int) -> None:
        self.disk = disk
        self.spec = disk.spec
        self.number = number
        self.name = f"{disk.name}{number}"
        self.minor = disk.spec.minor + number
        self.offset = first * SECTOR
        self.size = sectors * SECTOR
        self.reads = self.rsectors = self.writes = self.wsectors = 0
        self.files: weakref.WeakSet["UbdFile"] = weakref.WeakSet()

    @property
    def readonly(self) -> bool:
        return self.disk.readonly

    @readonly.setter
    def readonly(self, value: bool) -> None:
        self.disk.readonly = value

    @property
    def sectors(self) -> int:
        return self.size // SECTOR

    def read(self, off: int, n: int) -> bytes:
        if off >= self.size or n <= 0:
            return b""
        data = self.disk.read(self.offset + off, min(n, self.size - off))
        self.reads += 1
        self.rsectors += -(-len(data) // SECTOR)
        return data

    def write(self, off: int, data: bytes) -> int:
        if off >= self.size and data:
            raise Errno(errno.ENOSPC)
        n = self.disk.write(self.offset + off, bytes(data[:self.size - off]))
        self.writes += 1
        self.wsectors += -(-n // SECTOR)
        return n

    def flush(self) -> None:
        self.disk.flush()

    def stats(self) -> list[int]:
        return [self.reads, 0, self.rsectors, 0, self.writes, 0, self.wsectors, 0,
                0, 0, 0, 0, 0, 0, 0, 0, 0]

    def open(self, t: "Task | None", flags: int) -> "UbdFile":
        from usermode.drivers.ubd import UbdFile
        f = UbdFile(self, flags)                      # type: ignore[arg-type]
        self.files.add(f)
        return f

    @property
    def open_count(self) -> int:
        return sum(1 for f in self.files if f.refs > 0)
