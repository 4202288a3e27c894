"""ext2/ext3/ext4 on a block device (mount -t ext2 /dev/ubdb /mnt).

Reads what a default `mke2fs -t ext2|ext3|ext4` makes: 32- and 64-byte group descriptors,
128/256-byte inodes, extent trees of any depth and classic indirect block maps, linear and
dir_index directories (whose leaves are linear), fast and slow symlinks, sparse files,
device nodes, FIFOs and sockets, nanosecond timestamps and 32-bit uids/gids.  The journal
is not replayed: an image that needs recovery is refused, as are incompat features this
reader does not understand (inline_data, encrypt, casefold, meta_bg, ...).

Read-write for the ext2 feature set (filetype, sparse_super, large_file, ext_attr,
resize_inode, dir_index) and for ext3 whose journal is empty: writes bypass the journal
and leave it empty, as Linux's ext2 driver does with an ext3 image.  ext4 features
(extents, flex_bg, 64bit, metadata_csum, ...) mount read-only only: EROFS and a log line.
Metadata is written through: every operation ends with commit(), which writes the
bitmaps, inode table and directory blocks, group descriptors and superblock it dirtied;
fsync/sync also flush the device.  A rw mount clears s_state's VALID bit until umount
or shutdown (release()).  Inodes are in ext2_inode.py, structures in ext2_disk.py.
"""
from __future__ import annotations

import errno
import struct
import time
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, NamedTuple

from usermode.fs import ext2_disk as disk
from usermode.fs.ext2_alloc import Allocator
from usermode.fs.ext2_disk import Ext2FormatError, RawInode, Superblock
from usermode.fs.ext2_inode import Ext2Inode, dead_time
from usermode.fs.inode import MS_RDONLY, NAME_MAX, FileSystem, now_ns
from usermode.fs.stat import S_IFBLK, S_IFDIR, S_IFMT
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.kernel.task import Task

__all__ = ["Ext2FS", "Ext2Inode", "Ext2FormatError", "register"]

EXT4_SUPER_MAGIC = 0xEF53
CACHE_BLOCKS = 1024
HOT_DIRS = 64                   # parsed directories kept alive between path walks
PRIO_META = 1                   # inode tables, indirect and directory blocks: after bitmaps

# read(off, n) -> bytes from the device; write(off, data); flush()
Reader = Callable[[int, int], bytes]
Writer = Callable[[int, bytes], object]

COMPAT_NAMES = {0x1: "dir_prealloc", 0x2: "imagic_inodes", 0x4: "has_journal",
                0x8: "ext_attr", 0x10: "resize_inode", 0x20: "dir_index",
                0x200: "sparse_super2", 0x400: "fast_commit", 0x800: "stable_inodes",
                0x1000: "orphan_file"}
RO_COMPAT_NAMES = {0x1: "sparse_super", 0x2: "large_file", 0x4: "btree_dir",
                   0x8: "huge_file", 0x10: "uninit_bg", 0x20: "dir_nlink",
                   0x40: "extra_isize", 0x100: "quota", 0x200: "bigalloc",
                   0x400: "metadata_csum", 0x1000: "read-only", 0x2000: "project",
                   0x8000: "verity", 0x10000: "orphan_present"}


