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
