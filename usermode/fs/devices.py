"""The device number registry: which driver opens which (major, minor).

A device inode, wherever it lives (devfs, tmpfs, a hostfs tree, an ext2 image), opens
through here by its rdev, so drivers never depend on the filesystem holding the node.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from usermode.fs.stat import makedev

if TYPE_CHECKING:
    from usermode.fs.file import File
    from usermode.kernel.task import Task

Opener = Callable[["Task", int], "File"]


class DeviceRegistry:
    def __init__(self) -> None:
        self.chr: dict[int, Opener] = {}
        self.blk: dict[int, Opener] = {}
        # nodes devfs shows: name -> (is_block, dev, mode)
        self.names: dict[str, tuple[bool, int, int]] = {}
        self.listeners: list[Callable[[str, bool, int, int], None]] = []
        self.removers: list[Callable[[str], None]] = []     # devfs drops hot-removed nodes

    def _register(self, table: dict[int, Opener], block: bool, major: int, minor: int,
                  opener: Opener, name: str | None, mode: int) -> None:
        dev = makedev(major, minor)
        table[dev] = opener
        if name:
            self.names[name] = (block, dev, mode)
            for cb in self.listeners:
                cb(name, block, dev, mode)

    def register_chrdev(self, major: int, minor: int, opener: Opener,
                        name: str | None = None, mode: int = 0o666) -> None:
        self._register(self.chr, False, major, minor, opener, name, mode)

    def register_blkdev(self, major: int, minor: int, opener: Opener,
                        name: str | None = None, mode: int = 0o660) -> None:
        self._register(self.blk, True, major, minor, opener, name, mode)

    def opener(self, block: bool, rdev: int) -> Opener | None:
        return (self.blk if block else self.chr).get(rdev)

    def unregister(self, block: bool, major: int, minor: int, name: str | None = None) -> None:
        """A hot-removed device: opens of its number fail (ENXIO), its node goes away."""
        (self.blk if block else self.chr).pop(makedev(major, minor), None)
        if name and self.names.pop(name, None) is not None:
            for cb in self.removers:
                cb(name)
