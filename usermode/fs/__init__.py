"""Filesystems: the VFS and everything mounted in it."""
