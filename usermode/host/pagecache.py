"""The page cache: file contents in host memfds, mapped into guests copy-on-write.

A guest's private file mapping is a real mapping of a memfd holding the file's bytes, so
processes share the pages (ld.so's libc mappings are not copied per process), pages past
EOF raise SIGBUS and MADV_DONTNEED re-reads the file, as on Linux.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Callable

CHUNK = 1 << 20


class PageCache:
    def __init__(self, max_files: int = 256) -> None:
        self.max_files = max_files
        self.files: OrderedDict[tuple, int] = OrderedDict()

    def memfd(self, key: tuple, size: int, read: Callable[[int, int], bytes]) -> int:
        """The kernel-side fd of the memfd for a file version (key: dev, ino, mtime, size)."""
        fd = self.files.get(key)
        if fd is not None:
            self.files.move_to_end(key)
            return fd
        fd = os.memfd_create("usermode-page-cache", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            off = 0
            while off < size:
                data = read(off, min(CHUNK, size - off))
                if not data:
                    break
                os.pwrite(fd, data, off)
                off += len(data)
        except BaseException:
            os.close(fd)
            raise
        self.files[key] = fd
        while len(self.files) > self.max_files:
            _, old = self.files.popitem(last=False)
            os.close(old)          # existing guest mappings keep their pages
        return fd

    def close(self) -> None:
        for fd in self.files.values():
            os.close(fd)
        self.files.clear()


class SharedMemory:
    """A tmpfs file's data once it is mapped MAP_SHARED: a memfd, so every guest mapping
    and every read/write see the same bytes."""

    def __init__(self, data: bytes) -> None:
        self.fd = os.memfd_create("usermode-shm", os.MFD_CLOEXEC)
        if data:
            os.pwrite(self.fd, data, 0)
        os.ftruncate(self.fd, len(data))

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def read(self, off: int, n: int) -> bytes:
        return os.pread(self.fd, n, off)

    def write(self, off: int, data: bytes) -> int:
        return os.pwrite(self.fd, data, off)

    def resize(self, n: int) -> None:
        os.ftruncate(self.fd, n)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()
