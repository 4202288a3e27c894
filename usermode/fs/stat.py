"""File attributes as Linux x86-64 reports them: struct stat (144 bytes), statx (256 bytes),
dev_t encodings and the S_IF* type bits."""
from __future__ import annotations

import struct
from dataclasses import dataclass

S_IFMT, S_IFSOCK, S_IFLNK, S_IFREG = 0o170000, 0o140000, 0o120000, 0o100000
S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO = 0o060000, 0o040000, 0o020000, 0o010000
S_ISUID, S_ISGID, S_ISVTX = 0o4000, 0o2000, 0o1000

DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = 0, 1, 2, 4, 6, 8, 10, 12

# statx mask bits
STATX_TYPE, STATX_MODE, STATX_NLINK, STATX_UID, STATX_GID = 0x1, 0x2, 0x4, 0x8, 0x10
STATX_ATIME, STATX_MTIME, STATX_CTIME, STATX_INO, STATX_SIZE = 0x20, 0x40, 0x80, 0x100, 0x200
STATX_BLOCKS, STATX_BASIC_STATS, STATX_BTIME, STATX_MNT_ID = 0x400, 0x7FF, 0x800, 0x1000

_STAT = struct.Struct("<QQQIIIiQqqqqqqqqq24x")
_STATX_HEAD = struct.Struct("<IIQIIIHHQQQQ")
_STATX_TS = struct.Struct("<qIi")


def dtype_of(mode: int) -> int:
    return (mode & S_IFMT) >> 12


def file_type(mode: int) -> int:
    return mode & S_IFMT


def S_ISDIR(mode: int) -> bool:
    return mode & S_IFMT == S_IFDIR


def S_ISLNK(mode: int) -> bool:
    return mode & S_IFMT == S_IFLNK


def S_ISREG(mode: int) -> bool:
    return mode & S_IFMT == S_IFREG


def makedev(major: int, minor: int) -> int:
    """The 64-bit dev_t userspace sees in st_dev/st_rdev (glibc's makedev)."""
    return ((major & 0xFFFFF000) << 32) | ((major & 0xFFF) << 8) | \
        ((minor & 0xFFFFFF00) << 12) | (minor & 0xFF)


def major(dev: int) -> int:
    return ((dev >> 32) & 0xFFFFF000) | ((dev >> 8) & 0xFFF)


def minor(dev: int) -> int:
    return ((dev >> 12) & 0xFFFFFF00) | (dev & 0xFF)


def decode_user_dev(dev: int) -> int:
    """mknod's dev argument (the kernel's new_decode_dev of 32 bits) as our dev_t."""
    dev &= 0xFFFFFFFF
    return makedev((dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00))


@dataclass(slots=True)
class Stat:
    dev: int = 0
    ino: int = 0
    mode: int = 0
    nlink: int = 1
    uid: int = 0
    gid: int = 0
    rdev: int = 0
    size: int = 0
    blksize: int = 4096
    blocks: int = 0
    atime_ns: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    btime_ns: int = 0
    mnt_id: int = 0

    def pack(self) -> bytes:
        """struct stat, exactly as x86-64 Linux lays it out."""
        a, m, c = self.atime_ns, self.mtime_ns, self.ctime_ns
        return _STAT.pack(self.dev, self.ino, self.nlink, self.mode, self.uid, self.gid, 0,
                          self.rdev, self.size, self.blksize, self.blocks,
                          a // 10**9, a % 10**9, m // 10**9, m % 10**9, c // 10**9, c % 10**9)

    def pack_statx(self, want: int) -> bytes:
        mask = STATX_BASIC_STATS | STATX_MNT_ID | (STATX_BTIME if self.btime_ns else 0)
        out = bytearray(256)
        _STATX_HEAD.pack_into(out, 0, mask, self.blksize, 0, self.nlink, self.uid, self.gid,
                              self.mode & 0xFFFF, 0, self.ino, self.size, self.blocks, 0)
        for off, ns in ((64, self.atime_ns), (80, self.btime_ns), (96, self.ctime_ns),
                        (112, self.mtime_ns)):
            _STATX_TS.pack_into(out, off, ns // 10**9, ns % 10**9, 0)
        struct.pack_into("<IIIIQ", out, 128, major(self.rdev), minor(self.rdev),
                         major(self.dev), minor(self.dev), self.mnt_id)
        return bytes(out)


STAT_SIZE = _STAT.size
assert STAT_SIZE == 144
