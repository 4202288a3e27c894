"""ext2/ext3/ext4 on-disk structures, read side: superblock, group descriptors, inodes,
extent trees, block maps and directory blocks (layout: the kernel's
Documentation/filesystems/ext4).  All fields are little-endian.

Nothing here knows about the VFS; ext2.py builds the filesystem on top.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

EXT2_MAGIC = 0xEF53
SUPERBLOCK_OFFSET = 1024
ROOT_INO = 2

# s_feature_incompat
INCOMPAT_COMPRESSION = 0x1
INCOMPAT_FILETYPE = 0x2
INCOMPAT_RECOVER = 0x4
INCOMPAT_JOURNAL_DEV = 0x8
INCOMPAT_META_BG = 0x10
INCOMPAT_EXTENTS = 0x40
INCOMPAT_64BIT = 0x80
INCOMPAT_MMP = 0x100
INCOMPAT_FLEX_BG = 0x200
INCOMPAT_EA_INODE = 0x400
INCOMPAT_DIRDATA = 0x1000
INCOMPAT_CSUM_SEED = 0x2000
INCOMPAT_LARGEDIR = 0x4000
INCOMPAT_INLINE_DATA = 0x8000
INCOMPAT_ENCRYPT = 0x10000
INCOMPAT_CASEFOLD = 0x20000

INCOMPAT_NAMES = {
    INCOMPAT_COMPRESSION: "compression", INCOMPAT_FILETYPE: "filetype",
    INCOMPAT_RECOVER: "needs_recovery", INCOMPAT_JOURNAL_DEV: "journal_dev",
    INCOMPAT_META_BG: "meta_bg", INCOMPAT_EXTENTS: "extent", INCOMPAT_64BIT: "64bit",
    INCOMPAT_MMP: "mmp", INCOMPAT_FLEX_BG: "flex_bg", INCOMPAT_EA_INODE: "ea_inode",
    INCOMPAT_DIRDATA: "dirdata", INCOMPAT_CSUM_SEED: "metadata_csum_seed",
    INCOMPAT_LARGEDIR: "large_dir", INCOMPAT_INLINE_DATA: "inline_data",
    INCOMPAT_ENCRYPT: "encrypt", INCOMPAT_CASEFOLD: "casefold",
}
# what this reader understands (xattrs are not read, so ea_inode does not matter;
# large_dir only deepens the htree, whose leaves we read linearly)
INCOMPAT_SUPPORTED = (INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG
                      | INCOMPAT_EA_INODE | INCOMPAT_CSUM_SEED | INCOMPAT_LARGEDIR)

# s_feature_ro_compat
RO_COMPAT_HUGE_FILE = 0x8
RO_COMPAT_DIR_NLINK = 0x20

# i_flags
EXT4_HUGE_FILE_FL = 0x40000
EXT4_EXTENTS_FL = 0x80000
EXT4_INLINE_DATA_FL = 0x10000000

EXTENT_MAGIC = 0xF30A
EXT_INIT_MAX_LEN = 1 << 15

N_BLOCKS = 15
NDIR_BLOCKS = 12

# directory entry file types -> S_IF* type bits
FT_TO_MODE = {1: 0o100000, 2: 0o040000, 3: 0o020000, 4: 0o060000, 5: 0o010000,
              6: 0o140000, 7: 0o120000}


class Ext2FormatError(ValueError):
    """The image is not a usable ext2/3/4 filesystem; str() is a one-line reason."""


def _u16(b: bytes, o: int) -> int:
    return int.from_bytes(b[o:o + 2], "little")


def _u32(b: bytes, o: int) -> int:
    return int.from_bytes(b[o:o + 4], "little")


@dataclass
class Superblock:
    inodes_count: int
    blocks_count: int
    r_blocks_count: int
    free_blocks_count: int
    free_inodes_count: int
    first_data_block: int
    log_block_size: int
    blocks_per_group: int
    inodes_per_group: int
    magic: int
    state: int
    rev_level: int
    first_ino: int
    inode_size: int
    feature_compat: int
    feature_incompat: int
    feature_ro_compat: int
    uuid: bytes
    volume_name: bytes
    desc_size: int

    @property
    def block_size(self) -> int:
        return 1024 << self.log_block_size

    @property
    def group_count(self) -> int:
        n = self.blocks_count - self.first_data_block
        return (n + self.blocks_per_group - 1) // self.blocks_per_group

    @classmethod
    def parse(cls, raw: bytes) -> "Superblock":
        if len(raw) < 1024:
            raise Ext2FormatError("image too small for an ext2 superblock")
        magic = _u16(raw, 0x38)
        if magic != EXT2_MAGIC:
            raise Ext2FormatError(f"bad superblock magic 0x{magic:04x} (not ext2/3/4)")
        rev = _u32(raw, 0x4C)
        incompat = _u32(raw, 0x60)
        sb = cls(
            inodes_count=_u32(raw, 0x0),
            blocks_count=_u32(raw, 0x4) | ((_u32(raw, 0x150) << 32)
                                           if incompat & INCOMPAT_64BIT else 0),
            r_blocks_count=_u32(raw, 0x8) | ((_u32(raw, 0x154) << 32)
                                             if incompat & INCOMPAT_64BIT else 0),
            free_blocks_count=_u32(raw, 0xC) | ((_u32(raw, 0x158) << 32)
                                                if incompat & INCOMPAT_64BIT else 0),
            free_inodes_count=_u32(raw, 0x10),
            first_data_block=_u32(raw, 0x14),
            log_block_size=_u32(raw, 0x18),
            blocks_per_group=_u32(raw, 0x20),
            inodes_per_group=_u32(raw, 0x28),
            magic=magic,
            state=_u16(raw, 0x3A),
            rev_level=rev,
            first_ino=_u32(raw, 0x54) if rev >= 1 else 11,
            inode_size=_u16(raw, 0x58) if rev >= 1 else 128,
            feature_compat=_u32(raw, 0x5C) if rev >= 1 else 0,
            feature_incompat=incompat if rev >= 1 else 0,
            feature_ro_compat=_u32(raw, 0x64) if rev >= 1 else 0,
            uuid=bytes(raw[0x68:0x78]),
            volume_name=bytes(raw[0x78:0x88]).rstrip(b"\0"),
            desc_size=_u16(raw, 0xFE) if incompat & INCOMPAT_64BIT else 32,
        )
        sb.validate()
        return sb

    def validate(self) -> None:
        if self.log_block_size > 6:
            raise Ext2FormatError(f"unsupported block size 2^{10 + self.log_block_size}")
        if self.blocks_per_group == 0 or self.inodes_per_group == 0:
            raise Ext2FormatError("corrupt superblock (zero blocks or inodes per group)")
        if self.blocks_per_group > 8 * self.block_size:
            raise Ext2FormatError("corrupt superblock (blocks per group)")
        if self.inode_size < 128 or self.inode_size > self.block_size or \
                self.inode_size & (self.inode_size - 1):
            raise Ext2FormatError(f"unsupported inode size {self.inode_size}")
        if self.feature_incompat & INCOMPAT_64BIT and \
                (self.desc_size < 32 or self.desc_size & (self.desc_size - 1)):
            raise Ext2FormatError(f"bad group descriptor size {self.desc_size}")
        if self.blocks_count <= self.first_data_block:
            raise Ext2FormatError("corrupt superblock (block count)")

    def unsupported_incompat(self) -> list[str]:
        bad = self.feature_incompat & ~INCOMPAT_SUPPORTED
        names = []
        for bit in range(32):
            if bad & (1 << bit):
                names.append(INCOMPAT_NAMES.get(1 << bit, f"0x{1 << bit:x}"))
        return names


@dataclass
class GroupDesc:
    block_bitmap: int
    inode_bitmap: int
    inode_table: int

    @classmethod
    def parse(cls, raw: bytes, size: int) -> "GroupDesc":
        bb, ib, it = _u32(raw, 0), _u32(raw, 4), _u32(raw, 8)
        if size >= 64:
            bb |= _u32(raw, 0x20) << 32
            ib |= _u32(raw, 0x24) << 32
            it |= _u32(raw, 0x28) << 32
        return cls(bb, ib, it)


def decode_time(secs: int, extra: int | None) -> int:
    """A timestamp in ns: signed 32-bit seconds, extended by the extra word's two epoch
    bits, whose upper 30 bits are the nanoseconds."""
    s = secs - (1 << 32) if secs & 0x80000000 else secs
    ns = 0
    if extra is not None:
        s += (extra & 3) << 32
        ns = extra >> 2
        if ns > 999_999_999:
            ns = 0
    return s * 1_000_000_000 + ns


def decode_rdev(i_block: bytes) -> tuple[int, int]:
    """(major, minor) of a device inode: the old 16-bit encoding in i_block[0], or the
    new 32-bit one in i_block[1] when i_block[0] is zero."""
    old = _u32(i_block, 0)
    if old:
        return (old >> 8) & 0xFF, old & 0xFF
    new = _u32(i_block, 4)
    return (new & 0xFFF00) >> 8, (new & 0xFF) | ((new >> 12) & 0xFFF00)


@dataclass
class RawInode:
    mode: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    ctime_ns: int
    mtime_ns: int
    crtime_ns: int | None
    links_count: int
    blocks: int             # in 512-byte units
    flags: int
    i_block: bytes
    file_acl: int

    @classmethod
    def parse(cls, raw: bytes, sb: Superblock) -> "RawInode":
        mode = _u16(raw, 0)
        flags = _u32(raw, 0x20)
        extra_isize = _u16(raw, 0x80) if sb.inode_size > 128 and len(raw) > 0x82 else 0
        end = 128 + extra_isize

        def extra(off: int) -> int | None:
            return _u32(raw, off) if off + 4 <= end else None

        blocks = _u32(raw, 0x1C)
        if sb.feature_ro_compat & RO_COMPAT_HUGE_FILE:
            blocks |= _u16(raw, 0x74) << 32
            if flags & EXT4_HUGE_FILE_FL:
                blocks *= sb.block_size // 512
        crtime = None
        if extra(0x90) is not None:
            crtime = decode_time(_u32(raw, 0x90), extra(0x94))
        return cls(
            mode=mode,
            uid=_u16(raw, 0x2) | (_u16(raw, 0x78) << 16),
            gid=_u16(raw, 0x18) | (_u16(raw, 0x7A) << 16),
            size=_u32(raw, 0x4) | (_u32(raw, 0x6C) << 32),
            atime_ns=decode_time(_u32(raw, 0x8), extra(0x8C)),
            ctime_ns=decode_time(_u32(raw, 0xC), extra(0x84)),
            mtime_ns=decode_time(_u32(raw, 0x10), extra(0x88)),
            crtime_ns=crtime,
            links_count=_u16(raw, 0x1A),
            blocks=blocks,
            flags=flags,
            i_block=bytes(raw[0x28:0x28 + 60]),
            file_acl=_u32(raw, 0x68) | (_u16(raw, 0x76) << 32),
        )


@dataclass(frozen=True)
class Extent:
    lblk: int               # first logical block
    length: int
    pblk: int               # first physical block
    uninit: bool            # allocated but unwritten: reads as zeros


def parse_extent_node(node: bytes) -> tuple[int, list]:
    """(depth, entries) of one extent tree node: Extent for leaves (depth 0), else
    (first logical block, child physical block) index entries."""
    if len(node) < 12 or _u16(node, 0) != EXTENT_MAGIC:
        raise Ext2FormatError("bad extent header")
    entries, depth = _u16(node, 2), _u16(node, 6)
    if 12 + 12 * entries > len(node):
        raise Ext2FormatError("extent header entry count overflows its node")
    out: list = []
    for i in range(entries):
        o = 12 + 12 * i
        lblk = _u32(node, o)
        if depth == 0:
            ln = _u16(node, o + 4)
            pblk = (_u16(node, o + 6) << 32) | _u32(node, o + 8)
            uninit = ln > EXT_INIT_MAX_LEN
            out.append(Extent(lblk, ln - EXT_INIT_MAX_LEN if uninit else ln, pblk, uninit))
        else:
            child = _u32(node, o + 4) | (_u16(node, o + 8) << 32)
            out.append((lblk, child))
    return depth, out


def walk_extents(root: bytes, read_block: Callable[[int], bytes], limit: int = 5) -> list[Extent]:
    """All leaf extents of a tree whose root node is i_block, in logical order."""
    result: list[Extent] = []

    def visit(node: bytes, level: int, expect: int | None) -> None:
        depth, entries = parse_extent_node(node)
        if expect is not None and depth != expect:
            raise Ext2FormatError("extent tree depth mismatch")
        if depth > limit or level > limit:
            raise Ext2FormatError("extent tree too deep")
        if depth == 0:
            result.extend(entries)
            return
        for _lblk, child in entries:
            visit(read_block(child), level + 1, depth - 1)

    visit(root, 0, None)
    result.sort(key=lambda e: e.lblk)
    return result


@dataclass(frozen=True)
class DirEntry:
    ino: int
    name: bytes
    file_type: int          # the on-disk 1..7 code, 0 when unknown


def parse_dir_block(block: bytes, filetype: bool) -> list[DirEntry]:
    """The live entries of one linear directory block.  htree interior nodes and the
    root's dx_root_info hide in entries with inode 0 or inside the ".." entry's
    rec_len, and the metadata_csum tail is an inode-0 entry, so all are skipped."""
    out: list[DirEntry] = []
    off, n = 0, len(block)
    while off + 8 <= n:
        ino = _u32(block, off)
        rec_len = _u16(block, off + 4)
        if rec_len in (0, 65535) and n >= 65536:
            rec_len = n                 # 64 KiB blocks: the whole block
        if rec_len < 8 or rec_len % 4 or off + rec_len > n:
            raise Ext2FormatError("corrupt directory entry")
        if filetype:
            name_len, ftype = block[off + 6], block[off + 7]
        else:
            name_len, ftype = _u16(block, off + 6), 0
        if ino and 8 + name_len <= rec_len:
            name = bytes(block[off + 8:off + 8 + name_len])
            if name not in (b".", b".."):
                out.append(DirEntry(ino, name, ftype if ftype <= 7 else 0))
        off += rec_len
    return out


# -- write side -------------------------------------------------------------------------

# s_feature_compat
COMPAT_DIR_PREALLOC = 0x1
COMPAT_HAS_JOURNAL = 0x4
COMPAT_EXT_ATTR = 0x8
COMPAT_RESIZE_INODE = 0x10
COMPAT_DIR_INDEX = 0x20
# s_feature_ro_compat
RO_COMPAT_SPARSE_SUPER = 0x1
RO_COMPAT_LARGE_FILE = 0x2
RO_COMPAT_EXTRA_ISIZE = 0x40
# what the writer keeps consistent; anything else mounts read-only
RW_COMPAT = (COMPAT_DIR_PREALLOC | COMPAT_HAS_JOURNAL | COMPAT_EXT_ATTR | COMPAT_RESIZE_INODE
             | COMPAT_DIR_INDEX)
RW_INCOMPAT = INCOMPAT_FILETYPE
RW_RO_COMPAT = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_EXTRA_ISIZE

EXT2_VALID_FS = 1
EXT2_INDEX_FL = 0x1000
JBD2_MAGIC = 0xC03B3998

# superblock field offsets
SB_FREE_BLOCKS, SB_FREE_INODES, SB_MTIME, SB_WTIME = 0x0C, 0x10, 0x2C, 0x30
SB_MNT_COUNT, SB_STATE, SB_RO_COMPAT, SB_JOURNAL_INUM = 0x34, 0x3A, 0x64, 0xE0
SB_FREE_BLOCKS_HI, SB_WANT_EXTRA_ISIZE = 0x158, 0x15E


def feature_names(bits: int, table: dict[int, str] | None = None) -> list[str]:
    return [(table or {}).get(1 << b, f"0x{1 << b:x}") for b in range(32) if bits & (1 << b)]


def encode_time(ns: int) -> tuple[int, int]:
    """(32-bit seconds, extra word) of a timestamp in ns (the inverse of decode_time)."""
    secs, nsec = divmod(ns, 1_000_000_000)
    lo = secs & 0xFFFFFFFF
    signed = lo - (1 << 32) if lo & 0x80000000 else lo
    epoch = ((secs - signed) >> 32) & 3
    return lo, epoch | (nsec << 2)


def encode_rdev(major: int, minor: int) -> bytes:
    """i_block's first two words for a device inode: the old 16-bit form when it fits,
    else the new 32-bit one in word 1 (as Linux's ext2 writes them)."""
    if major < 256 and minor < 256:
        return struct.pack("<II", (major << 8) | minor, 0)
    new = (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)
    return struct.pack("<II", 0, new & 0xFFFFFFFF)


def pack_inode(slot: bytearray, *, mode: int, uid: int, gid: int, size: int, atime_ns: int,
               ctime_ns: int, mtime_ns: int, crtime_ns: int | None, dtime: int,
               links: int, blocks: int, flags: int, i_block: bytes, file_acl: int) -> None:
    """Patch an inode's fields into its on-disk slot (bytes we don't model are kept).
    Times get their nanosecond/epoch extra words when i_extra_isize covers them."""
    struct.pack_into("<HH", slot, 0, mode & 0xFFFF, uid & 0xFFFF)
    struct.pack_into("<I", slot, 0x4, size & 0xFFFFFFFF)
    struct.pack_into("<I", slot, 0x6C, size >> 32)
    struct.pack_into("<HH", slot, 0x18, gid & 0xFFFF, links)
    struct.pack_into("<II", slot, 0x1C, blocks & 0xFFFFFFFF, flags)
    struct.pack_into("<I", slot, 0x14, dtime)
    slot[0x28:0x28 + 60] = i_block
    struct.pack_into("<I", slot, 0x68, file_acl & 0xFFFFFFFF)
    struct.pack_into("<HH", slot, 0x78, uid >> 16, gid >> 16)
    extra_isize = struct.unpack_from("<H", slot, 0x80)[0] if len(slot) > 128 else 0
    end = 128 + extra_isize
    for base, extra, ns in ((0x8, 0x8C, atime_ns), (0xC, 0x84, ctime_ns),
                            (0x10, 0x88, mtime_ns)):
        lo, ex = encode_time(ns)
        struct.pack_into("<I", slot, base, lo)
        if extra + 4 <= end:
            struct.pack_into("<I", slot, extra, ex)
    if crtime_ns is not None and 0x98 <= end:
        lo, ex = encode_time(crtime_ns)
        struct.pack_into("<II", slot, 0x90, lo, ex)
