"""Linear ext2 directory blocks, write side: walking entries with their offsets, inserting
by splitting an entry's slack or reusing a free one, removing by merging into the
previous entry (or zeroing the inode of a block's first entry), as Linux's ext2 does.

An entry: inode u32, rec_len u16, name_len u8, file_type u8, name (padded to 4 bytes).
"""
from __future__ import annotations

import struct
from typing import Iterator, NamedTuple

from usermode.fs.ext2_disk import Ext2FormatError

HEADER = struct.Struct("<IHBB")

# S_IF* type bits -> directory entry file type
MODE_TO_FT = {0o100000: 1, 0o040000: 2, 0o020000: 3, 0o060000: 4, 0o010000: 5,
              0o140000: 6, 0o120000: 7}


class RawEntry(NamedTuple):
    off: int
    rec_len: int
    ino: int
    name: bytes
    file_type: int


def rec_len_for(name_len: int) -> int:
    """The smallest record that holds a name of this length."""
    return (8 + name_len + 3) & ~3


def iter_block(block, filetype: bool = True) -> Iterator[RawEntry]:
    """Every record of a block, live or free, with its offset; Ext2FormatError if the
    chain is broken."""
    off, n = 0, len(block)
    while off < n:
        if off + 8 > n:
            raise Ext2FormatError("corrupt directory entry")
        ino, rec_len, name_len, ftype = HEADER.unpack_from(block, off)
        if not filetype:
            name_len, ftype = name_len | (ftype << 8), 0
        if rec_len < 8 or rec_len % 4 or off + rec_len > n or 8 + name_len > rec_len:
            raise Ext2FormatError("corrupt directory entry")
        yield RawEntry(off, rec_len, ino, bytes(block[off + 8:off + 8 + name_len]), ftype)
        off += rec_len


def slack(e: RawEntry) -> int:
    """Bytes a new entry could take from this record."""
    return e.rec_len if e.ino == 0 else e.rec_len - rec_len_for(len(e.name))


def _records(block, filetype: bool) -> Iterator[tuple[int, int, int, int]]:
    """(offset, rec_len, inode, name_len) of every record: the hot loop of insert and
    max_slack, without building names."""
    off, n = 0, len(block)
    unpack = HEADER.unpack_from
    while off < n:
        if off + 8 > n:
            raise Ext2FormatError("corrupt directory entry")
        ino, rec_len, name_len, hi = unpack(block, off)
        if not filetype:
            name_len |= hi << 8
        if rec_len < 8 or rec_len & 3 or off + rec_len > n or 8 + name_len > rec_len:
            raise Ext2FormatError("corrupt directory entry")
        yield off, rec_len, ino, name_len
        off += rec_len


def max_slack(block, filetype: bool = True) -> int:
    best = 0
    for _off, rec_len, ino, name_len in _records(block, filetype):
        room = rec_len - ((8 + name_len + 3) & ~3) if ino else rec_len
        if room > best:
            best = room
    return best


def put_entry(block: bytearray, off: int, rec_len: int, ino: int, name: bytes,
              ftype: int, filetype: bool = True) -> None:
    if filetype:
        HEADER.pack_into(block, off, ino, rec_len, len(name), ftype)
    else:
        struct.pack_into("<IHH", block, off, ino, rec_len, len(name))
    block[off + 8:off + 8 + len(name)] = name
    pad = rec_len_for(len(name)) - 8 - len(name)
    block[off + 8 + len(name):off + 8 + len(name) + pad] = bytes(pad)


def insert(block: bytearray, name: bytes, ino: int, ftype: int,
           filetype: bool = True) -> int | None:
    """Put an entry in the first record with room; its offset, or None if full."""
    need = rec_len_for(len(name))
    for off, rec_len, e_ino, name_len in _records(block, filetype):
        if e_ino == 0 and rec_len >= need:
            put_entry(block, off, rec_len, ino, name, ftype, filetype)
            return off
        used = (8 + name_len + 3) & ~3
        if e_ino and rec_len - used >= need:
            struct.pack_into("<H", block, off + 4, used)
            put_entry(block, off + used, rec_len - used, ino, name, ftype, filetype)
            return off + used
    return None


def remove(block: bytearray, off: int, filetype: bool = True) -> None:
    """Delete the record at off: the previous record absorbs it, or, first in its block,
    it becomes a free record (inode 0)."""
    prev = None
    for e in iter_block(block, filetype):
        if e.off == off:
            if prev is None:
                struct.pack_into("<I", block, off, 0)
            else:
                struct.pack_into("<H", block, prev.off + 4, prev.rec_len + e.rec_len)
            return
        prev = e
    raise Ext2FormatError("directory entry vanished")


def set_inode(block: bytearray, off: int, ino: int, ftype: int, filetype: bool = True) -> None:
    struct.pack_into("<I", block, off, ino)
    if filetype:
        block[off + 7] = ftype


def empty_block(size: int) -> bytearray:
    b = bytearray(size)
    struct.pack_into("<IH", b, 0, 0, size)
    return b


def new_dir_block(size: int, ino: int, parent: int, filetype: bool = True) -> bytearray:
    """The first block of a new directory: "." and ".." taking the rest."""
    b = bytearray(size)
    put_entry(b, 0, 12, ino, b".", 2, filetype)
    put_entry(b, 12, size - 12, parent, b"..", 2, filetype)
    return b
