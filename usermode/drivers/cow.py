"""UML copy-on-write files ("MOOO"), byte-compatible with the real UML kernel and uml_moo.

A COW file holds a header naming a backing file, a bitmap with one bit per sector (set:
the sector lives in the COW file) and the data area, laid out like the backing file.

V3 header, as UML >= 2.6.15 writes it (packed, big-endian, 4128 bytes):

    offset  size  field
         0     4  magic       0x4f4f4f4d ("MOOO")
         4     4  version     3
         8     4  mtime       backing file mtime, seconds, truncated to 32 bits
        12     8  size        backing file size in bytes
        20     4  sectorsize  512
        24     4  alignment   4096 (PAGE_SIZE) for COW files ubd creates
        28     4  cow_format  0 = bitmap
        32  4096  backing_file  absolute path, NUL-terminated

    bitmap_offset = round_up(4128, alignment)                 (8192 with alignment 4096)
    bitmap_len    = ceil(ceil(size / sectorsize) / 8)
    data_offset   = round_up(bitmap_offset + bitmap_len, alignment)
    sector s of the device is at data_offset + s * sectorsize; bit s is bit (s % 8) of
    bitmap byte s // 8 (the little-endian unsigned-long bitmap of ubd_test_bit()).
    The file is made data_offset + size bytes long (sparse) at creation.

Also read, as cow_user.c does: V1 (native byte order, 256-byte path first, 280 bytes),
V2 (big-endian, 4096-byte path first, 4120 bytes), and the "broken" V3 written by 64-bit
binaries before the header was packed (4 bytes of padding after mtime, 4136 bytes), which is
recognised by the four zero bytes where the packed layout has the path.

Everything that touches the host goes through usermode.host.blockfile.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from usermode.host import blockfile
from usermode.host.blockfile import BlockFile, BlockFileError, ImageLockedError  # noqa: F401

COW_MAGIC = 0x4F4F4F4D          # "MOOO" in big-endian
COW_VERSION = 3
COW_BITMAP = 0
PATH_LEN_V1 = 256
PATH_LEN_V2 = PATH_LEN_V3 = 4096

V1_FMT = "<ii256sIQi"           # native (x86: little-endian), packed: 280 bytes
V2_FMT = ">II4096sIQi"          # 4120 bytes
V3_FMT = ">IIIQIII4096s"        # 4128 bytes
V3_BROKEN_FMT = ">III4xQIII4096s4x"     # mtime in a 64-bit slot (its first 4 bytes hold
#                                         the htonl() value), struct padded to 8: 4136
V1_SIZE = struct.calcsize(V1_FMT)
V2_SIZE = struct.calcsize(V2_FMT)
V3_SIZE = struct.calcsize(V3_FMT)
V3_BROKEN_SIZE = struct.calcsize(V3_BROKEN_FMT)
HEADER_READ = max(V1_SIZE, V2_SIZE, V3_SIZE, V3_BROKEN_SIZE)    # sizeof(union cow_header)

UBD_SECTOR_SIZE = 512           # what ubd creates COW files with ...
UBD_ALIGNMENT = 4096            # ... and PAGE_SIZE alignment


class CowError(ValueError):
    """A COW file is unusable; str() is a one-line message.

    uml_messages: what cow_user.c's read_cow_header() prints (cow_printf) for this case,
    which uml_moo reproduces on stdout."""

    def __init__(self, message: str, uml_messages: list[str] | None = None):
        super().__init__(message)
        self.uml_messages = list(uml_messages or [])


class NotCowError(CowError):
    """The file has no COW magic (UML then treats it as a plain image)."""


class CowFormatError(CowError):
    """A COW file with a truncated or inconsistent header or bitmap."""


class BackingMismatchError(CowError):
    """The backing file's size or mtime changed since the COW file was made."""


def _div_round(x: int, n: int) -> int:
    return (x + n - 1) // n


def _round_up(x: int, n: int) -> int:
    return _div_round(x, n) * n


def cow_sizes(version: int, size: int, sectorsize: int, align: int,
              bitmap_offset: int) -> tuple[int, int]:
    """(bitmap_len, data_offset) as cow_user.c's cow_sizes() computes them."""
    if version < 3:
        # V1/V2 keep their historical rounding (which can be a byte short).
        bitmap_len = (size + sectorsize - 1) // (8 * sectorsize)
        data_offset = _round_up(bitmap_offset + bitmap_len, sectorsize)
    else:
        bitmap_len = _div_round(_div_round(size, sectorsize), 8)
        data_offset = _round_up(bitmap_offset + bitmap_len, align)
    return bitmap_len, data_offset


