"""The hotplug device registry behind mconsole `config` / `remove` (UML's mc_device list in
mconsole_kern.c): a name prefix ("ubd", "con", "ssl", later "eth") -> one driver.

A driver answers three calls, each given the full device name ("ubdb", "con1"):

    config(name, conf)   add or change the device as the boot switch name=conf would
    query(name)          the device's current configuration (UML's get_config)
    remove(name)         detach it

and reports failure by raising HotplugError with UML's text and error code (a negative
errno from the driver, 1 from the parsing around it), which mconsole sends back. A driver registered here is never asked about another prefix's names.
"""
from __future__ import annotations

from typing import Protocol


class HotplugError(Exception):
    """A refused config/query/remove: str() is the reply text, err the reply's error."""

    def __init__(self, text: str, err: int = 1) -> None:
        super().__init__(text)
        self.err = err


class HotplugDriver(Protocol):
    prefix: str

    def config(self, name: str, conf: str) -> None: ...

    def query(self, name: str) -> str: ...

    def remove(self, name: str) -> None: ...


class HotplugRegistry:
    def __init__(self) -> None:
        self.drivers: list[HotplugDriver] = []

    def register(self, driver: HotplugDriver) -> None:
        self.drivers.append(driver)

    def find(self, name: str) -> HotplugDriver | None:
        """The driver whose prefix begins name (UML's mconsole_find_dev)."""
        for d in self.drivers:
            if name.startswith(d.prefix):
                return d
        return None
