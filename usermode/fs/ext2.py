"""ext2/ext3/ext4 on a block device, read-only for now (mount -t ext4 -o ro /dev/ubdb /mnt).

Reads what a default `mke2fs -t ext2|ext3|ext4` makes: 32- and 64-byte group descriptors,
128/256-byte inodes, extent trees of any depth and classic indirect block maps, linear and
dir_index directories (whose leaves are linear), fast and slow symlinks, sparse files,
device nodes, FIFOs and sockets, nanosecond timestamps and 32-bit uids/gids.  The journal
is not replayed: an image that needs recovery is refused, as are incompat features this
reader does not understand (inline_data, encrypt, casefold, meta_bg, ...).  Mounting
read-write is refused with EROFS.  On-disk structures are in ext2_disk.py.
"""
from __future__ import annotations

import bisect
import errno
import struct
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

from usermode.fs import ext2_disk as disk
from usermode.fs.ext2_disk import Ext2FormatError, RawInode, Superblock
from usermode.fs.inode import MS_RDONLY, NAME_MAX, FileSystem, Inode
from usermode.fs.stat import (S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Stat,
                              dtype_of, makedev)
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.kernel.task import Task

EXT4_SUPER_MAGIC = 0xEF53
CACHE_BLOCKS = 256

# read(off, n) -> bytes from the device
Reader = Callable[[int, int], bytes]


class Ext2Inode(Inode):
    def __init__(self, sb: "Ext2FS", ino: int, raw: RawInode) -> None:
        rdev = 0
        ftype = raw.mode & S_IFMT
        if ftype in (S_IFCHR, S_IFBLK):
            rdev = makedev(*disk.decode_rdev(raw.i_block))
        super().__init__(sb, ino, raw.mode, raw.uid, raw.gid, rdev)
        self.raw = raw
        self.nlink = raw.links_count
        self.size = raw.size if ftype in (S_IFREG, S_IFDIR, S_IFLNK) else 0
        self.atime_ns, self.mtime_ns, self.ctime_ns = raw.atime_ns, raw.mtime_ns, raw.ctime_ns
        self.btime_ns = raw.crtime_ns or 0
        self._extents: list[disk.Extent] | None = None
        self._starts: list[int] = []
        self._entries: dict[bytes, disk.DirEntry] | None = None
        self._order: list[disk.DirEntry] = []

    @property
    def fs(self) -> "Ext2FS":
        sb = self.sb
        assert isinstance(sb, Ext2FS)
        return sb

    def getattr(self) -> Stat:
        return Stat(dev=self.sb.dev, ino=self.ino, mode=self.mode, nlink=self.nlink,
                    uid=self.uid, gid=self.gid, rdev=self.rdev, size=self.size,
                    blksize=self.fs.block_size, blocks=self.raw.blocks,
                    atime_ns=self.atime_ns, mtime_ns=self.mtime_ns, ctime_ns=self.ctime_ns,
                    btime_ns=self.btime_ns)

    # -- block mapping
    def _load_extents(self) -> list[disk.Extent]:
        if self._extents is None:
            try:
                ext = disk.walk_extents(self.raw.i_block, self.fs.read_block)
            except Ext2FormatError as e:
                self.fs.error(f"inode #{self.ino}: {e}")
                raise Errno(errno.EIO) from None
            self._extents = ext
            self._starts = [e.lblk for e in ext]
        return self._extents

    def _runs(self, first: int, last: int) -> list[tuple[int, int, int]]:
        """(logical, physical, count) runs of written blocks within [first, last)."""
        if self.raw.flags & disk.EXT4_INLINE_DATA_FL:
            raise Errno(errno.EIO)
        out: list[tuple[int, int, int]] = []
        if self.raw.flags & disk.EXT4_EXTENTS_FL:
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
        iblock = struct.unpack("<15I", self.raw.i_block)
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

    # -- directories
    def _load_dir(self) -> dict[bytes, disk.DirEntry]:
        if self._entries is None:
            fs = self.fs
            bs = fs.block_size
            data = self._read(0, self.size - self.size % bs) if self.size >= bs else b""
            entries: dict[bytes, disk.DirEntry] = {}
            order: list[disk.DirEntry] = []
            try:
                for b in range(0, len(data), bs):
                    for e in disk.parse_dir_block(data[b:b + bs], fs.filetype):
                        if e.name not in entries:
                            entries[e.name] = e
                            order.append(e)
            except Ext2FormatError as e:
                fs.error(f"directory inode #{self.ino}: {e}")
                raise Errno(errno.EIO) from None
            self._entries, self._order = entries, order
        return self._entries

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
        self._load_dir()
        out = []
        for e in self._order:
            mode = disk.FT_TO_MODE.get(e.file_type)
            if mode is None:
                mode = self.fs.iget(e.ino).mode
            out.append((e.name, e.ino, dtype_of(mode)))
        return out

    # -- symlinks
    def readlink(self) -> bytes:
        if not self.is_symlink:
            raise Errno(errno.EINVAL)
        raw = self.raw
        acl_blocks = self.fs.block_size // 512 if raw.file_acl else 0
        if self.size < 60 and not raw.flags & (disk.EXT4_EXTENTS_FL |
                                               disk.EXT4_INLINE_DATA_FL) \
                and raw.blocks - acl_blocks <= 0:
            return raw.i_block[:self.size]
        return self._read(0, self.size) if self.size else b""

    # -- everything that would write
    def setattr(self, *a, **kw) -> None:
        raise Errno(errno.EROFS)

    def write_at(self, off: int, data: bytes) -> int:
        raise Errno(errno.EROFS)

    def truncate(self, size: int) -> None:
        raise Errno(errno.EISDIR if self.is_dir else errno.EROFS)

    def create(self, name, mode, uid, gid):
        raise Errno(errno.EROFS)

    def mkdir(self, name, mode, uid, gid):
        raise Errno(errno.EROFS)

    def mknod(self, name, mode, rdev, uid, gid):
        raise Errno(errno.EROFS)

    def symlink(self, name, target, uid, gid):
        raise Errno(errno.EROFS)

    def link(self, name, inode) -> None:
        raise Errno(errno.EROFS)

    def unlink(self, name) -> None:
        raise Errno(errno.EROFS)

    def rmdir(self, name) -> None:
        raise Errno(errno.EROFS)

    def rename(self, old, newdir, new, exchange=False) -> None:
        raise Errno(errno.EROFS)


