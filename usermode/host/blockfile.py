"""Host side of block devices: image files opened, read, written, stat'ed and locked.

This is the only place the storage layer touches the host (UML's os-Linux/file.c for
ubd).  Everything above it (usermode/drivers/cow.py, the ubd driver, uml_moo) goes
through BlockFile and the few helpers here.

Locking: like UML (os_lock_file), a writable image gets an exclusive and a read-only one a
shared fcntl lock over the whole file.  We take open-file-description locks (F_OFD_SETLK):
they conflict with the classic POSIX locks the real UML kernel takes, so usermode and UML
exclude each other, and unlike POSIX locks they also conflict between two opens inside one
process and are not dropped when some other descriptor of the file is closed.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat as _stat
import struct

F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
_FLOCK = "hhqqi4x"      # struct flock on Linux x86_64: type, whence, start, len, pid


class BlockFileError(OSError):
    """An image file could not be opened or used; str() is a one-line message."""

    def __init__(self, err: int, message: str):
        super().__init__(err, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ImageLockedError(BlockFileError):
    """Another instance (usermode or UML) holds the image."""


def _describe(path: str, e: OSError) -> str:
    return f"{path}: {os.strerror(e.errno) if e.errno else str(e)}"


def stat_file(path: str) -> tuple[int, int]:
    """(size in bytes, mtime in whole seconds) of a host file, following symlinks.

    A block device's size is its capacity (UML's os_file_size does the same)."""
    try:
        st = os.stat(path)
        if _stat.S_ISBLK(st.st_mode):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                return os.lseek(fd, 0, os.SEEK_END), int(st.st_mtime)
            finally:
                os.close(fd)
        return st.st_size, int(st.st_mtime)
    except OSError as e:
        raise BlockFileError(e.errno or errno.EIO, _describe(path, e)) from None


def exists(path: str) -> bool:
    return os.path.lexists(path)


def remove(path: str) -> None:
    """Remove a file, ignoring errors (cleanup of a half-made image)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def same_file(a: str, b: str) -> bool:
    """True if both paths name the same host file (same device and inode)."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def absolutize(path: str) -> str:
    """The absolute name UML records for a backing file (cow_user.c absolutize()).

    UML changes into the directory part and asks getcwd(), so symlinks in the directory
    part are resolved but the last component is kept as given."""
    head, sep, tail = path.rpartition("/")
    if not sep:
        return os.path.join(os.getcwd(), path)
    try:
        d = os.path.realpath(head or "/", strict=True)
    except OSError as e:
        raise BlockFileError(e.errno or errno.ENOENT, _describe(head or "/", e)) from None
    return (d.rstrip("/") or "") + "/" + tail


class BlockFile:
    """One open host image file.

    writable: O_RDWR (else O_RDONLY); sync: O_SYNC (ubd's 's' flag); create: "excl" makes a new
    file (O_CREAT|O_EXCL), "trunc" creates or truncates it (creat()); lock: take the fcntl lock
    described in the module docstring (exclusive when writable), failing with ImageLockedError.
    """

    def __init__(self, path: str, writable: bool = False, *, sync: bool = False,
                 create: str | None = None, mode: int = 0o644, lock: bool = True):
        self.path = path
        self.writable = writable
        flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
        if sync:
            flags |= os.O_SYNC
        if create == "excl":
            flags |= os.O_CREAT | os.O_EXCL
        elif create == "trunc":
            flags |= os.O_CREAT | os.O_TRUNC
        elif create is not None:
            raise ValueError(f"bad create mode {create!r}")
        try:
            self.fd = os.open(path, flags, mode)
        except OSError as e:
            if writable and e.errno in (errno.EACCES, errno.EROFS, errno.EPERM) and create is None:
                msg = f"{path}: cannot open read-write ({os.strerror(e.errno)}); use a read-only device"
            else:
                msg = _describe(path, e)
            raise BlockFileError(e.errno or errno.EIO, msg) from None
        if lock:
            try:
                self._lock(exclusive=writable)
            except BaseException:
                os.close(self.fd)
                self.fd = -1
                raise

    # --- locking ---------------------------------------------------------------------------
    def _lock(self, exclusive: bool) -> None:
        ltype = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
        req = struct.pack(_FLOCK, ltype, os.SEEK_SET, 0, 0, 0)
        try:
            fcntl.fcntl(self.fd, F_OFD_SETLK, req)
            return
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise BlockFileError(e.errno, f"{self.path}: cannot lock: {os.strerror(e.errno)}") from None
        holder = ""
        try:
            got = fcntl.fcntl(self.fd, F_OFD_GETLK, req)
            pid = struct.unpack(_FLOCK, got)[4]
            if pid > 0:
                holder = f" (locked by pid {pid})"
        except OSError:
            pass
        raise ImageLockedError(errno.EAGAIN, f"{self.path}: already in use by another instance{holder}")

    # --- I/O ---------------------------------------------------------------------------------
    def pread(self, offset: int, length: int) -> bytes:
        """Up to length bytes at offset; shorter only at end of file."""
        chunks = []
        while length > 0:
            try:
                b = os.pread(self.fd, length, offset)
            except InterruptedError:
                continue
            except OSError as e:
                raise BlockFileError(e.errno or errno.EIO, f"{self.path}: read failed: "
                                     f"{os.strerror(e.errno)}") from None
            if not b:
                break
            chunks.append(b)
            offset += len(b)
            length -= len(b)
        return b"".join(chunks)

    def pwrite(self, offset: int, data) -> None:
        """Write all of data at offset."""
        view = memoryview(data)
        while view:
            try:
                n = os.pwrite(self.fd, view, offset)
            except InterruptedError:
                continue
            except OSError as e:
                raise BlockFileError(e.errno or errno.EIO, f"{self.path}: write failed: "
                                     f"{os.strerror(e.errno)}") from None
            view = view[n:]
            offset += n

    def size(self) -> int:
        st = os.fstat(self.fd)
        if _stat.S_ISBLK(st.st_mode):
            return os.lseek(self.fd, 0, os.SEEK_END)
        return st.st_size

    def mtime(self) -> int:
        return int(os.fstat(self.fd).st_mtime)

    def fsync(self) -> None:
        os.fsync(self.fd)

    def fdatasync(self) -> None:
        os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)       # closing the description releases its OFD lock
            self.fd = -1

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def __enter__(self) -> "BlockFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