@dataclass
class CowHeader:
    version: int
    backing_file: str
    mtime: int
    size: int
    sectorsize: int
    alignment: int
    cow_format: int
    bitmap_offset: int
    bitmap_len: int
    data_offset: int
    layout: str = "v3"          # "v1", "v2", "v3" or "v3-broken"
    notices: tuple = ()         # read_cow_header()'s non-fatal messages

    @property
    def sectors(self) -> int:
        """Number of whole sectors (what uml_moo copies)."""
        return self.size // self.sectorsize

    @property
    def file_size(self) -> int:
        """Length of a freshly created COW file."""
        return self.data_offset + self.size


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def parse_header(buf: bytes, name: str = "COW file") -> CowHeader:
    """Decode a COW header from the first bytes of a file (read_cow_header())."""
    notices: list[str] = []
    if len(buf) < 8:
        raise CowFormatError(f"{name}: short COW header ({len(buf)} bytes)",
                             ["read_cow_header - short header"])
    magic_native = struct.unpack_from("<I", buf, 0)[0]
    if magic_native == COW_MAGIC:
        version = struct.unpack_from("<I", buf, 4)[0]
    elif struct.unpack_from(">I", buf, 0)[0] == COW_MAGIC:
        version = struct.unpack_from(">I", buf, 4)[0]
    else:
        raise NotCowError(f"{name}: not a COW file (no MOOO magic)")

    def need(n: int, what: str) -> None:
        if len(buf) < n:
            raise CowFormatError(f"{name}: truncated {what} COW header ({len(buf)} of {n} bytes)",
                                 notices + [f"read_cow_header - failed to read {what} header"])

    fmt_ok = True
    if version == 1:
        need(V1_SIZE, "V1")
        _, _, path, mtime, size, ss = struct.unpack_from(V1_FMT, buf)
        align, cow_format, bitmap_offset, layout = ss, COW_BITMAP, V1_SIZE, "v1"
    elif version == 2:
        need(V2_SIZE, "V2")
        _, _, path, mtime, size, ss = struct.unpack_from(V2_FMT, buf)
        align, cow_format, bitmap_offset, layout = ss, COW_BITMAP, V2_SIZE, "v2"
    elif version == 3 and buf[32:36] != b"\0\0\0\0" and len(buf) >= 36:
        need(V3_SIZE, "V3")
        _, _, mtime, size, ss, align, cow_format, path = struct.unpack_from(V3_FMT, buf)
        layout = "v3"
        fmt_ok = align > 0
        bitmap_offset = _round_up(V3_SIZE, align) if fmt_ok else 0
    elif version == 3:
        notices.append("read_cow_header - broken V3 file with 64-bit layout - recovering content.")
        need(V3_BROKEN_SIZE, "V3")
        _, _, mtime, size, ss, align, cow_format, path = struct.unpack_from(V3_BROKEN_FMT, buf)
        layout = "v3-broken"
        fmt_ok = align > 0
        bitmap_offset = _round_up(V3_BROKEN_SIZE, align) if fmt_ok else 0
    else:
        raise CowFormatError(f"{name}: invalid COW version {version}",
                             ["read_cow_header - invalid COW version"])
    if not fmt_ok:
        raise CowFormatError(f"{name}: invalid COW header, align == 0",
                             notices + ["read_cow_header - invalid COW header, align == 0"])
    if ss <= 0 or ss % 512 or ss > (1 << 20):
        raise CowFormatError(f"{name}: invalid COW header, sector size {ss}", notices)
    if cow_format != COW_BITMAP:
        raise CowFormatError(f"{name}: unsupported COW format {cow_format}", notices)
    bitmap_len, data_offset = cow_sizes(version, size, ss, align, bitmap_offset)
    return CowHeader(version, _cstr(path), mtime, size, ss, align, cow_format,
                     bitmap_offset, bitmap_len, data_offset, layout, tuple(notices))