class Ext2FS(FileSystem):
    """A read-only ext2/3/4 filesystem over read(off, n) of its device."""

    magic = EXT4_SUPER_MAGIC

    def __init__(self, read: Reader, device_size: int, fstype: str = "ext4",
                 name: str = "device", log: Callable[[str], None] | None = None) -> None:
        """Raises Ext2FormatError with a one-line reason when the image is unusable."""
        super().__init__()
        self.fstype = fstype
        self.name = name
        self._raw_read = read
        self._log = log
        self.device_size = device_size
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._ptr_cache: OrderedDict[int, tuple[int, ...]] = OrderedDict()
        self._inodes: weakref.WeakValueDictionary[int, Ext2Inode] = \
            weakref.WeakValueDictionary()
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
        self.block_size = sbi.block_size
        self.filetype = bool(sbi.feature_incompat & disk.INCOMPAT_FILETYPE)
        self.groups = self._read_groups()
        root = self.iget(disk.ROOT_INO)
        if not root.is_dir:
            raise Ext2FormatError("root inode is not a directory")
        self.root = root
        self._root_ref = root

    def error(self, msg: str) -> None:
        if self._log is not None:
            self._log(f"EXT4-fs error ({self.name}): {msg}")

    def read(self, off: int, n: int) -> bytes:
        data = self._raw_read(off, n)
        if len(data) < n:
            data += bytes(n - len(data))
        return data

    def read_block(self, blk: int) -> bytes:
        """One (metadata) block, through a small LRU cache."""
        data = self._cache.get(blk)
        if data is not None:
            self._cache.move_to_end(blk)
            return data
        if blk >= self.sbi.blocks_count:
            self.error(f"block {blk} beyond the end of the filesystem")
            raise Errno(errno.EIO)
        data = self.read(blk * self.block_size, self.block_size)
        self._cache[blk] = data
        if len(self._cache) > CACHE_BLOCKS:
            self._cache.popitem(last=False)
        return data

    def pointers(self, blk: int) -> tuple[int, ...]:
        """An indirect block as its block numbers."""
        p = self._ptr_cache.get(blk)
        if p is None:
            data = self.read_block(blk)
            p = struct.unpack(f"<{len(data) // 4}I", data)
            self._ptr_cache[blk] = p
            if len(self._ptr_cache) > CACHE_BLOCKS:
                self._ptr_cache.popitem(last=False)
        return p

    def _read_groups(self) -> list[disk.GroupDesc]:
        sbi = self.sbi
        dsize = sbi.desc_size if sbi.feature_incompat & disk.INCOMPAT_64BIT else 32
        count = sbi.group_count
        gdt_start = (sbi.first_data_block + 1) * self.block_size
        raw = self.read(gdt_start, count * dsize)
        groups = []
        for g in range(count):
            gd = disk.GroupDesc.parse(raw[g * dsize:(g + 1) * dsize], dsize)
            if not 0 < gd.inode_table < sbi.blocks_count:
                raise Ext2FormatError(f"group {g}: inode table at block {gd.inode_table} "
                                      "is outside the filesystem")
            groups.append(gd)
        return groups

    def read_raw_inode(self, ino: int) -> RawInode:
        sbi = self.sbi
        if not 1 <= ino <= sbi.inodes_count:
            self.error(f"bad inode number {ino}")
            raise Errno(errno.EIO)
        g, idx = divmod(ino - 1, sbi.inodes_per_group)
        off = self.groups[g].inode_table * self.block_size + idx * sbi.inode_size
        blk, within = divmod(off, self.block_size)
        data = self.read_block(blk)[within:within + sbi.inode_size]
        return RawInode.parse(data, sbi)

    def iget(self, ino: int) -> Ext2Inode:
        node = self._inodes.get(ino)
        if node is None:
            node = Ext2Inode(self, ino, self.read_raw_inode(ino))
            self._inodes[ino] = node
        return node

    def statfs(self) -> dict[str, int]:
        s = self.sbi
        return dict(bsize=self.block_size, blocks=s.blocks_count, bfree=s.free_blocks_count,
                    bavail=max(0, s.free_blocks_count - s.r_blocks_count),
                    files=s.inodes_count, ffree=s.free_inodes_count, namelen=NAME_MAX,
                    frsize=self.block_size, flags=0)


