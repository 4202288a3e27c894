"""UML's ubd block driver: host image files as /dev/ubda, /dev/ubdb ... (major 98).

    ubd<n><flags>=file[,backing]        (":" is also accepted instead of ",")

n is a letter a-z or a number 0-15 (ubd0 is ubda); the device's minor is n*16.  Flags, as
in UML: r read-only, s synchronous (O_SYNC), d data only (never treated as COW), c shared
(no host lock).  With a backing file, file is a COW file (usermode/drivers/cow.py) created
on first use as UML does; without one, file is used as a COW file when its header says so
(unless d).  Without c the host files are locked (usermode/host/blockfile.py), so a second
instance cannot open the same writable image.

Each device counts its I/O for /proc/diskstats and is listed in /proc/partitions.
"""
from __future__ import annotations

import errno
import struct
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from usermode.drivers import cow, ubd_part
from usermode.fs.file import (SEEK_CUR, SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_SET, File,
                              POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM)
from usermode.host import blockfile
from usermode.host.blockfile import BlockFile, BlockFileError
from usermode.kernel.errors import Errno
from usermode.machine import BootError

if TYPE_CHECKING:
    from usermode.kernel.task import Task

UBD_MAJOR = 98
UBD_SHIFT = 4                   # 16 minors per device (partitions)
SECTOR = 512
MAX_DEV = 16                    # numbered devices: ubd0..ubd15
FLAGS = "rsdc"

BLKROSET, BLKROGET, BLKGETSIZE, BLKFLSBUF = 0x125D, 0x125E, 0x1260, 0x1261
BLKSSZGET, BLKBSZGET, BLKGETSIZE64 = 0x1268, 0x80081270, 0x80081272
BLKIOMIN, BLKIOOPT, BLKPBSZGET = 0x1278, 0x1279, 0x127B
HDIO_GETGEO = 0x0301


class UbdError(ValueError):
    """A bad ubd switch; str() is a one-line message."""


@dataclass
class UbdSpec:
    index: int
    file: str
    backing: str | None = None
    readonly: bool = False      # r
    sync: bool = False          # s
    data_only: bool = False     # d
    shared: bool = False        # c
    raw: str = ""

    @property
    def name(self) -> str:
        return "ubd" + chr(ord("a") + self.index)

    @property
    def minor(self) -> int:
        return self.index << UBD_SHIFT


def parse(switch: str) -> UbdSpec:
    """One `ubd<n><flags>=file[,backing]` switch."""
    key, eq, val = switch.partition("=")
    if not key.startswith("ubd"):
        raise UbdError(f"{switch}: not a ubd switch")
    rest = key[3:]
    if not rest:
        raise UbdError(f"{switch}: expected a device number or letter after 'ubd'")
    if rest[0].isdigit():
        digits = rest[:2] if rest[:2].isdigit() else rest[:1]
        index = int(digits)
        if index >= MAX_DEV:
            raise UbdError(f"{switch}: device number {index} out of range (0-{MAX_DEV - 1})")
        rest = rest[len(digits):]
    elif "a" <= rest[0] <= "z":
        index = ord(rest[0]) - ord("a")
        rest = rest[1:]
    else:
        raise UbdError(f"{switch}: expected a device number or letter after 'ubd'")
    spec = UbdSpec(index, "", raw=switch)
    for ch in rest:
        if ch == "r":
            spec.readonly = True
        elif ch == "s":
            spec.sync = True
        elif ch == "d":
            spec.data_only = True
        elif ch == "c":
            spec.shared = True
        else:
            raise UbdError(f"{switch}: unknown flag '{ch}' (flags are r, s, d, c)")
    if not eq or not val:
        raise UbdError(f"{switch}: expected {key}=FILE[,BACKING]")
    sep = "," if "," in val else ":"
    file, _, backing = val.partition(sep)
    if not file:
        raise UbdError(f"{switch}: no image file given")
    spec.file = file
    spec.backing = backing or None
    if spec.backing is not None and spec.data_only:
        raise UbdError(f"{switch}: can't specify both 'd' and a backing file")
    return spec


def parse_all(switches: list[str]) -> list[UbdSpec]:
    specs: dict[int, UbdSpec] = {}
    for s in switches:
        spec = parse(s)
        if spec.index in specs:
            raise UbdError(f"{s}: {spec.name} is already configured "
                           f"({specs[spec.index].raw})")
        specs[spec.index] = spec
    return [specs[i] for i in sorted(specs)]


