"""Path resolution (namei): components, `..`, mount crossing, symlinks, chroot.

Rules followed (path_resolution(7)): absolute paths start at the task's root; `..` never
climbs above the root nor out of the namespace, and at a mount's root it steps to the
mount point's parent; every directory crossed needs search (x) permission; intermediate
symlinks are always followed, at most 40 in one resolution (ELOOP); a trailing slash
requires a directory and follows a final symlink.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from usermode.fs.inode import NAME_MAX, Path
from usermode.fs.perm import MAY_EXEC, check
from usermode.kernel.errors import Errno

if TYPE_CHECKING:
    from usermode.fs.vfs import VFS
    from usermode.kernel.creds import Creds

MAXSYMLINKS = 40
# openat2 RESOLVE_* flags the walker honours
RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS = 0x01, 0x02, 0x04
RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_CACHED = 0x08, 0x10, 0x20


class Walker:
    """One resolution: the symlink budget is shared by everything it follows."""

    __slots__ = ("vfs", "creds", "root", "links", "resolve")

    def __init__(self, vfs: "VFS", creds: "Creds", root: Path, resolve: int = 0) -> None:
        self.vfs = vfs
        self.creds = creds
        self.root = root
        self.links = 0
        self.resolve = resolve

    # -- single steps
    def dotdot(self, p: Path) -> Path:
        root = self.root
        if self.resolve & RESOLVE_BENEATH and p.dentry is root.dentry and p.mount is root.mount:
            raise Errno(errno.EXDEV)
        start = p.mount
        while p.dentry is not root.dentry or p.mount is not root.mount:
            if self.resolve & RESOLVE_NO_XDEV and p.mount is not start:
                raise Errno(errno.EXDEV)
            if p.dentry is p.mount.root:
                if p.mount.parent is None or p.mount.mountpoint is None:
                    return p
                p = Path(p.mount.parent, p.mount.mountpoint)
                continue
            parent = p.dentry.parent
            if parent is None:
                return p
            return self.vfs.cross_mounts(Path(p.mount, parent))
        return p

    def step(self, p: Path, name: bytes, passing: bool = False) -> Path:
        inode = p.dentry.inode
        if not inode.is_dir:
            raise Errno(errno.ENOTDIR)
        check(self.creds, inode, MAY_EXEC)
        if name == b"." or name == b"":
            return p
        if name == b"..":
            return self.dotdot(p)
        if len(name) > NAME_MAX:
            raise Errno(errno.ENAMETOOLONG)
        nxt = self.vfs.cross_mounts(Path(p.mount, p.dentry.child(name, passing)))
        if self.resolve & RESOLVE_NO_XDEV and nxt.mount is not p.mount:
            raise Errno(errno.EXDEV)
        return nxt

    def follow(self, dirp: Path, link: Path) -> Path:
        """Resolve the symlink `link` found in directory `dirp`."""
        self.links += 1
        if self.links > MAXSYMLINKS or self.resolve & RESOLVE_NO_SYMLINKS:
            raise Errno(errno.ELOOP)
        jump = link.dentry.inode.follow_link()       # /proc magic links (fd/N, exe, cwd)
        if jump is not None:
            if self.resolve & RESOLVE_NO_MAGICLINKS:
                raise Errno(errno.ELOOP)
            return jump
        target = link.dentry.inode.readlink()
        if not target:
            raise Errno(errno.ENOENT)
        if target[:1] == b"/" and self.resolve & RESOLVE_BENEATH:
            raise Errno(errno.EXDEV)
        return self.walk(self.root if target[:1] == b"/" else dirp, target, True)

    # -- whole paths
    def walk_dirs(self, start: Path, comps: list[bytes]) -> Path:
        """Walk every component, following symlinks; the result must be a directory."""
        p = start
        for name in comps:
            nxt = self.step(p, name, passing=True)
            if nxt.dentry.inode.is_symlink:
                nxt = self.follow(p, nxt)
            p = nxt
        if not p.dentry.inode.is_dir:
            raise Errno(errno.ENOTDIR)
        return p

    def walk(self, start: Path, path: bytes, follow: bool = True) -> Path:
        if not path:
            raise Errno(errno.ENOENT)
        if path[:1] == b"/":
            if self.resolve & RESOLVE_BENEATH:
                raise Errno(errno.EXDEV)
            start = self.root
        comps = [c for c in path.split(b"/") if c]
        if not comps:
            return start
        slash = path.endswith(b"/")
        parent = self.walk_dirs(start, comps[:-1])
        p = self.step(parent, comps[-1])
        if p.dentry.inode.is_symlink and (follow or slash):
            p = self.follow(parent, p)
        if slash and not p.dentry.inode.is_dir:
            raise Errno(errno.ENOTDIR)
        return p

    def walk_parent(self, start: Path, path: bytes) -> tuple[Path, bytes, bool]:
        """(parent directory, last component, trailing slash). The last component is
        b"" for "/" and may be "." or ".." (callers refuse those as Linux does)."""
        if not path:
            raise Errno(errno.ENOENT)
        if path[:1] == b"/":
            start = self.root
        comps = [c for c in path.split(b"/") if c]
        if not comps:
            return start, b"", True
        last = comps[-1]
        if len(last) > NAME_MAX:
            raise Errno(errno.ENAMETOOLONG)
        parent = self.walk_dirs(start, comps[:-1])
        return parent, last, path.endswith(b"/")
