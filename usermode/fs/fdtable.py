"""The per-process descriptor table (files_struct): fd -> (File, close-on-exec).

File.refs counts the slots (in every table) pointing at a File; release() runs when the
last one goes, which is what makes a pipe's reader count or a lock's lifetime right.
"""
from __future__ import annotations

import errno
from typing import Iterator

from usermode.fs.file import File
from usermode.fs.locks import release_owner
from usermode.kernel.errors import Errno

NR_OPEN_DEFAULT = 1024
NR_OPEN_MAX = 1 << 20


def put_file(f: File) -> None:
    """Drop one reference; release the file when none remain."""
    f.refs -= 1
    if f.refs <= 0:
        f.refs = 0
        if f.vpath is not None and f.vpath.dentry.inode.locks is not None:
            release_owner(f.vpath.dentry.inode, f)
        f.release()


class FdTable:
    __slots__ = ("fds", "cloexec", "limit", "__weakref__")

    def __init__(self, limit: int = NR_OPEN_DEFAULT) -> None:
        self.fds: dict[int, File] = {}
        self.cloexec: set[int] = set()
        self.limit = limit          # RLIMIT_NOFILE soft limit; the lead may update it

    def get(self, fd: int) -> File:
        f = self.fds.get(fd)
        if f is None:
            raise Errno(errno.EBADF)
        return f

    def __contains__(self, fd: int) -> bool:
        return fd in self.fds

    def __iter__(self) -> Iterator[tuple[int, File]]:
        """(fd, File) in fd order, for /proc/<pid>/fd."""
        return iter(sorted(self.fds.items()))

    def __len__(self) -> int:
        return len(self.fds)

    def lowest_free(self, lowest: int = 0) -> int:
        fd = max(0, lowest)
        while fd in self.fds:
            fd += 1
        if fd >= self.limit:
            raise Errno(errno.EMFILE)
        return fd

    def install(self, file: File, cloexec: bool = False, lowest: int = 0) -> int:
        fd = self.lowest_free(lowest)
        self._set(fd, file, cloexec)
        return fd

    def install_at(self, fd: int, file: File, cloexec: bool = False) -> int:
        """dup2 semantics: the old file at fd (if any) is closed; EBADF past the limit."""
        if fd < 0 or fd >= self.limit:
            raise Errno(errno.EBADF)
        old = self.fds.get(fd)
        self._set(fd, file, cloexec)
        if old is not None:
            put_file(old)
        return fd

    def _set(self, fd: int, file: File, cloexec: bool) -> None:
        file.refs += 1
        self.fds[fd] = file
        if cloexec:
            self.cloexec.add(fd)
        else:
            self.cloexec.discard(fd)

    def remove(self, fd: int) -> File:
        """Detach fd without dropping the reference (caller owns it now)."""
        f = self.fds.pop(fd, None)
        if f is None:
            raise Errno(errno.EBADF)
        self.cloexec.discard(fd)
        return f

    def close(self, fd: int) -> None:
        put_file(self.remove(fd))

    def get_cloexec(self, fd: int) -> bool:
        self.get(fd)
        return fd in self.cloexec

    def set_cloexec(self, fd: int, on: bool) -> None:
        self.get(fd)
        if on:
            self.cloexec.add(fd)
        else:
            self.cloexec.discard(fd)

    def fork(self) -> "FdTable":
        new = FdTable(self.limit)
        new.fds = dict(self.fds)
        new.cloexec = set(self.cloexec)
        for f in new.fds.values():
            f.refs += 1
        return new

    def close_on_exec(self) -> None:
        for fd in sorted(self.cloexec):
            if fd in self.fds:
                self.close(fd)
        self.cloexec.clear()

    def close_range(self, first: int, last: int, cloexec_only: bool = False) -> None:
        for fd in sorted(fd for fd in self.fds if first <= fd <= last):
            if cloexec_only:
                self.cloexec.add(fd)
            else:
                self.close(fd)

    def close_all(self) -> None:
        fds, self.fds = self.fds, {}
        self.cloexec.clear()
        for fd in sorted(fds):
            put_file(fds[fd])
