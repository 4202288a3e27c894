"""Guest credentials (struct cred): the guest's own uids/gids, unrelated to the host user."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Creds:
    uid: int = 0
    euid: int = 0
    suid: int = 0
    fsuid: int = 0
    gid: int = 0
    egid: int = 0
    sgid: int = 0
    fsgid: int = 0
    groups: list[int] = field(default_factory=list)

    def copy(self) -> "Creds":
        c = Creds(self.uid, self.euid, self.suid, self.fsuid,
                  self.gid, self.egid, self.sgid, self.fsgid, list(self.groups))
        return c

    @property
    def is_root(self) -> bool:
        return self.euid == 0

    def in_group(self, gid: int) -> bool:
        return gid == self.fsgid or gid in self.groups