class Ext2FS(FileSystem):
    """An ext2/3/4 filesystem over read(off, n) of its device; read-write when given
    write() and the image's features allow it (see rw_refusal())."""

    magic = EXT4_SUPER_MAGIC

    def __init__(self, read: Reader, device_size: int, fstype: str = "ext4",
                 name: str = "device", log: Callable[[str], None] | None = None,
                 write: Writer | None = None, flush: Callable[[], object] | None = None
                 ) -> None:
        """Raises Ext2FormatError with a one-line reason when the image is unusable.
        Read-only until mount_rw()."""
        super().__init__()
        self.fstype = fstype
        self.name = name
        self._raw_read = read
        self._raw_write = write
        self._raw_flush = flush
        self._log = log
        self.device_size = device_size
        self.rw = False
        self._cache: OrderedDict[int, bytearray] = OrderedDict()
        self._ptr_cache: OrderedDict[int, tuple[int, ...]] = OrderedDict()
        self._dirty: dict[int, int] = {}            # block -> write priority
        self._sb_dirty = False
        self._inodes: weakref.WeakValueDictionary[int, Ext2Inode] = \
            weakref.WeakValueDictionary()
        self._dead: list[int] = []                  # unlinked inodes no longer in use
        self._orphans: weakref.WeakValueDictionary[int, Ext2Inode] = \
            weakref.WeakValueDictionary()           # unlinked but still open
        self._hot: OrderedDict[int, Ext2Inode] = OrderedDict()
        self.flags = MS_RDONLY
        raw = read(disk.SUPERBLOCK_OFFSET, 1024)
        sbi = Superblock.parse(raw)
        bad = sbi.unsupported_incompat()
        if bad:
            raise Ext2FormatError("unsupported feature(s): " + ", ".join(bad))
        if sbi.blocks_count * sbi.block_size > device_size:
            raise Ext2FormatError(f"bad geometry: block count {sbi.blocks_count} exceeds "
                                  f"size of device ({device_size // sbi.block_size} blocks)")
        self.sbi = sbi
        self.sb_raw = bytearray(raw)
        self.block_size = sbi.block_size
        self.filetype = bool(sbi.feature_incompat & disk.INCOMPAT_FILETYPE)
        self.groups = self._read_groups()
        self.alloc = Allocator(self)
        from usermode.fs.ext2_bmap import max_blocks
        self.max_file_size = min(max_blocks(self.block_size // 4) * self.block_size,
                                 (1 << 41) - (1 << 32))
        root = self.iget(disk.ROOT_INO)
        if not root.is_dir:
            raise Ext2FormatError("root inode is not a directory")
        self.root = root
        self._root_ref = root

    def error(self, msg: str) -> None:
        if self._log is not None:
            self._log(f"EXT4-fs error ({self.name}): {msg}")

    def info(self, msg: str) -> None:
        if self._log is not None:
            self._log(f"EXT4-fs ({self.name}): {msg}")

    # -- device I/O and the metadata cache
    def read(self, off: int, n: int) -> bytes:
        data = self._raw_read(off, n)
        if len(data) < n:
            data += bytes(n - len(data))
        return data

    def _dev_write(self, off: int, data: bytes) -> None:
        assert self._raw_write is not None
        self._raw_write(off, data)

    def meta(self, blk: int) -> bytearray:
        """One metadata block, cached; callers that change it call mark_dirty()."""
        data = self._cache.get(blk)
        if data is not None:
            self._cache.move_to_end(blk)
            return data
        if blk >= self.sbi.blocks_count:
            self.error(f"block {blk} beyond the end of the filesystem")
            raise Errno(errno.EIO)
        data = bytearray(self.read(blk * self.block_size, self.block_size))
        self._insert(blk, data)
        return data

    read_block = meta

    def _insert(self, blk: int, data: bytearray) -> None:
        self._cache[blk] = data
        while len(self._cache) > CACHE_BLOCKS:
            old, buf = self._cache.popitem(last=False)
            if self._dirty.pop(old, None) is not None:     # written early, not lost
                self._dev_write(old * self.block_size, bytes(buf))

    def meta_new(self, blk: int) -> bytearray:
        """A freshly allocated metadata block: zeros, dirty."""
        self._ptr_cache.pop(blk, None)
        data = bytearray(self.block_size)
        self._insert(blk, data)
        self.mark_dirty(blk)
        return data

    def mark_dirty(self, blk: int, prio: int = PRIO_META) -> None:
        self._dirty[blk] = min(prio, self._dirty.get(blk, prio))

    def forget_block(self, blk: int) -> None:
        """A freed block: whatever we cached of it must never be written back."""
        self._cache.pop(blk, None)
        self._dirty.pop(blk, None)
        self._ptr_cache.pop(blk, None)

    def write_data(self, pb: int, data: bytes) -> None:
        """File data, written straight to the device."""
        bs = self.block_size
        for b in range(pb, pb + (len(data) + bs - 1) // bs):
            if b in self._cache:
                self.forget_block(b)
        self._dev_write(pb * bs, data)

    def pointers(self, blk: int) -> tuple[int, ...]:
        """An indirect block as its block numbers."""
        p = self._ptr_cache.get(blk)
        if p is None:
            data = self.meta(blk)
            p = struct.unpack(f"<{len(data) // 4}I", data)
            self._ptr_cache[blk] = p
            if len(self._ptr_cache) > CACHE_BLOCKS:
                self._ptr_cache.popitem(last=False)
        return p

    def set_pointer(self, blk: int, i: int, value: int) -> None:
        struct.pack_into("<I", self.meta(blk), 4 * i, value)
        self._ptr_cache.pop(blk, None)
        self.mark_dirty(blk)

    def set_pointers(self, blk: int, ptrs: list[int]) -> None:
        struct.pack_into(f"<{len(ptrs)}I", self.meta(blk), 0, *ptrs)
        self._ptr_cache.pop(blk, None)
        self.mark_dirty(blk)

    # -- superblock and group descriptors
    def _read_groups(self) -> list[disk.GroupDesc]:
        sbi = self.sbi
        dsize = sbi.desc_size if sbi.feature_incompat & disk.INCOMPAT_64BIT else 32
        count = sbi.group_count
        self.gdt_offset = (sbi.first_data_block + 1) * self.block_size
        raw = self.read(self.gdt_offset, count * dsize)
        self.gdt_raw = bytearray(raw)
        groups = []
        for g in range(count):
            gd = disk.GroupDesc.parse(raw[g * dsize:(g + 1) * dsize], dsize)
            if not 0 < gd.inode_table < sbi.blocks_count:
                raise Ext2FormatError(f"group {g}: inode table at block {gd.inode_table} "
                                      "is outside the filesystem")
            groups.append(gd)
        return groups

    def _sb_put(self, fmt: str, off: int, *values: int) -> None:
        struct.pack_into(fmt, self.sb_raw, off, *values)
        self._sb_dirty = True

    def sb_add_free_blocks(self, delta: int) -> None:
        s = self.sbi
        s.free_blocks_count += delta
        self._sb_put("<I", disk.SB_FREE_BLOCKS, s.free_blocks_count & 0xFFFFFFFF)
        if s.feature_incompat & disk.INCOMPAT_64BIT:
            self._sb_put("<I", disk.SB_FREE_BLOCKS_HI, s.free_blocks_count >> 32)

    def sb_add_free_inodes(self, delta: int) -> None:
        self.sbi.free_inodes_count += delta
        self._sb_put("<I", disk.SB_FREE_INODES, self.sbi.free_inodes_count)

    def need_large_file(self) -> None:
        if not self.sbi.feature_ro_compat & disk.RO_COMPAT_LARGE_FILE:
            self.sbi.feature_ro_compat |= disk.RO_COMPAT_LARGE_FILE
            self._sb_put("<I", disk.SB_RO_COMPAT, self.sbi.feature_ro_compat)

    # -- inodes
    def _inode_pos(self, ino: int) -> tuple[int, int]:
        sbi = self.sbi
        if not 1 <= ino <= sbi.inodes_count:
            self.error(f"bad inode number {ino}")
            raise Errno(errno.EIO)
        g, idx = divmod(ino - 1, sbi.inodes_per_group)
        off = self.groups[g].inode_table * self.block_size + idx * sbi.inode_size
        return divmod(off, self.block_size)

    def read_inode_slot(self, ino: int) -> bytes:
        blk, within = self._inode_pos(ino)
        return bytes(self.meta(blk)[within:within + self.sbi.inode_size])

    def read_raw_inode(self, ino: int) -> RawInode:
        return RawInode.parse(self.read_inode_slot(ino), self.sbi)

    def put_inode_slot(self, ino: int, slot: bytes) -> None:
        blk, within = self._inode_pos(ino)
        self.meta(blk)[within:within + len(slot)] = slot
        self.mark_dirty(blk)

    def iget(self, ino: int) -> Ext2Inode:
        node = self._inodes.get(ino)
        if node is None:
            slot = self.read_inode_slot(ino)
            node = Ext2Inode(self, ino, RawInode.parse(slot, self.sbi), slot)
            self._inodes[ino] = node
        if node.is_dir and node.nlink:
            self._hot[ino] = node
            self._hot.move_to_end(ino)
            if len(self._hot) > HOT_DIRS:
                self._hot.popitem(last=False)
        return node

    def new_inode(self, ino: int, mode: int, uid: int, gid: int) -> Ext2Inode:
        """A freshly allocated inode: a zeroed slot with i_extra_isize set, times now."""
        size = self.sbi.inode_size
        slot = bytearray(size)
        if size > 128:
            want = struct.unpack_from("<H", self.sb_raw, disk.SB_WANT_EXTRA_ISIZE)[0] or 32
            struct.pack_into("<H", slot, 0x80, min(want, size - 128) & ~3)
        struct.pack_into("<HHI", slot, 0, mode & 0xFFFF, uid & 0xFFFF, 0)
        node = Ext2Inode(self, ino, RawInode.parse(bytes(slot), self.sbi), bytes(slot))
        node.uid, node.gid, node.nlink = uid, gid, 1
        t = now_ns()
        node.atime_ns = node.mtime_ns = node.ctime_ns = node.btime_ns = t
        node.crtime_ns = t if size > 128 else None
        self._inodes[ino] = node
        return node

    def orphan(self, node: Ext2Inode) -> None:
        """node has no names left: free it once nothing uses it (its last close)."""
        self._orphans[node.ino] = node
        self._hot.pop(node.ino, None)
        weakref.finalize(node, self._dead.append, node.ino)

    def free_inode(self, node: Ext2Inode) -> None:
        node.free_all()
        node.dtime = dead_time()
        node.nlink = 0
        node.write_inode()
        self.alloc.free_inode(node.ino, node.mode & S_IFMT == S_IFDIR)
        self._orphans.pop(node.ino, None)

    def _reap(self) -> None:
        while self._dead:
            ino = self._dead.pop()
            node = self.iget(ino)
            if node.nlink == 0 and not node.dtime:
                self.free_inode(node)

    def release_xattr_block(self, blk: int) -> None:
        """Drop one reference to a shared extended attribute block."""
        data = self.meta(blk)
        if struct.unpack_from("<I", data, 0)[0] != 0xEA020000:
            self.error(f"bad extended attribute block {blk}")
            return
        refs = struct.unpack_from("<I", data, 4)[0]
        if refs > 1:
            struct.pack_into("<I", data, 4, refs - 1)
            self.mark_dirty(blk)
        else:
            self.alloc.free_block(blk)

    # -- write-back
    def commit(self) -> None:
        """Write what the last operation dirtied: bitmaps, then inode tables, indirect and
        directory blocks, then group descriptors, then the superblock."""
        self._reap()
        bs = self.block_size
        for blk, _prio in sorted(self._dirty.items(), key=lambda kv: (kv[1], kv[0])):
            buf = self._cache.get(blk)
            if buf is not None:
                self._dev_write(blk * bs, bytes(buf))
        self._dirty.clear()
        a = self.alloc
        for g in sorted(a.dirty_groups):
            o = g * a.dsize
            self._dev_write(self.gdt_offset + o, bytes(self.gdt_raw[o:o + a.dsize]))
        a.dirty_groups.clear()
        if self._sb_dirty:
            self._sb_dirty = False
            self._dev_write(disk.SUPERBLOCK_OFFSET, bytes(self.sb_raw))

    def sync(self) -> None:
        if not self.rw:
            return
        self.commit()
        if self._raw_flush is not None:
            try:
                self._raw_flush()
            except Errno:
                self.error("I/O error flushing the device")
                raise

    # -- mount state
    def rw_refusal(self) -> str | None:
        """Why this image can't be written by us, or None."""
        s = self.sbi
        bad = disk.feature_names(s.feature_incompat & ~disk.RW_INCOMPAT, disk.INCOMPAT_NAMES)
        bad += disk.feature_names(s.feature_ro_compat & ~disk.RW_RO_COMPAT, RO_COMPAT_NAMES)
        bad += disk.feature_names(s.feature_compat & ~disk.RW_COMPAT, COMPAT_NAMES)
        if bad:
            return "features " + ",".join(bad) + " are supported read-only"
        if s.feature_compat & disk.COMPAT_HAS_JOURNAL and not self._journal_empty():
            return "the journal is not empty (replay it with e2fsck)"
        return None

    def _journal_empty(self) -> bool:
        inum = struct.unpack_from("<I", self.sb_raw, disk.SB_JOURNAL_INUM)[0]
        if not inum:
            return False                        # an external journal device
        try:
            node = self.iget(inum)
            jsb = node._read(0, 1024) if node.size >= 1024 else b""
        except Errno:
            return False
        if len(jsb) < 32 or struct.unpack_from(">I", jsb, 0)[0] != disk.JBD2_MAGIC:
            return False
        return struct.unpack_from(">I", jsb, 0x1C)[0] == 0        # s_start: nothing to replay

    def mount_rw(self) -> None:
        """Become writable: the superblock says "not clean" until release()."""
        state = struct.unpack_from("<H", self.sb_raw, disk.SB_STATE)[0]
        self._mount_state = state
        if not state & disk.EXT2_VALID_FS:
            self.info("warning: mounting unchecked fs, running e2fsck is recommended")
        count = struct.unpack_from("<H", self.sb_raw, disk.SB_MNT_COUNT)[0]
        now = int(time.time()) & 0xFFFFFFFF
        self._sb_put("<H", disk.SB_STATE, state & ~disk.EXT2_VALID_FS)
        self._sb_put("<H", disk.SB_MNT_COUNT, (count + 1) & 0xFFFF)
        self._sb_put("<II", disk.SB_MTIME, now, now)
        self.rw = True
        self.flags = 0
        self.commit()

    def release(self) -> None:
        """umount or shutdown: free unlinked inodes, mark the superblock clean, flush."""
        if not self.rw:
            return
        self._dead.extend(self._orphans.keys())
        self._orphans.clear()
        self._reap()
        now = int(time.time()) & 0xFFFFFFFF
        self._sb_put("<H", disk.SB_STATE, self._mount_state)
        self._sb_put("<I", disk.SB_WTIME, now)
        self.sync()
        self.rw = False
        self.flags = MS_RDONLY

    def remount(self, flags: int) -> None:
        """mount -o remount,rw|ro: the same checks as a fresh rw mount."""
        if flags & MS_RDONLY:
            self.release()
            return
        if self.rw:
            return
        if self._raw_write is None:
            self.info("write access unavailable, cannot remount read-write")
            raise Errno(errno.EACCES)
        why = self.rw_refusal()
        if why is not None:
            self.info(f"can't remount read-write: {why}")
            raise Errno(errno.EROFS)
        self.mount_rw()

    def statfs(self) -> dict[str, int]:
        s = self.sbi
        return dict(bsize=self.block_size, blocks=s.blocks_count, bfree=s.free_blocks_count,
                    bavail=max(0, s.free_blocks_count - s.r_blocks_count),
                    files=s.inodes_count, ffree=s.free_inodes_count, namelen=NAME_MAX,
                    frsize=self.block_size, flags=0 if self.rw else MS_RDONLY)


class Device(NamedTuple):
    read: Reader
    write: Writer | None        # None: the device is read-only
    flush: Callable[[], object] | None
    size: int
    name: str
    rdev: int
    key: object                 # identifies the device: one rw filesystem per device


# device -> the read-write filesystem on it: a second mount must not write behind its back
_RW_MOUNTS: "weakref.WeakValueDictionary[int, Ext2FS]" = weakref.WeakValueDictionary()


def _mounted_rw(dev: Device) -> "Ext2FS | None":
    fs = _RW_MOUNTS.get(id(dev.key))
    return fs if fs is not None and fs.rw else None


def _open_device(source: bytes, t: "Task") -> Device:
    """The block device the guest named."""
    from usermode.fs.file import SEEK_END, O_RDWR
    from usermode.fs.vfs import AT_FDCWD
    vfs = t.fs.vfs
    if not source:
        raise Errno(errno.ENOTBLK)
    p = vfs.lookup(t, AT_FDCWD, source)
    inode = p.dentry.inode
    if inode.mode & S_IFMT != S_IFBLK:
        raise Errno(errno.ENOTBLK)
    if p.mount.flags & 4:           # MS_NODEV
        raise Errno(errno.EACCES)
    opener = vfs.devices.opener(True, inode.rdev)
    if opener is None:
        raise Errno(errno.ENXIO)
    f = opener(t, O_RDWR)
    d = getattr(f, "disk", None)
    if d is not None and hasattr(d, "read"):
        writable = not getattr(d, "readonly", True)
        return Device(d.read, d.write if writable else None, d.flush if writable else None,
                      d.size, getattr(d, "name", "device"), inode.rdev, d)
    size = f.lseek(0, SEEK_END)
    name = source.rsplit(b"/", 1)[-1].decode(errors="replace")
    return Device(lambda off, n: f.pread(t, n, off), lambda off, data: f.pwrite(t, data, off),
                  f.fsync, size, name, inode.rdev, inode)


def _uuid(fs: Ext2FS) -> str:
    u = fs.sbi.uuid.hex()
    return f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}"


def make_factory(fstype: str):
    def factory(source: bytes, flags: int, data: bytes, t: "Task | None") -> FileSystem:
        if t is None:
            raise Errno(errno.EINVAL)
        kernel = getattr(t, "kernel", None)
        log = kernel.printk if kernel is not None else None
        dev = _open_device(source, t)
        name = dev.name
        shared = _mounted_rw(dev)
        if shared is not None:
            return shared                   # one superblock per device, as in Linux
        try:
            fs = Ext2FS(dev.read, dev.size, fstype, name, log, dev.write, dev.flush)
        except Ext2FormatError as e:
            if log:
                log(f"EXT4-fs ({name}): can't mount: {e}")
            raise Errno(errno.EINVAL) from None
        fs.dev = dev.rdev
        if not flags & MS_RDONLY:
            if dev.write is None:
                fs.info("write access unavailable, cannot proceed (mount with -o ro)")
                raise Errno(errno.EACCES)
            why = fs.rw_refusal()
            if why is not None:
                fs.info(f"can't mount read-write: {why}; mount with -o ro")
                raise Errno(errno.EROFS)
            fs.mount_rw()
            _RW_MOUNTS[id(dev.key)] = fs
            journal = " (journal left untouched)" if fs.sbi.feature_compat & \
                disk.COMPAT_HAS_JOURNAL else ""
            fs.info(f"mounted filesystem {_uuid(fs)} r/w without journal{journal}")
        else:
            fs.info(f"mounted filesystem {_uuid(fs)} ro without journal")
        return fs
    return factory


def register(vfs) -> None:
    for name in ("ext2", "ext3", "ext4"):
        vfs.register_fstype(name, make_factory(name))
