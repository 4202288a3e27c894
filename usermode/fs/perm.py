"""Permission checks against the guest's credentials (generic_permission and friends)."""
from __future__ import annotations

import errno

from usermode.fs.inode import Inode
from usermode.fs.stat import S_ISVTX
from usermode.kernel.creds import Creds
from usermode.kernel.errors import Errno

MAY_EXEC, MAY_WRITE, MAY_READ = 1, 2, 4


def is_privileged(c: Creds) -> bool:
    """CAP_DAC_OVERRIDE/CAP_FOWNER/CAP_CHOWN: filesystem capabilities follow fsuid 0."""
    return c.fsuid == 0


def allowed(c: Creds, inode: Inode, mask: int) -> bool:
    mode = inode.mode
    if is_privileged(c):
        # root may read and write anything; exec needs some x bit unless a directory
        return not mask & MAY_EXEC or inode.is_dir or bool(mode & 0o111)
    if c.fsuid == inode.uid:
        bits = mode >> 6
    elif c.in_group(inode.gid):
        bits = mode >> 3
    else:
        bits = mode
    return not (mask & ~bits & 7)


def check(c: Creds, inode: Inode, mask: int) -> None:
    if not allowed(c, inode, mask):
        raise Errno(errno.EACCES)


def check_owner(c: Creds, inode: Inode) -> None:
    """chmod/utimes-to-arbitrary-time need ownership or CAP_FOWNER (EPERM)."""
    if c.fsuid != inode.uid and not is_privileged(c):
        raise Errno(errno.EPERM)


def check_sticky(c: Creds, dir: Inode, victim: Inode) -> None:
    """In a sticky directory only the owner of the entry or dir (or root) may remove it."""
    if dir.mode & S_ISVTX and not is_privileged(c) and c.fsuid not in (dir.uid, victim.uid):
        raise Errno(errno.EPERM)
