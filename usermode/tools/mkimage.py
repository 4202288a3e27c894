"""usermode mkimage: an ext2/3/4 image from a directory tree, for ubd.

    usermode mkimage [--size SIZE] [--type ext2|ext3|ext4] [--label L] [--force]
                     [--no-progress] SRC_DIR IMAGE

The filesystem is made and populated by e2fsprogs' `mke2fs -d SRC_DIR` (what Debian's
image tools use).  Without --size the image is sized from the tree: its data rounded up
to blocks, an inode table with room for 50% more files, and 25% headroom.  On a
terminal, a progress bar on stderr follows the population (the image's allocated bytes
against the tree's).  Bad input is a one-line error and exit status 1; a failed build
leaves no partial image behind.

Library use (the default guest's boot image): build_image(src_dir, out_path, size=None,
fstype="ext2", progress=True) -> the image size in bytes.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

BLOCK = 4096
INODE_SIZE = 256
MIN_SIZE = 4 << 20
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"


class MkimageError(Exception):
    """One-line reason the image can't be made."""


@dataclass
class TreeSize:
    data: int = 0           # bytes of file data, each file rounded up to blocks
    inodes: int = 0         # files, directories, links ...

    def minimum(self) -> int:
        """A size the tree certainly does not fit under (data plus inode tables)."""
        return self.data + self.inodes * INODE_SIZE + MIN_SIZE // 4

    def suggested(self) -> int:
        """Auto size: data + 25% headroom + room for the inode table and metadata."""
        size = int(self.data * 1.25) + int(self.inodes * 1.5) * INODE_SIZE + MIN_SIZE
        return max(MIN_SIZE, -(-size // (1 << 20)) * (1 << 20))


def parse_size(text: str) -> int:
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in UNITS else (t, "")
    try:
        value = float(num)
    except ValueError:
        raise MkimageError(f"bad size {text!r} (use e.g. 512M or 2G)") from None
    if value <= 0:
        raise MkimageError(f"bad size {text!r}: must be positive")
    return int(value * UNITS[unit])


def measure(src: str) -> TreeSize:
    ts = TreeSize(inodes=1)
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(src):
        ts.data += BLOCK * (1 + len(dirnames + filenames) * 40 // BLOCK)
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            ts.inodes += 1
            if not os.path.isdir(os.path.join(dirpath, name)) or os.path.islink(
                    os.path.join(dirpath, name)):
                allocated = min(st.st_blocks * 512, st.st_size) if st.st_blocks else \
                    (st.st_size if st.st_size > 60 else 0)
                ts.data += -(-allocated // BLOCK) * BLOCK
    return ts


class Progress:
    """A one-line bar on stderr, redrawn in place; nothing at all when not a tty."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = max(total, 1)
        self.enabled = enabled and sys.stderr.isatty()
        self.last = -1

    def update(self, done: int, label: str = "populating") -> None:
        if not self.enabled:
            return
        pct = min(100, done * 100 // self.total)
        if pct == self.last:
            return
        self.last = pct
        width = 30
        fill = width * pct // 100
        sys.stderr.write(f"\r{label} [{'#' * fill}{'.' * (width - fill)}] {pct:3d}% "
                         f"{done / (1 << 20):.1f}/{self.total / (1 << 20):.1f} MiB")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            self.update(self.total, "done      ")
            sys.stderr.write("\n")
            sys.stderr.flush()


def _mke2fs() -> str:
    path = shutil.which("mke2fs", path=SBIN)
    if path is None:
        raise MkimageError("mke2fs not found (install e2fsprogs)")
    return path


def _check_inputs(src_dir: str, out_path: str, force: bool) -> None:
    if not os.path.isdir(src_dir):
        raise MkimageError(f"{src_dir}: no such directory")
    if os.path.exists(out_path) and not force:
        raise MkimageError(f"{out_path}: already exists (use --force to overwrite)")
    if os.path.isdir(out_path):
        raise MkimageError(f"{out_path}: is a directory")
    parent = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(parent):
        raise MkimageError(f"{parent}: no such directory")


def _run_mke2fs(cmd: list[str], out_path: str, bar: Progress) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    while proc.poll() is None:
        try:
            bar.update(os.stat(out_path).st_blocks * 512)
        except OSError:
            pass
        time.sleep(0.1)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if "__populate" in ln or "alloc" in ln
                    or "space" in ln.lower()), lines[-1] if lines else "failed")
        raise MkimageError(f"mke2fs: {why}")


def build_image(src_dir: str, out_path: str, size: int | None = None, fstype: str = "ext2",
                progress: bool = True, force: bool = True, label: str | None = None) -> int:
    """Make out_path an image of fstype holding src_dir's tree; returns its size.
    Raises MkimageError with a one-line reason (out_path is then not left behind)."""
    if fstype not in ("ext2", "ext3", "ext4"):
        raise MkimageError(f"unsupported filesystem type {fstype!r} (ext2, ext3 or ext4)")
    _check_inputs(src_dir, out_path, force)
    tree = measure(src_dir)
    if size is None:
        size = tree.suggested()
    elif size < tree.minimum():
        raise MkimageError(f"size {size} is too small for {src_dir} (needs at least "
                           f"{-(-tree.minimum() // (1 << 20))}M)")
    size = size // BLOCK * BLOCK
    inodes = max(int(tree.inodes * 1.5) + 64, 256)
    cmd = [_mke2fs(), "-q", "-F", "-t", fstype, "-b", str(BLOCK), "-N", str(inodes),
           "-I", str(INODE_SIZE), "-d", src_dir]
    if label:
        cmd += ["-L", label]
    cmd += [out_path, str(size // 1024) + "k"]
    if os.path.exists(out_path):
        os.unlink(out_path)
    bar = Progress(tree.data, progress)
    try:
        _run_mke2fs(cmd, out_path, bar)
    except BaseException:
        if os.path.exists(out_path):
            os.unlink(out_path)
        raise
    bar.finish()
    return size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="usermode mkimage",
                                 description="Make an ext2/3/4 image from a directory.")
    ap.add_argument("src_dir")
    ap.add_argument("image")
    ap.add_argument("--size", help="image size (e.g. 256M, 2G); default: fit the tree")
    ap.add_argument("--type", "-t", default="ext2", dest="fstype",
                    help="ext2 (default), ext3 or ext4")
    ap.add_argument("--label", "-L")
    ap.add_argument("--force", "-f", action="store_true", help="overwrite an existing image")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        size = parse_size(args.size) if args.size else None
        got = build_image(args.src_dir, args.image, size, args.fstype,
                          not args.no_progress, args.force, args.label)
    except MkimageError as e:
        print(f"usermode mkimage: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"usermode mkimage: {e.filename or args.image}: {e.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"{args.image}: {args.fstype} image of {got >> 20} MiB from {args.src_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
