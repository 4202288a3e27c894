"""ext2 block and inode allocation: the per-group bitmaps, with the free counts kept in
step in the group descriptors (bg_free_blocks_count, bg_free_inodes_count,
bg_used_dirs_count) and the superblock (s_free_blocks_count, s_free_inodes_count).

Bitmap blocks go through the filesystem's metadata cache (fs.meta / fs.mark_dirty) and
are written at the end of the operation, with the descriptors and superblock.
"""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.fs.ext2 import Ext2FS

# group descriptor fields: (low offset, high offset in 64-byte descriptors)
GD_FREE_BLOCKS = (0x0C, 0x2C)
GD_FREE_INODES = (0x0E, 0x2E)
GD_USED_DIRS = (0x10, 0x30)

PRIO_BITMAP = 0


def _find_zero(bitmap, start: int, limit: int) -> int:
    """The first clear bit in [start, limit), or -1."""
    i = start
    while i < limit and i & 7:
        if not bitmap[i >> 3] & (1 << (i & 7)):
            return i
        i += 1
    if i >= limit:
        return -1
    j, end = i >> 3, (limit + 7) >> 3
    rest = bytes(bitmap[j:end]).lstrip(b"\xff")     # skip full bytes in C
    if not rest:
        return -1
    byte = rest[0]
    i = (end - len(rest)) * 8
    while byte & 1:
        byte >>= 1
        i += 1
    return i if i < limit else -1


class Allocator:
    def __init__(self, fs: "Ext2FS") -> None:
        self.fs = fs
        sb = fs.sbi
        self.bpg = sb.blocks_per_group
        self.ipg = sb.inodes_per_group
        self.first = sb.first_data_block
        self.dsize = sb.desc_size if fs.sbi.feature_incompat & 0x80 else 32
        self.dirty_groups: set[int] = set()

    # -- descriptor fields
    def _gd_get(self, g: int, field: tuple[int, int]) -> int:
        raw, o = self.fs.gdt_raw, g * self.dsize
        v = struct.unpack_from("<H", raw, o + field[0])[0]
        if self.dsize >= 64:
            v |= struct.unpack_from("<H", raw, o + field[1])[0] << 16
        return v

    def _gd_add(self, g: int, field: tuple[int, int], delta: int) -> None:
        v = self._gd_get(g, field) + delta
        raw, o = self.fs.gdt_raw, g * self.dsize
        struct.pack_into("<H", raw, o + field[0], v & 0xFFFF)
        if self.dsize >= 64:
            struct.pack_into("<H", raw, o + field[1], v >> 16)
        self.dirty_groups.add(g)

    def group_blocks(self, g: int) -> int:
        """Blocks in group g (the last group may be short)."""
        return min(self.bpg, self.fs.sbi.blocks_count - self.first - g * self.bpg)

    def group_of_block(self, blk: int) -> int:
        return (blk - self.first) // self.bpg

    def group_of_inode(self, ino: int) -> int:
        return (ino - 1) // self.ipg

    def first_block_of(self, g: int) -> int:
        return self.first + g * self.bpg

    # -- blocks
    def alloc_block(self, goal: int) -> int:
        fs = self.fs
        ngroups = len(fs.groups)
        if not self.first <= goal < fs.sbi.blocks_count:
            goal = self.first
        g0 = self.group_of_block(goal)
        for k in range(ngroups + 1):
            g = (g0 + k) % ngroups
            if self._gd_get(g, GD_FREE_BLOCKS) == 0:
                continue
            bmblk = fs.groups[g].block_bitmap
            bitmap = fs.meta(bmblk)
            start = goal - self.first_block_of(g) if k == 0 else 0
            bit = _find_zero(bitmap, start, self.group_blocks(g))
            if bit < 0 and k == 0 and start:
                bit = _find_zero(bitmap, 0, start)
            if bit < 0:
                continue
            bitmap[bit >> 3] |= 1 << (bit & 7)
            fs.mark_dirty(bmblk, PRIO_BITMAP)
            self._gd_add(g, GD_FREE_BLOCKS, -1)
            fs.sb_add_free_blocks(-1)
            return self.first_block_of(g) + bit
        raise Errno(errno.ENOSPC)

    def free_block(self, blk: int) -> None:
        fs = self.fs
        if not self.first <= blk < fs.sbi.blocks_count:
            fs.error(f"freeing block {blk} outside the filesystem")
            return
        g = self.group_of_block(blk)
        bit = blk - self.first_block_of(g)
        bmblk = fs.groups[g].block_bitmap
        bitmap = fs.meta(bmblk)
        if not bitmap[bit >> 3] & (1 << (bit & 7)):
            fs.error(f"bit already cleared for block {blk}")
            return
        bitmap[bit >> 3] &= ~(1 << (bit & 7)) & 0xFF
        fs.mark_dirty(bmblk, PRIO_BITMAP)
        fs.forget_block(blk)
        self._gd_add(g, GD_FREE_BLOCKS, 1)
        fs.sb_add_free_blocks(1)

    # -- inodes
    def _pick_group(self, parent_group: int, is_dir: bool) -> int:
        """Files next to their directory; new directories spread out to the emptiest group
        with free blocks (a simple form of Linux's Orlov allocator)."""
        n = len(self.fs.groups)
        if is_dir:
            best, best_free = -1, -1
            for g in range(n):
                fi = self._gd_get(g, GD_FREE_INODES)
                if fi and fi + self._gd_get(g, GD_FREE_BLOCKS) // 64 > best_free:
                    best, best_free = g, fi + self._gd_get(g, GD_FREE_BLOCKS) // 64
            if best >= 0:
                return best
        for k in range(n):
            g = (parent_group + k) % n
            if self._gd_get(g, GD_FREE_INODES):
                return g
        raise Errno(errno.ENOSPC)

    def alloc_inode(self, parent_ino: int, is_dir: bool) -> int:
        fs = self.fs
        g0 = self._pick_group(self.group_of_inode(parent_ino), is_dir)
        n = len(fs.groups)
        for k in range(n):
            g = (g0 + k) % n
            if not self._gd_get(g, GD_FREE_INODES):
                continue
            ibblk = fs.groups[g].inode_bitmap
            bitmap = fs.meta(ibblk)
            start = fs.sbi.first_ino - 1 if g == 0 else 0
            bit = _find_zero(bitmap, start, self.ipg)
            if bit < 0:
                continue
            bitmap[bit >> 3] |= 1 << (bit & 7)
            fs.mark_dirty(ibblk, PRIO_BITMAP)
            self._gd_add(g, GD_FREE_INODES, -1)
            if is_dir:
                self._gd_add(g, GD_USED_DIRS, 1)
            fs.sb_add_free_inodes(-1)
            return g * self.ipg + bit + 1
        raise Errno(errno.ENOSPC)

    def free_inode(self, ino: int, is_dir: bool) -> None:
        fs = self.fs
        g, bit = divmod(ino - 1, self.ipg)
        ibblk = fs.groups[g].inode_bitmap
        bitmap = fs.meta(ibblk)
        if not bitmap[bit >> 3] & (1 << (bit & 7)):
            fs.error(f"bit already cleared for inode {ino}")
            return
        bitmap[bit >> 3] &= ~(1 << (bit & 7)) & 0xFF
        fs.mark_dirty(ibblk, PRIO_BITMAP)
        self._gd_add(g, GD_FREE_INODES, 1)
        if is_dir:
            self._gd_add(g, GD_USED_DIRS, -1)
        fs.sb_add_free_inodes(1)
