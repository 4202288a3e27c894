"""Classic ext2 block maps, write side: mapping a logical block with allocation (12 direct
pointers, then single, double and triple indirect blocks) and freeing everything from a
logical block on (truncate), including indirect blocks that become unused.

i_blocks counts every block an inode owns, data and indirect, in 512-byte units.
"""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from usermode.fs.ext2_disk import NDIR_BLOCKS
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.fs.ext2 import Ext2Inode

LEVELS = ((1, 12), (2, 13), (3, 14))       # (depth, i_block slot)


def _slot(node: "Ext2Inode", i: int) -> int:
    return struct.unpack_from("<I", node.iblock, 4 * i)[0]


def _set_slot(node: "Ext2Inode", i: int, v: int) -> None:
    struct.pack_into("<I", node.iblock, 4 * i, v)


def max_blocks(per: int) -> int:
    return NDIR_BLOCKS + per + per ** 2 + per ** 3


def _new_block(node: "Ext2Inode", indirect: bool) -> int:
    fs = node.fs
    pb = fs.alloc.alloc_block(node.goal())
    node.last_alloc = pb
    node.blocks += fs.block_size // 512
    if indirect:
        fs.meta_new(pb)
    return pb


def map_alloc(node: "Ext2Inode", lb: int) -> tuple[int, bool]:
    """(physical block, freshly allocated) of logical block lb, allocating the data block
    and any missing indirect blocks."""
    fs = node.fs
    per = fs.block_size // 4
    if lb < NDIR_BLOCKS:
        pb = _slot(node, lb)
        if pb:
            return pb, False
        pb = _new_block(node, False)
        _set_slot(node, lb, pb)
        return pb, True
    rel = lb - NDIR_BLOCKS
    for level, slot in LEVELS:
        if rel < per ** level:
            break
        rel -= per ** level
    else:
        raise Errno(errno.EFBIG)
    blk = _slot(node, slot)
    if not blk:
        blk = _new_block(node, True)
        _set_slot(node, slot, blk)
    for k in range(level - 1, -1, -1):
        i = (rel // per ** k) % per
        child = fs.pointers(blk)[i]
        fresh = False
        if not child:
            child = _new_block(node, k > 0)
            fs.set_pointer(blk, i, child)
            fresh = True
        if k == 0:
            return child, fresh
        blk = child
    raise AssertionError("unreachable")


def _free_tree(node: "Ext2Inode", blk: int, level: int) -> None:
    """Free an indirect block of this depth and everything under it."""
    fs = node.fs
    for p in fs.pointers(blk):
        if p:
            if level > 1:
                _free_tree(node, p, level - 1)
            else:
                _free(node, p)
    _free(node, blk)


def _free(node: "Ext2Inode", blk: int) -> None:
    node.fs.alloc.free_block(blk)
    node.blocks -= node.fs.block_size // 512


def _free_partial(node: "Ext2Inode", blk: int, level: int, keep: int) -> None:
    """Free the blocks at or past relative logical block keep under this indirect block."""
    fs = node.fs
    per = fs.block_size // 4
    sub = per ** (level - 1)
    ptrs = list(fs.pointers(blk))
    changed = False
    for i in range(keep // sub, per):
        p = ptrs[i]
        if not p:
            continue
        lo = i * sub
        if level == 1 or keep <= lo:
            if level == 1:
                _free(node, p)
            else:
                _free_tree(node, p, level - 1)
            ptrs[i] = 0
            changed = True
        else:
            _free_partial(node, p, level - 1, keep - lo)
    if changed:
        fs.set_pointers(blk, ptrs)


def free_from(node: "Ext2Inode", keep: int) -> None:
    """Free every block of logical number >= keep."""
    per = node.fs.block_size // 4
    for i in range(min(keep, NDIR_BLOCKS), NDIR_BLOCKS):
        pb = _slot(node, i)
        if pb:
            _free(node, pb)
            _set_slot(node, i, 0)
    base = NDIR_BLOCKS
    for level, slot in LEVELS:
        span = per ** level
        blk = _slot(node, slot)
        if blk:
            if keep <= base:
                _free_tree(node, blk, level)
                _set_slot(node, slot, 0)
            elif keep < base + span:
                _free_partial(node, blk, level, keep - base)
        base += span
