"""uml_moo: merge a UML COW file with its backing file (same usage, messages, exit codes and
output bytes as uml-utilities' uml_moo).

    uml_moo [ -b <actual backing file> ] <COW file> <new backing file>
    uml_moo [ -b <actual backing file> ] -d <COW file>

The new file gets every whole sector of the device (size // sectorsize of them): from the
COW file where the bitmap bit is set, from the backing file otherwise.  All-zero sectors
other than the last are left as holes, so the result is sparse like the real tool's.  With
-d only the sectors present in the COW file are written into the backing file itself (a
zero COW sector is written only where the backing sector is not already zero).

As in the real tool, "-d" is only recognised as the first argument, before any "-b".
Unlike it, we take the image locks (usermode.host.blockfile) so that an image in use by a
running usermode or UML instance is refused instead of being merged underneath it.
"""
from __future__ import annotations

import os
import sys

from usermode.drivers import cow
from usermode.host.blockfile import BlockFile, BlockFileError, stat_file

USAGE = """\
%s usage:
\t%s [ -b <actual backing file> ] <COW file> <new backing file>
\t%s [ -b <actual backing file> ] -d <COW file>
Creates a new filesystem image from the COW file and its backing file.
Specifying -d will cause a destructive, in-place merge of the COW file into
its current backing file
Specifying -b overrides the backing_file specified in the COW file.  This is
needed when dealing with a COW file that was created inside a chroot jail.
%s supports version 1,2 and 3 COW files.
"""

CHUNK_SECTORS = 2048


class MooError(Exception):
    """Print str() on stderr and exit 1."""


def _perror(what: str, e: BaseException | None) -> MooError:
    """perror()-style message; a short read (no errno) gives "Success", as in C."""
    if isinstance(e, BlockFileError):
        if isinstance(e, cow.ImageLockedError):
            return MooError(f"{what}: {e}")
        return MooError(f"{what}: {os.strerror(e.errno)}")
    if isinstance(e, OSError) and e.errno:
        return MooError(f"{what}: {os.strerror(e.errno)}")
    return MooError(f"{what}: Success")


def _stdout(lines) -> None:
    if lines:
        sys.stdout.write("".join(f"{m}\n" for m in lines))
        sys.stdout.flush()


def _runs(bits: bytearray, start: int, end: int):
    """Yield (first, stop, bit) runs of equal bitmap bits over sectors [start, end)."""
    s = start
    nbytes = len(bits)

    def bit(i: int) -> bool:
        b = i >> 3
        return b < nbytes and bool(bits[b] & (1 << (i & 7)))
    while s < end:
        v = bit(s)
        e = s + 1
        while e < end and bit(e) == v:
            e += 1
        yield s, e, v
        s = e


def merge(cow_path: str, out_path: str | None, actual_backing: str | None = None) -> None:
    """The real tool's create_backing_file(); raises MooError with its messages."""
    try:
        cow_f = BlockFile(cow_path, writable=False, lock=True)
    except BlockFileError as e:
        raise _perror("COW file open", e) from None
    files = [cow_f]
    try:
        try:
            h = cow.read_header(cow_f)
        except cow.CowError as e:
            _stdout(e.uml_messages)     # the real tool's cow_printf()s go to stdout
            raise MooError("Reading COW header failed") from None
        except BlockFileError:
            raise MooError("Reading COW header failed") from None
        _stdout(h.notices)
        backing = actual_backing if actual_backing is not None else h.backing_file
        try:
            bsize, bmtime = stat_file(backing)
        except BlockFileError as e:
            raise _perror("Stating backing file", e) from None
        if bsize != h.size:
            raise MooError(f'Size mismatch ({h.size} vs {bsize}) of COW header vs backing '
                           f'file "{backing}"')
        if bmtime != h.mtime:
            raise MooError(f'mtime mismatch ({h.mtime} vs {bmtime}) of COW header vs backing '
                           f'file "{backing}"')
        in_place = out_path is None
        try:
            back_f = BlockFile(backing, writable=in_place, lock=True)
        except BlockFileError as e:
            raise _perror("Opening backing file", e) from None
        files.append(back_f)
        if in_place:
            out_f = back_f
        else:
            try:
                out_f = BlockFile(out_path, writable=True, create="trunc", mode=0o644, lock=False)
            except BlockFileError as e:
                raise _perror("Output file open", e) from None
            files.append(out_f)
        try:
            bitmap = bytearray(cow_f.pread(h.bitmap_offset, h.bitmap_len))
        except BlockFileError as e:
            raise _perror("Reading COW bitmap", e) from None
        if len(bitmap) != h.bitmap_len:
            raise _perror("Reading COW bitmap", None)
        _copy(h, bitmap, cow_f, back_f, out_f, in_place)
    finally:
        for f in files:
            f.close()


def _copy(h: cow.CowHeader, bitmap: bytearray, cow_f: BlockFile, back_f: BlockFile,
          out_f: BlockFile, in_place: bool) -> None:
    ss, sectors = h.sectorsize, h.sectors
    zero = bytes(ss)
    for c0 in range(0, sectors, CHUNK_SECTORS):
        c1 = min(sectors, c0 + CHUNK_SECTORS)
        for first, stop, from_cow in _runs(bitmap, c0, c1):
            if in_place and not from_cow:
                continue            # the backing file already holds these sectors
            n = (stop - first) * ss
            src, off = (cow_f, h.data_offset + first * ss) if from_cow else (back_f, first * ss)
            err: BaseException | None = None
            try:
                data = src.pread(off, n)
            except BlockFileError as e:
                data, err = b"", e
            whole = len(data) // ss          # sectors read in full before any short read
            _write_run(h, data, first, first + whole, back_f, out_f, in_place, zero, sectors)
            if whole < stop - first:
                raise _perror("Reading data", err)


def _write_run(h, data: bytes, first: int, stop: int, back_f: BlockFile, out_f: BlockFile,
               in_place: bool, zero: bytes, sectors: int) -> None:
    ss = h.sectorsize
    pending_start = -1          # coalesce consecutive sectors to write into one pwrite
    buf = bytearray()

    def flush():
        nonlocal pending_start, buf
        if pending_start >= 0:
            try:
                out_f.pwrite(pending_start * ss, buf)
            except BlockFileError as e:
                raise _perror("Writing data", e) from None
        pending_start, buf = -1, bytearray()

    for i in range(first, stop):
        sec = data[(i - first) * ss:(i - first + 1) * ss]
        if i < sectors - 1 and sec == zero:
            if not in_place:
                flush()
                continue            # a hole in the new file reads as zeros
            try:
                old = back_f.pread(i * ss, ss)
            except BlockFileError as e:
                raise _perror("Checking backing file for zeros", e) from None
            if len(old) != ss:
                raise _perror("Checking backing file for zeros", None)
            if old == zero:
                flush()
                continue
        if pending_start < 0:
            pending_start = i
        buf += sec
    flush()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "uml_moo"

    def usage() -> int:
        sys.stderr.write(USAGE % (prog, prog, prog, prog))
        return 1
    if not args:
        return usage()
    in_place = False
    if args[0] == "-d":
        in_place = True
        args.pop(0)
    actual = None
    if args and args[0] == "-b":
        actual = args[1] if len(args) > 1 else None
        args = args[2:]
    if in_place:
        if len(args) != 1:
            return usage()
        cow_path, out = args[0], None
    else:
        if len(args) != 2:
            return usage()
        cow_path, out = args
    try:
        merge(cow_path, out, actual)
    except MooError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
