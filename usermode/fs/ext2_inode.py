"""ext2/3/4 inodes: reading (extent trees and classic block maps, linear and dir_index
directories, fast and slow symlinks) and, on a read-write ext2 mount, writing: data with
single/double/triple indirect blocks, sparse files, truncate, directory entries, links,
symlinks, device nodes and attributes.  Every operation ends with fs.commit(), which
writes the metadata it dirtied.
"""
from __future__ import annotations

import bisect
import contextlib
import errno
import struct
import time
from typing import TYPE_CHECKING, NamedTuple

from usermode.fs import ext2_bmap as bmap
from usermode.fs import ext2_dir as dirblk
from usermode.fs import ext2_disk as disk
from usermode.fs.ext2_disk import Ext2FormatError, RawInode
from usermode.fs.inode import NAME_MAX, Inode, now_ns
from usermode.fs.stat import (S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Stat,
                              dtype_of, major, makedev, minor)
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.fs.ext2 import Ext2FS

LINK_MAX = 32000                # EXT2_LINK_MAX
FAST_SYMLINK_MAX = 60           # targets shorter than i_block live inside it


class DirSlot(NamedTuple):
    ino: int
    file_type: int
    lblk: int
    off: int


class Ext2Inode(Inode):
    def __init__(self, sb: "Ext2FS", ino: int, raw: RawInode, slot: bytes) -> None:
        rdev = 0
        ftype = raw.mode & S_IFMT
        if ftype in (S_IFCHR, S_IFBLK):
            rdev = makedev(*disk.decode_rdev(raw.i_block))
        super().__init__(sb, ino, raw.mode, raw.uid, raw.gid, rdev)
        self.slot = bytearray(slot)
        self.iblock = bytearray(raw.i_block)
        self.blocks = raw.blocks
        self.iflags = raw.flags
        self.file_acl = raw.file_acl
        self.nlink = raw.links_count
        self.size = raw.size if ftype in (S_IFREG, S_IFDIR, S_IFLNK) else 0
        self.atime_ns, self.mtime_ns, self.ctime_ns = raw.atime_ns, raw.mtime_ns, raw.ctime_ns
        self.crtime_ns = raw.crtime_ns
        self.btime_ns = raw.crtime_ns or 0
        self.dtime = 0
        self.last_alloc = 0
        self._extents: list[disk.Extent] | None = None
        self._starts: list[int] = []
        self._dir: dict[bytes, DirSlot] | None = None
        self._slack: dict[int, int] = {}
        self._order: list[tuple[bytes, DirSlot]] | None = None

    @property
    def fs(self) -> "Ext2FS":
        return self.sb  # type: ignore[return-value]

    @property
    def raw(self) -> RawInode:
        """The on-disk inode as last written (or read)."""
        return RawInode.parse(bytes(self.slot), self.fs.sbi)

    def getattr(self) -> Stat:
        return Stat(dev=self.sb.dev, ino=self.ino, mode=self.mode, nlink=self.nlink,
                    uid=self.uid, gid=self.gid, rdev=self.rdev, size=self.size,
                    blksize=self.fs.block_size, blocks=self.blocks,
                    atime_ns=self.atime_ns, mtime_ns=self.mtime_ns, ctime_ns=self.ctime_ns,
                    btime_ns=self.btime_ns)

    # -- writing the inode itself
    def write_inode(self) -> None:
        disk.pack_inode(self.slot, mode=self.mode, uid=self.uid, gid=self.gid,
                        size=self.size, atime_ns=self.atime_ns, ctime_ns=self.ctime_ns,
                        mtime_ns=self.mtime_ns, crtime_ns=self.crtime_ns, dtime=self.dtime,
                        links=self.nlink, blocks=self.blocks, flags=self.iflags,
                        i_block=bytes(self.iblock), file_acl=self.file_acl)
        self.fs.put_inode_slot(self.ino, self.slot)

    def goal(self) -> int:
        """Where the next block should go: after the last one, else in our group."""
        if self.last_alloc:
            return self.last_alloc + 1
        a = self.fs.alloc
        return a.first_block_of(a.group_of_inode(self.ino))

    def _writable(self) -> None:
        if not self.fs.rw:
            raise Errno(errno.EROFS)

    def _touch(self) -> None:
        self.mtime_ns = self.ctime_ns = now_ns()

    # -- block mapping (read side)
    def _load_extents(self) -> list[disk.Extent]:
        if self._extents is None:
            try:
                ext = disk.walk_extents(bytes(self.iblock), self.fs.read_block)
            except Ext2FormatError as e:
                self.fs.error(f"inode #{self.ino}: {e}")
                raise Errno(errno.EIO) from None
            self._extents = ext
            self._starts = [e.lblk for e in ext]
        return self._extents

    def _runs(self, first: int, last: int) -> list[tuple[int, int, int]]:
        """(logical, physical, count) runs of written blocks within [first, last)."""
        if self.iflags & disk.EXT4_INLINE_DATA_FL:
            raise Errno(errno.EIO)
        out: list[tuple[int, int, int]] = []
        if self.iflags & disk.EXT4_EXTENTS_FL:
            ext = self._load_extents()
            i = max(0, bisect.bisect_right(self._starts, first) - 1)
            while i < len(ext) and ext[i].lblk < last:
                e = ext[i]
                lo, hi = max(first, e.lblk), min(last, e.lblk + e.length)
                if lo < hi and not e.uninit:
                    out.append((lo, e.pblk + lo - e.lblk, hi - lo))
                i += 1
            return out
        for lb in range(first, last):
            pb = self._bmap(lb)
            if not pb:
                continue
            if out and out[-1][0] + out[-1][2] == lb and out[-1][1] + out[-1][2] == pb:
                l0, p0, c = out[-1]
                out[-1] = (l0, p0, c + 1)
            else:
                out.append((lb, pb, 1))
        return out

    def _bmap(self, lb: int) -> int:
        """Classic ext2 block map: 12 direct, then single, double, triple indirect."""
        fs = self.fs
        per = fs.block_size // 4
        iblock = struct.unpack("<15I", self.iblock)
        if lb < disk.NDIR_BLOCKS:
            return iblock[lb]
        lb -= disk.NDIR_BLOCKS
        for level, slot in ((1, 12), (2, 13), (3, 14)):
            span = per ** level
            if lb < span:
                blk = iblock[slot]
                for k in range(level - 1, -1, -1):
                    if not blk:
                        return 0
                    blk = fs.pointers(blk)[(lb // per ** k) % per]
                return blk
            lb -= span
        return 0

    def _pblock(self, lb: int) -> int:
        if self.iflags & disk.EXT4_EXTENTS_FL:
            runs = self._runs(lb, lb + 1)
            return runs[0][1] if runs else 0
        return self._bmap(lb)

    def read_at(self, off: int, n: int) -> bytes:
        if self.is_dir:
            raise Errno(errno.EISDIR)
        if off < 0:
            raise Errno(errno.EINVAL)
        if off >= self.size or n <= 0:
            return b""
        n = min(n, self.size - off)
        return self._read(off, n)

    def _read(self, off: int, n: int) -> bytes:
        fs = self.fs
        bs = fs.block_size
        first, last = off // bs, (off + n + bs - 1) // bs
        buf = bytearray((last - first) * bs)
        for lb, pb, count in self._runs(first, last):
            if pb + count > fs.sbi.blocks_count:
                fs.error(f"inode #{self.ino}: block {pb} beyond the end of the filesystem")
                raise Errno(errno.EIO)
            data = fs.read(pb * bs, count * bs)
            start = (lb - first) * bs
            buf[start:start + len(data)] = data
        skip = off - first * bs
        return bytes(buf[skip:skip + n])

    # -- data (write side)
    def write_at(self, off: int, data: bytes) -> int:
        if self.is_dir:
            raise Errno(errno.EISDIR)
        self._writable()
        if off < 0:
            raise Errno(errno.EINVAL)
        if not data:
            return 0
        limit = self.fs.max_file_size
        if off >= limit:
            raise Errno(errno.EFBIG)
        data = bytes(data[:limit - off])
        try:
            n = self._write_blocks(off, data)
        finally:
            self.fs.commit()
        return n

    def _write_blocks(self, off: int, data: bytes) -> int:
        fs = self.fs
        bs = fs.block_size
        done = 0
        run_pb, run = 0, bytearray()
        try:
            while done < len(data):
                lb, boff = divmod(off + done, bs)
                chunk = min(bs - boff, len(data) - done)
                pb, fresh = bmap.map_alloc(self, lb)
                if chunk == bs:
                    block = data[done:done + bs]
                else:
                    block = bytearray(bs) if fresh else bytearray(fs.read(pb * bs, bs))
                    block[boff:boff + chunk] = data[done:done + chunk]
                if run and pb != run_pb + len(run) // bs:
                    fs.write_data(run_pb, bytes(run))
                    run = bytearray()
                if not run:
                    run_pb = pb
                run += block
                done += chunk
        except Errno as e:
            if e.errno != errno.ENOSPC or not done:
                self._grow_to(off + done)
                if run:
                    fs.write_data(run_pb, bytes(run))
                raise
        if run:
            fs.write_data(run_pb, bytes(run))
        self._grow_to(off + done)
        return done

    def _grow_to(self, end: int) -> None:
        if end > self.size:
            self.size = end
            if end >= 1 << 31:
                self.fs.need_large_file()
        self._touch()
        self.write_inode()

    def truncate(self, size: int) -> None:
        if self.is_dir:
            raise Errno(errno.EISDIR)
        self._writable()
        if size > self.fs.max_file_size:
            raise Errno(errno.EFBIG)
        try:
            if size < self.size:
                self._shrink(size)
            self._grow_to(size)
            self.size = size
            self.write_inode()
        finally:
            self.fs.commit()

    def _shrink(self, size: int) -> None:
        bs = self.fs.block_size
        bmap.free_from(self, (size + bs - 1) // bs)
        self.last_alloc = 0
        if size % bs:                   # what lies past EOF in the last block must read as 0
            pb = self._bmap(size // bs)
            if pb:
                block = bytearray(self.fs.read(pb * bs, bs))
                block[size % bs:] = bytes(bs - size % bs)
                self.fs.write_data(pb, bytes(block))
        self.size = size

    def free_all(self) -> None:
        """Release the blocks of a dead inode (not a fast symlink's or a device's i_block)."""
        acl_blocks = self.fs.block_size // 512 if self.file_acl else 0
        if self.ftype in (S_IFREG, S_IFDIR) or \
                (self.is_symlink and self.blocks - acl_blocks > 0):
            bmap.free_from(self, 0)
        if self.file_acl:
            self.fs.release_xattr_block(self.file_acl)
            self.blocks -= self.fs.block_size // 512
            self.file_acl = 0
        self.size = 0

    # -- attributes
    def setattr(self, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                atime_ns: int | None = None, mtime_ns: int | None = None) -> None:
        self._writable()
        super().setattr(mode, uid, gid, atime_ns, mtime_ns)
        self.write_inode()
        self.fs.commit()

    def fsync(self) -> None:
        if self.fs.rw:
            self.fs.sync()

    # -- directories (read side)
    def _load_dir(self) -> dict[bytes, DirSlot]:
        if self._dir is None:
            fs = self.fs
            bs = fs.block_size
            entries: dict[bytes, DirSlot] = {}
            slack: dict[int, int] = {}
            try:
                for lb in range(self.size // bs):
                    pb = self._pblock(lb)
                    if not pb:
                        continue
                    best = 0
                    for e in dirblk.iter_block(fs.read_block(pb), fs.filetype):
                        best = max(best, dirblk.slack(e))
                        if e.ino and e.name not in (b".", b"..") and e.name not in entries:
                            ft = e.file_type if e.file_type <= 7 else 0
                            entries[e.name] = DirSlot(e.ino, ft, lb, e.off)
                    slack[lb] = best
            except Ext2FormatError as e:
                fs.error(f"directory inode #{self.ino}: {e}")
                raise Errno(errno.EIO) from None
            self._dir, self._slack, self._order = entries, slack, None
        return self._dir

    def lookup(self, name: bytes) -> Inode:
        if not self.is_dir:
            raise Errno(errno.ENOTDIR)
        e = self._load_dir().get(name)
        if e is None:
            raise Errno(errno.ENOENT)
        return self.fs.iget(e.ino)

    def listdir(self) -> list[tuple[bytes, int, int]]:
        if not self.is_dir:
            raise Errno(errno.ENOTDIR)
        d = self._load_dir()
        if self._order is None:
            self._order = sorted(d.items(), key=lambda kv: (kv[1].lblk, kv[1].off))
        out = []
        for name, e in self._order:
            mode = disk.FT_TO_MODE.get(e.file_type)
            if mode is None:
                mode = self.fs.iget(e.ino).mode
            out.append((name, e.ino, dtype_of(mode)))
        return out

    # -- directory entries (write side)
    @contextlib.contextmanager
    def _corrupt_is_eio(self):
        try:
            yield
        except Ext2FormatError as e:
            self.fs.error(f"directory inode #{self.ino}: {e}")
            raise Errno(errno.EIO) from None

    def _block_for(self, lb: int) -> tuple[int, bytearray]:
        pb = self._bmap(lb)
        if not pb:
            self.fs.error(f"directory inode #{self.ino} has a hole at block {lb}")
            raise Errno(errno.EIO)
        return pb, self.fs.meta(pb)

    def _dirtied(self, lb: int, pb: int, block: bytearray) -> None:
        self.fs.mark_dirty(pb)
        with self._corrupt_is_eio():
            self._slack[lb] = dirblk.max_slack(block, self.fs.filetype)
        self._order = None
        if self.iflags & disk.EXT2_INDEX_FL:
            # the htree is not maintained: the directory becomes linear (e2fsck accepts it)
            self.iflags &= ~disk.EXT2_INDEX_FL

    def _add_entry(self, name: bytes, ino: int, ftype: int) -> None:
        d = self._load_dir()
        fs = self.fs
        bs = fs.block_size
        need = dirblk.rec_len_for(len(name))
        lb = next((b for b, s in self._slack.items() if s >= need), None)
        if lb is None:
            lb = self.size // bs
            pb, _fresh = bmap.map_alloc(self, lb)
            block = fs.meta_new(pb)
            block[:] = dirblk.empty_block(bs)
            self.size += bs
        else:
            pb, block = self._block_for(lb)
        with self._corrupt_is_eio():
            off = dirblk.insert(block, name, ino, ftype, fs.filetype)
        if off is None:
            fs.error(f"directory inode #{self.ino}: free space map out of date")
            raise Errno(errno.EIO)
        d[name] = DirSlot(ino, ftype, lb, off)
        self._dirtied(lb, pb, block)
        self._touch()

    def _remove_entry(self, name: bytes) -> None:
        e = self._load_dir().pop(name)
        pb, block = self._block_for(e.lblk)
        with self._corrupt_is_eio():
            dirblk.remove(block, e.off, self.fs.filetype)
        self._dirtied(e.lblk, pb, block)
        self._touch()

    def _set_entry(self, name: bytes, ino: int, ftype: int) -> None:
        d = self._load_dir()
        e = d[name]
        pb, block = self._block_for(e.lblk)
        dirblk.set_inode(block, e.off, ino, ftype, self.fs.filetype)
        d[name] = e._replace(ino=ino, file_type=ftype)
        self._dirtied(e.lblk, pb, block)
        self._touch()

    def _set_dotdot(self, parent: int) -> None:
        pb, block = self._block_for(0)
        with self._corrupt_is_eio():
            entries = list(dirblk.iter_block(block, self.fs.filetype))
        for e in entries:
            if e.name == b"..":
                dirblk.set_inode(block, e.off, parent, 2, self.fs.filetype)
                self._dirtied(0, pb, block)
                return
        self.fs.error(f"directory inode #{self.ino} has no '..'")
        raise Errno(errno.EIO)

    def _check_new(self, name: bytes) -> None:
        self._writable()
        if not self.is_dir:
            raise Errno(errno.ENOTDIR)
        if len(name) > NAME_MAX:
            raise Errno(errno.ENAMETOOLONG)
        if name in self._load_dir():
            raise Errno(errno.EEXIST)

    def _new_child(self, name: bytes, mode: int, uid: int, gid: int,
                   init=None) -> "Ext2Inode":
        """Allocate an inode, let init() fill it, then enter it here; undone on failure."""
        self._check_new(name)
        fs = self.fs
        is_dir = mode & S_IFMT == S_IFDIR
        if is_dir and self.nlink >= LINK_MAX:
            raise Errno(errno.EMLINK)
        node = fs.new_inode(fs.alloc.alloc_inode(self.ino, is_dir), mode, uid, gid)
        try:
            if init is not None:
                init(node)
            node.write_inode()
            self._add_entry(name, node.ino, dirblk.MODE_TO_FT.get(mode & S_IFMT, 0))
            if is_dir:
                self.nlink += 1
            self.write_inode()
        except BaseException:
            node.nlink = 0
            fs.free_inode(node)
            fs.commit()
            raise
        fs.commit()
        return node

    def create(self, name: bytes, mode: int, uid: int, gid: int) -> Inode:
        return self._new_child(name, S_IFREG | (mode & 0o7777), uid, gid)

    def mkdir(self, name: bytes, mode: int, uid: int, gid: int) -> Inode:
        def init(node: Ext2Inode) -> None:
            node.nlink = 2
            pb, _ = bmap.map_alloc(node, 0)
            block = self.fs.meta_new(pb)
            block[:] = dirblk.new_dir_block(self.fs.block_size, node.ino, self.ino,
                                            self.fs.filetype)
            node.size = self.fs.block_size
        return self._new_child(name, S_IFDIR | (mode & 0o7777), uid, gid, init)

    def mknod(self, name: bytes, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        def init(node: Ext2Inode) -> None:
            if node.ftype in (S_IFCHR, S_IFBLK):
                node.rdev = rdev
                node.iblock[0:8] = disk.encode_rdev(major(rdev), minor(rdev))
        return self._new_child(name, mode, uid, gid, init)

    def symlink(self, name: bytes, target: bytes, uid: int, gid: int) -> Inode:
        bs = self.fs.block_size
        if len(target) >= bs:
            raise Errno(errno.ENAMETOOLONG)

        def init(node: Ext2Inode) -> None:
            node.size = len(target)
            if len(target) < FAST_SYMLINK_MAX:
                node.iblock[:len(target)] = target
                return
            pb, _ = bmap.map_alloc(node, 0)
            self.fs.write_data(pb, target + bytes(bs - len(target)))
        return self._new_child(name, S_IFLNK | 0o777, uid, gid, init)

    def link(self, name: bytes, inode: Inode) -> None:
        self._check_new(name)
        assert isinstance(inode, Ext2Inode)
        if inode.nlink >= LINK_MAX:
            raise Errno(errno.EMLINK)
        try:
            self._add_entry(name, inode.ino, dirblk.MODE_TO_FT.get(inode.ftype, 0))
            inode.nlink += 1
            inode.ctime_ns = now_ns()
            inode.write_inode()
            self.write_inode()
        finally:
            self.fs.commit()

    def _drop_link(self, node: "Ext2Inode") -> None:
        """One name of node is gone (a directory loses its "." too)."""
        node.nlink = 0 if node.is_dir else node.nlink - 1
        node.ctime_ns = now_ns()
        node.write_inode()
        if node.nlink <= 0:
            self.fs.orphan(node)

    def _child(self, name: bytes) -> "Ext2Inode":
        e = self._load_dir().get(name)
        if e is None:
            raise Errno(errno.ENOENT)
        return self.fs.iget(e.ino)

    def unlink(self, name: bytes) -> None:
        self._writable()
        node = self._child(name)
        if node.is_dir:
            raise Errno(errno.EISDIR)
        try:
            self._remove_entry(name)
            self.write_inode()
            self._drop_link(node)
        finally:
            self.fs.commit()

    def rmdir(self, name: bytes) -> None:
        self._writable()
        node = self._child(name)
        if not node.is_dir:
            raise Errno(errno.ENOTDIR)
        if node._load_dir():
            raise Errno(errno.ENOTEMPTY)
        try:
            self._remove_entry(name)
            self.nlink -= 1
            self.write_inode()
            self._drop_link(node)
        finally:
            self.fs.commit()

    def rename(self, old: bytes, newdir: Inode, new: bytes, exchange: bool = False) -> None:
        self._writable()
        assert isinstance(newdir, Ext2Inode)
        if len(new) > NAME_MAX:
            raise Errno(errno.ENAMETOOLONG)
        node = self._child(old)
        try:
            if exchange:
                self._exchange(old, node, newdir, new)
            else:
                self._move(old, node, newdir, new)
        finally:
            self.fs.commit()

    def _exchange(self, old: bytes, node: "Ext2Inode", newdir: "Ext2Inode",
                  new: bytes) -> None:
        other = newdir._child(new)
        self._set_entry(old, other.ino, dirblk.MODE_TO_FT.get(other.ftype, 0))
        newdir._set_entry(new, node.ino, dirblk.MODE_TO_FT.get(node.ftype, 0))
        if newdir is not self:
            for moved, frm, to in ((node, self, newdir), (other, newdir, self)):
                if moved.is_dir:
                    moved._set_dotdot(to.ino)
                    frm.nlink -= 1
                    to.nlink += 1
        t = now_ns()
        for n in {id(x): x for x in (node, other, self, newdir)}.values():
            if n is node or n is other:
                n.ctime_ns = t
            n.write_inode()

    def _move(self, old: bytes, node: "Ext2Inode", newdir: "Ext2Inode", new: bytes) -> None:
        target_e = newdir._load_dir().get(new)
        target = self.fs.iget(target_e.ino) if target_e is not None else None
        if target is node:
            return
        cross = node.is_dir and newdir is not self
        if target is not None and target.is_dir and target._load_dir():
            raise Errno(errno.ENOTEMPTY)
        if cross and target is None and newdir.nlink >= LINK_MAX:
            raise Errno(errno.EMLINK)
        ftype = dirblk.MODE_TO_FT.get(node.ftype, 0)
        if target is not None:
            newdir._set_entry(new, node.ino, ftype)
            if target.is_dir:
                newdir.nlink -= 1
            newdir._drop_link(target)
        else:
            newdir._add_entry(new, node.ino, ftype)
        self._remove_entry(old)
        if cross:
            node._set_dotdot(newdir.ino)
            self.nlink -= 1
            newdir.nlink += 1
        node.ctime_ns = now_ns()
        node.write_inode()
        self.write_inode()
        if newdir is not self:
            newdir.write_inode()

    # -- symlinks
    def readlink(self) -> bytes:
        if not self.is_symlink:
            raise Errno(errno.EINVAL)
        acl_blocks = self.fs.block_size // 512 if self.file_acl else 0
        if self.size < FAST_SYMLINK_MAX and not self.iflags & (
                disk.EXT4_EXTENTS_FL | disk.EXT4_INLINE_DATA_FL) \
                and self.blocks - acl_blocks <= 0:
            return bytes(self.iblock[:self.size])
        return self._read(0, self.size) if self.size else b""


def dead_time() -> int:
    return int(time.time()) & 0xFFFFFFFF