class UbdDisk:
    """One opened ubd device: a plain image or a COW file over a backing file."""

    def __init__(self, spec: UbdSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.readonly = spec.readonly
        self.plain: BlockFile | None = None
        self.cow: cow.CowDevice | None = None
        self.warnings: list[str] = []
        # diskstats counters
        self.reads = self.rsectors = self.rms = 0
        self.writes = self.wsectors = self.wms = 0
        self.flushes = self.fms = 0
        self.files: weakref.WeakSet[UbdFile] = weakref.WeakSet()   # opens, for remove
        self.partitions: list[ubd_part.UbdPartition] = []          # from its MBR
        self._open()

    def _open(self) -> None:
        s = self.spec
        use_cow = s.backing is not None
        if not use_cow and not s.data_only:
            try:
                cow.open_cow(s.file)
                use_cow = True
            except cow.NotCowError:
                use_cow = False
            except cow.CowFormatError as e:
                raise UbdError(str(e)) from None
            except BlockFileError:
                use_cow = False         # let the open below report it
        if use_cow:
            fresh = s.backing is not None and not s.readonly and not blockfile.exists(s.file)
            try:
                self.cow = cow.CowDevice(s.file, s.backing, writable=not s.readonly,
                                         sync=s.sync, lock=not s.shared,
                                         create_missing=not s.readonly)
            except BaseException as e:
                # created for nothing (backing file locked ...); an EEXIST is someone else's
                if fresh and not (isinstance(e, OSError) and e.errno == errno.EEXIST):
                    blockfile.remove(s.file)
                raise
            self.warnings = list(self.cow.warnings)
            if self.cow.sectorsize % SECTOR:
                raise UbdError(f"{s.file}: COW sector size {self.cow.sectorsize} "
                               f"is not a multiple of {SECTOR}")
            self.size = self.cow.size // SECTOR * SECTOR
        else:
            self.plain = BlockFile(s.file, writable=not s.readonly, sync=s.sync,
                                   lock=not s.shared)
            self.size = self.plain.size() // SECTOR * SECTOR

    @property
    def sectors(self) -> int:
        return self.size // SECTOR

    # --- byte-granular I/O (the page cache's view of the device) ---------------------------
    def _cow_read(self, off: int, n: int) -> bytes:
        d = self.cow
        ss = d.sectorsize
        first, last = off // ss, (off + n + ss - 1) // ss
        data = d.read(first, last - first)
        start = off - first * ss
        return data[start:start + n]

    def _cow_write(self, off: int, data: bytes) -> None:
        d = self.cow
        ss = d.sectorsize
        first, last = off // ss, (off + len(data) + ss - 1) // ss
        start = off - first * ss
        if start or len(data) % ss:
            buf = bytearray(d.read(first, last - first))
            buf[start:start + len(data)] = data
            data = bytes(buf)
        d.write(first, data)

    def read(self, off: int, n: int) -> bytes:
        if off >= self.size or n <= 0:
            return b""
        n = min(n, self.size - off)
        t0 = time.monotonic()
        try:
            if self.cow is not None:
                data = self._cow_read(off, n)
            else:
                data = self.plain.pread(off, n)
                if len(data) < n:       # the host file shrank under us: reads as zeros
                    data += bytes(n - len(data))
        except (BlockFileError, cow.CowError):
            raise Errno(errno.EIO) from None
        self.reads += 1
        self.rsectors += (off + n + SECTOR - 1) // SECTOR - off // SECTOR
        self.rms += int((time.monotonic() - t0) * 1000)
        return data

    def write(self, off: int, data: bytes) -> int:
        if self.readonly:
            raise Errno(errno.EPERM)        # blkdev_write_iter on a read-only disk
        if not data:
            return 0
        if off >= self.size:
            raise Errno(errno.ENOSPC)
        data = bytes(data[:self.size - off])
        t0 = time.monotonic()
        try:
            if self.cow is not None:
                self._cow_write(off, data)
            else:
                self.plain.pwrite(off, data)
        except (BlockFileError, cow.CowError):
            raise Errno(errno.EIO) from None
        self.writes += 1
        self.wsectors += (off + len(data) + SECTOR - 1) // SECTOR - off // SECTOR
        self.wms += int((time.monotonic() - t0) * 1000)
        return len(data)

    def flush(self) -> None:
        if self.readonly:
            return
        t0 = time.monotonic()
        try:
            if self.cow is not None:
                self.cow.flush()
            else:
                self.plain.fsync()
        except (OSError, cow.CowError):
            raise Errno(errno.EIO) from None
        self.flushes += 1
        self.fms += int((time.monotonic() - t0) * 1000)

    def stats(self) -> list[int]:
        """The 17 /proc/diskstats counters (reads completed first)."""
        busy = self.rms + self.wms
        return [self.reads, 0, self.rsectors, self.rms,
                self.writes, 0, self.wsectors, self.wms,
                0, busy, busy + self.fms,
                0, 0, 0, 0,
                self.flushes, self.fms]

    def open(self, t: "Task | None", flags: int) -> "UbdFile":
        f = UbdFile(self, flags)
        self.files.add(f)
        return f

    @property
    def open_count(self) -> int:
        """Files of this disk still in some fd table (UML's ubd_dev->count)."""
        return sum(1 for f in self.files if f.refs > 0)

    def close(self) -> None:
        for f in (self.cow, self.plain):
            if f is not None:
                f.close()
        self.cow = self.plain = None


class UbdFile(File):
    """An open /dev/ubdX."""

    def __init__(self, disk: UbdDisk, flags: int) -> None:
        super().__init__(flags)
        self.disk = disk

    def poll(self) -> int:
        return POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM

    def read(self, t: "Task", n: int) -> bytes:
        data = self.disk.read(self.pos, n)
        self.pos += len(data)
        return data

    def pread(self, t: "Task", n: int, off: int) -> bytes:
        if off < 0:
            raise Errno(errno.EINVAL)
        return self.disk.read(off, n)

    def write(self, t: "Task", data: bytes) -> int:
        n = self.disk.write(self.pos, data)
        self.pos += n
        return n

    def pwrite(self, t: "Task", data: bytes, off: int) -> int:
        if off < 0:
            raise Errno(errno.EINVAL)
        return self.disk.write(off, data)

    def lseek(self, off: int, whence: int) -> int:
        size = self.disk.size
        if whence == SEEK_SET:
            new = off
        elif whence == SEEK_CUR:
            new = self.pos + off
        elif whence == SEEK_END:
            new = size + off
        elif whence == SEEK_DATA:
            if off < 0 or off >= size:
                raise Errno(errno.ENXIO)
            new = off
        elif whence == SEEK_HOLE:
            if off < 0 or off >= size:
                raise Errno(errno.ENXIO)
            new = size
        else:
            raise Errno(errno.EINVAL)
        if new < 0 or new > size:           # fixed_size_llseek
            raise Errno(errno.EINVAL)
        self.pos = new
        return new

    def fsync(self) -> None:
        self.disk.flush()

    def truncate(self, length: int) -> None:
        raise Errno(errno.EINVAL)

    def ioctl(self, t: "Task", cmd: int, arg: int) -> int:
        d, mm = self.disk, t.mm
        if cmd == BLKGETSIZE64:
            mm.write_u64(arg, d.size)
        elif cmd == BLKGETSIZE:
            mm.write_u64(arg, d.sectors)
        elif cmd in (BLKSSZGET, BLKPBSZGET, BLKIOMIN):
            mm.write_i32(arg, SECTOR)
        elif cmd == BLKBSZGET:
            mm.write_i32(arg, 4096 if d.size % 4096 == 0 else SECTOR)
        elif cmd == BLKIOOPT:
            mm.write_i32(arg, 0)
        elif cmd == BLKROGET:
            mm.write_i32(arg, 1 if d.readonly else 0)
        elif cmd == BLKROSET:
            if t.creds.euid != 0:
                raise Errno(errno.EACCES)
            # the disk itself stays read-only when the host image is (get_disk_ro())
            d.readonly = mm.read_i32(arg) != 0 or d.spec.readonly
        elif cmd == BLKFLSBUF:
            if t.creds.euid != 0:
                raise Errno(errno.EACCES)
            d.flush()
        elif cmd == HDIO_GETGEO:
            # ubd_getgeo(): 128 heads, 32 sectors per track
            mm.copy_out(arg, struct.pack("<BBHQ", 128, 32, d.size // (128 * 32 * SECTOR), 0))
        else:
            raise Errno(errno.ENOTTY)
        return 0

    def name(self) -> bytes:
        return b"/dev/" + self.disk.name.encode()


def attach(kernel, vfs, switches: list[str], disks: list[UbdDisk] | None = None) -> list[UbdDisk]:
    """Open every configured device and register it (/dev, /proc/partitions,
    /proc/diskstats).  Any failure is a one-line BootError, with nothing left open.
    `disks` already opened by open_all (for a root on ubd) are registered as they are."""
    if disks is None:
        disks = open_all(switches)
    return register(kernel, vfs, disks)


def open_all(switches: list[str]) -> list[UbdDisk]:
    """Open the configured devices (before the VFS exists, when the root is one of them)."""
    try:
        specs = parse_all(switches)
    except UbdError as e:
        raise BootError(str(e)) from None
    disks: list[UbdDisk] = []
    try:
        for spec in specs:
            try:
                disk = UbdDisk(spec)
            except (UbdError, cow.CowError, BlockFileError) as e:
                raise BootError(f"{spec.name}: {e}") from None
            disks.append(disk)
    except BaseException:
        for d in disks:
            d.close()
        raise
    return disks


def register(kernel, vfs, disks: list[UbdDisk]) -> list[UbdDisk]:
    from usermode.fs import procfs
    for d in disks:
        for w in d.warnings:
            kernel.printk(f"{d.name}: {w}")
        kind = "COW " if d.cow is not None else ""
        kernel.printk(f"{d.name}: {kind}image {d.spec.file} ({d.size >> 10} KiB"
                      f"{', read-only' if d.readonly else ''})")
        vfs.register_blkdev(UBD_MAJOR, d.spec.minor, d.open, d.name, 0o660)
        procfs.add_disk(kernel, d.name, UBD_MAJOR, d.spec.minor, d.size >> 10, d.stats)
        table, warnings = ubd_part.read_table(d)
        for w in warnings:
            kernel.printk(f"{d.name}: {w}")
        d.partitions = [ubd_part.UbdPartition(d, *entry) for entry in table]
        if d.partitions:
            kernel.printk(f" {d.name}: " + " ".join(p.name for p in d.partitions))
        for p in d.partitions:
            vfs.register_blkdev(UBD_MAJOR, p.minor, p.open, p.name, 0o660)
            procfs.add_disk(kernel, p.name, UBD_MAJOR, p.minor, p.size >> 10, p.stats)
    return disks


class UbdHotplug:
    """mconsole `config ubdb=FILE[,BACKING]`, `config ubdb`, `remove ubdb` (UML's
    ubd_config / ubd_get_config / ubd_remove). `disks` is the machine's list of open
    devices, which it closes at shutdown."""

    prefix = "ubd"

    def __init__(self, kernel, vfs, disks: list[UbdDisk]) -> None:
        self.kernel = kernel
        self.vfs = vfs
        self.disks = disks

    def _find(self, index: int) -> UbdDisk | None:
        return next((d for d in self.disks if d.spec.index == index), None)

    @staticmethod
    def _unit(name: str, out_of_range: str = "ubd_get_config : device number out of "
              "range") -> int:
        rest = name[len("ubd"):]
        if len(rest) == 1 and "a" <= rest <= "z":
            return ord(rest) - ord("a")
        if rest.isdigit() and int(rest) < MAX_DEV:
            return int(rest)
        from usermode.drivers.hotplug import HotplugError
        raise HotplugError(out_of_range if rest.isdigit() else "Couldn't parse device number")

    def config(self, name: str, conf: str) -> None:
        from usermode.drivers.hotplug import HotplugError
        try:
            spec = parse(f"{name}={conf}")
        except UbdError as e:
            raise HotplugError(str(e)) from None
        if self._find(spec.index) is not None:
            raise HotplugError("Device is already configured", -errno.EBUSY)
        try:
            disk = UbdDisk(spec)
        except (UbdError, cow.CowError, BlockFileError, OSError) as e:
            # the reply is UML's; the log says why
            self.kernel.printk(f"{spec.name}: {e}")
            code = getattr(e, "errno", None) or errno.EINVAL
            raise HotplugError("Couldn't determine size of device's file", -code) from None
        register(self.kernel, self.vfs, [disk])
        self.disks.append(disk)

    def query(self, name: str) -> str:
        disk = self._find(self._unit(name))
        if disk is None:
            return ""
        s = disk.spec
        return s.file + (f",{s.backing}" if s.backing else "")

    def busy(self, disk: UbdDisk) -> bool:
        """Open by a guest file or mounted (the kernel holds a mounted disk open)."""
        devs = {(UBD_MAJOR << 8) | disk.spec.minor}
        devs |= {(UBD_MAJOR << 8) | p.minor for p in disk.partitions}
        return disk.open_count > 0 or any(p.open_count for p in disk.partitions) or \
            any(m.sb.dev in devs for m in self.vfs.mounts)

    def remove(self, name: str) -> None:
        from usermode.drivers.hotplug import HotplugError
        from usermode.fs import procfs
        disk = self._find(self._unit(
            name, f"Invalid device number - must be between 0 and {MAX_DEV - 1}"))
        if disk is None:
            raise HotplugError("Device doesn't exist", -errno.ENODEV)
        if self.busy(disk):
            raise HotplugError("Device is currently open", -errno.EBUSY)
        for p in disk.partitions:
            self.vfs.devices.unregister(True, UBD_MAJOR, p.minor, p.name)
            procfs.remove_disk(self.kernel, p.name)
        self.vfs.devices.unregister(True, UBD_MAJOR, disk.spec.minor, disk.name)
        procfs.remove_disk(self.kernel, disk.name)
        self.disks.remove(disk)
        disk.close()
        self.kernel.printk(f"{disk.name}: removed")