def pack_header_v3(backing_file: str, mtime: int, size: int,
                   sectorsize: int = UBD_SECTOR_SIZE, alignment: int = UBD_ALIGNMENT) -> bytes:
    """The 4128-byte V3 header exactly as write_cow_header() lays it out (path NUL-padded)."""
    raw = backing_file.encode("utf-8", "surrogateescape")
    if len(raw) > PATH_LEN_V3 - 1:
        raise CowError(f'Backing file name "{backing_file}" is too long - names are limited '
                       f"to {PATH_LEN_V3 - 1} characters")
    return struct.pack(V3_FMT, COW_MAGIC, COW_VERSION, mtime & 0xFFFFFFFF, size,
                       sectorsize, alignment, COW_BITMAP, raw)


def read_header(f: BlockFile) -> CowHeader:
    return parse_header(f.pread(0, HEADER_READ), f.path)


def open_cow(path: str) -> CowHeader:
    """Read and decode the header of the COW file at path (no lock taken)."""
    with BlockFile(path, writable=False, lock=False) as f:
        return read_header(f)


def is_cow(path: str) -> bool:
    try:
        open_cow(path)
        return True
    except (CowError, BlockFileError):
        return False


def check_backing(header: CowHeader, backing_path: str | None = None) -> None:
    """Raise BackingMismatchError unless the backing file still has the header's size and
    mtime (ubd_kern.c backing_file_mismatch(), with its messages)."""
    path = backing_path or header.backing_file
    try:
        size, mtime = blockfile.stat_file(path)
    except BlockFileError as e:
        raise BackingMismatchError(f'Backing file "{path}" of COW file: {e}') from None
    if size != header.size:
        raise BackingMismatchError(f"Size mismatch ({header.size} vs {size}) of COW header "
                                   f'vs backing file "{path}"')
    if header.version < 3:
        mtime_ok = (mtime & 0xFFFFFFFF) == header.mtime
    else:
        mtime_ok = mtime == header.mtime
    if not mtime_ok:
        raise BackingMismatchError(f"mtime mismatch ({header.mtime} vs {mtime}) of COW header "
                                   f'vs backing file "{path}"')


def _init_cow(f: BlockFile, backing_path: str, sectorsize: int, alignment: int,
              size: int | None) -> CowHeader:
    """init_cow_file(): header at 0, then one zero byte at the last data byte to set EOF
    (which also leaves the whole bitmap zero without writing it)."""
    absolute = blockfile.absolutize(backing_path)
    bsize, mtime = blockfile.stat_file(absolute)
    if size is None:
        size = bsize
    hdr = pack_header_v3(absolute, mtime, size, sectorsize, alignment)
    f.pwrite(0, hdr)
    h = parse_header(hdr + b"\0" * (HEADER_READ - len(hdr)), f.path)
    f.pwrite(h.data_offset + size - 1, b"\0")
    return h


def create(cow_path: str, backing_path: str, size: int | None = None,
           sectorsize: int = UBD_SECTOR_SIZE, alignment: int = UBD_ALIGNMENT) -> CowHeader:
    """Create a new COW file for backing_path, as UML does for ubdN=cow,backing when cow does
    not exist.  size defaults to the backing file's size (the only thing UML writes)."""
    if alignment <= 0 or sectorsize <= 0:
        raise CowError("sector size and alignment must be positive")
    f = BlockFile(cow_path, writable=True, create="excl", mode=0o644, lock=False)
    try:
        return _init_cow(f, backing_path, sectorsize, alignment, size)
    except BaseException:
        f.close()
        blockfile.remove(cow_path)      # don't leave a half-made COW file behind
        raise
    finally:
        f.close()