def _open_device(source: bytes, t: "Task") -> tuple[Reader, int, str, int]:
    """(reader, size, name, rdev) of the block device the guest named."""
    from usermode.fs.file import SEEK_END, O_RDONLY
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
    f = opener(t, O_RDONLY)
    disk_obj = getattr(f, "disk", None)
    if disk_obj is not None and hasattr(disk_obj, "read"):
        return disk_obj.read, disk_obj.size, getattr(disk_obj, "name", "device"), inode.rdev
    size = f.lseek(0, SEEK_END)
    name = source.rsplit(b"/", 1)[-1].decode(errors="replace")
    return (lambda off, n: f.pread(t, n, off)), size, name, inode.rdev


def make_factory(fstype: str):
    def factory(source: bytes, flags: int, data: bytes, t: "Task | None") -> FileSystem:
        if t is None:
            raise Errno(errno.EINVAL)
        kernel = getattr(t, "kernel", None)
        log = kernel.printk if kernel is not None else None
        read, size, name, rdev = _open_device(source, t)
        try:
            fs = Ext2FS(read, size, fstype, name, log)
        except Ext2FormatError as e:
            if log:
                log(f"EXT4-fs ({name}): can't mount: {e}")
            raise Errno(errno.EINVAL) from None
        if not flags & MS_RDONLY:
            if log:
                log(f"EXT4-fs ({name}): {fstype} support is read-only for now; "
                    "mount with -o ro")
            raise Errno(errno.EROFS)
        fs.dev = rdev
        if log:
            uuid = fs.sbi.uuid.hex()
            uuid = f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}"
            log(f"EXT4-fs ({name}): mounted filesystem {uuid} ro without journal "
                "(read-only for now)")
        return fs
    return factory


def register(vfs) -> None:
    for name in ("ext2", "ext3", "ext4"):
        vfs.register_fstype(name, make_factory(name))