class CowDevice:
    """A block device backed by a COW file over a read-only backing file.

    Sectors are header.sectorsize bytes.  read() takes each sector from the COW file when its
    bitmap bit is set and from the backing file otherwise; write() puts data in the COW file
    and sets the bits.
    """

    def __init__(self, cow_path: str, backing_path: str | None = None, *,
                 writable: bool = True, sync: bool = False, lock: bool = True,
                 create_missing: bool = True):
        self.cow_path = cow_path
        self.writable = writable
        self.switched = False
        self.warnings: list[str] = []       # UML's printk()s that are not errors
        if backing_path is not None and create_missing and not blockfile.exists(cow_path):
            create(cow_path, backing_path)
        self.cow = BlockFile(cow_path, writable=writable, sync=sync, lock=lock)
        try:
            self.header = h = read_header(self.cow)
            self._open_backing(backing_path, lock)
            raw = self.cow.pread(h.bitmap_offset, h.bitmap_len)
            if len(raw) != h.bitmap_len:
                raise CowFormatError(f"{cow_path}: truncated COW file (bitmap needs "
                                     f"{h.bitmap_len} bytes at {h.bitmap_offset}, "
                                     f"file has {self.cow.size()})")
            self.bitmap = bytearray(raw)
        except BaseException:
            self.close()
            raise

    def _open_backing(self, requested: str | None, lock: bool) -> None:
        """open_ubd_file()'s backing file choice: the one in the header, unless another one
        was asked for and it matches the header's size and mtime (then the header is
        rewritten to name it: "Switching backing file")."""
        h = self.header
        path = h.backing_file
        if requested is not None and requested != h.backing_file and \
                not blockfile.same_file(requested, h.backing_file):
            self.warnings.append(f'Backing file mismatch - "{requested}" requested, '
                                 f'"{h.backing_file}" specified in COW header of "{self.cow_path}"')
            try:
                check_backing(h, requested)
                ok = True
            except BackingMismatchError:
                ok = False
            if ok and self.writable:
                new = blockfile.absolutize(requested)
                self.cow.pwrite(0, pack_header_v3(new, h.mtime, h.size, h.sectorsize, h.alignment))
                h.backing_file = path = new
                self.switched = True
                self.warnings.append(f"Switching backing file to '{new}'")
            elif ok:
                path = requested
        check_backing(h, path)
        self.backing_path = path
        self.backing = BlockFile(path, writable=False, lock=lock)

    # --- geometry ------------------------------------------------------------------------------
    @property
    def sectorsize(self) -> int:
        return self.header.sectorsize

    @property
    def size(self) -> int:
        return self.header.size

    @property
    def sectors(self) -> int:
        return _div_round(self.header.size, self.header.sectorsize)

    def test_bit(self, sector: int) -> bool:
        return bool(self.bitmap[sector >> 3] & (1 << (sector & 7)))

    def _check(self, sector: int, count: int) -> None:
        if sector < 0 or count < 0 or sector + count > self.sectors:
            raise CowError(f"{self.cow_path}: sectors {sector}..{sector + count} "
                           f"beyond the device ({self.sectors} sectors)")

    # --- I/O --------------------------------------------------------------------------------------
    def read(self, sector: int, count: int) -> bytes:
        """count sectors starting at sector."""
        self._check(sector, count)
        ss, h = self.sectorsize, self.header
        out = bytearray()
        s, end = sector, sector + count
        while s < end:
            bit = self.test_bit(s)
            run = s + 1
            while run < end and self.test_bit(run) == bit:
                run += 1
            n = (run - s) * ss
            if bit:
                data = self.cow.pread(h.data_offset + s * ss, n)
            else:
                data = self.backing.pread(s * ss, n)
            if len(data) < n:           # the backing file's partial last sector, or a
                data += b"\0" * (n - len(data))     # sparse COW end: reads as zeros
            out += data
            s = run
        return bytes(out)

    def write(self, sector: int, data) -> None:
        """Write whole sectors starting at sector."""
        if not self.writable:
            raise CowError(f"{self.cow_path}: device is read-only")
        ss, h = self.sectorsize, self.header
        if len(data) % ss:
            raise CowError(f"write of {len(data)} bytes is not a multiple of {ss}-byte sectors")
        count = len(data) // ss
        self._check(sector, count)
        if count == 0:
            return
        # Crash ordering (as ubd's do_io then update_bitmap): the data goes to the COW file
        # FIRST, and only then the bitmap bytes that cover it.  Killed in between, the bit
        # is still clear and the sector still reads from the backing file (the write simply
        # did not happen); a set bit never points at data that was not written.
        self.cow.pwrite(h.data_offset + sector * ss, data)
        first, last = sector >> 3, (sector + count - 1) >> 3
        changed = False
        for s in range(sector, sector + count):
            m = 1 << (s & 7)
            if not self.bitmap[s >> 3] & m:
                self.bitmap[s >> 3] |= m
                changed = True
        if changed:
            self.cow.pwrite(h.bitmap_offset + first, bytes(self.bitmap[first:last + 1]))

    def flush(self) -> None:
        if self.writable:
            self.cow.fsync()

    def close(self) -> None:
        for f in (getattr(self, "cow", None), getattr(self, "backing", None)):
            if f is not None:
                f.close()

    def __enter__(self) -> "CowDevice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
