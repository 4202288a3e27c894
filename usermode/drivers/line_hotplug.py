"""mconsole hotplug of console and serial lines (UML's line_config / line_get_config /
line_remove in arch/um/drivers/line.c), for the registry in hotplug.py."""
from __future__ import annotations

import errno

from usermode.drivers.console import NR_CONSOLES, NR_SERIALS, Console, Lines
from usermode.drivers.hotplug import HotplugError
from usermode.host import channels


class LineHotplug:
    """mconsole `config con1=pts`, `config ssl2=null`, `config con1`, `remove con1` with
    UML's line_config / line_get_config / line_remove semantics and texts: a line in use
    is refused, CHANNEL "none" (or remove) takes the line away, anything else (re)opens
    it on that channel now, so a pty's host path is known at once."""

    def __init__(self, lines: Lines, kind: str, console0: Console | None = None) -> None:
        self.lines = lines
        self.kind = kind
        self.prefix = kind
        self.console0 = console0       # con0 lives outside Lines (init's console)

    def _number(self, name: str, parse_error: str, range_error: str,
                err: int = -errno.EINVAL) -> int:
        rest = name[len(self.kind):]
        if not rest.isdigit():
            raise HotplugError(parse_error, err)
        n = int(rest)
        if n >= (NR_CONSOLES if self.kind == "con" else NR_SERIALS):
            raise HotplugError(range_error, err)
        return n

    def _is_con0(self, n: int) -> bool:
        return self.kind == "con" and n == 0

    def config(self, name: str, conf: str) -> None:
        if name == self.kind:
            raise HotplugError("Can't configure all devices from mconsole", -errno.EINVAL)
        n = self._number(name, "Couldn't parse device number", "Device number out of range")
        key = (self.kind, n)
        line = self.lines.lines.get(key)
        if self._is_con0(n) or line is not None and line.in_use:
            raise HotplugError("Device is already open", -errno.EINVAL)
        if conf == "none":
            self.lines.deactivate(key)
            self.lines.specs[key] = "none"
            return
        try:
            channels.check_spec(conf)
        except channels.ChannelError as e:
            self.lines.kernel.printk(f"{name}: {e}")            # the reply is UML's
            raise HotplugError("failed to parse channel pair", -1) from None
        self.lines.deactivate(key)
        self.lines.specs[key] = conf
        try:
            self.lines.activate(key)
        except channels.ChannelError as e:
            self.lines.specs[key] = "none"
            raise HotplugError(f"{name}: {e}", -errno.EIO) from None
        self.lines.register_node(key)

    def query(self, name: str) -> str:
        n = self._number(name, "line_get_config failed to parse device number",
                         "device number out of range", 1)
        if self._is_con0(n) and self.console0 is not None:
            return self._describe(self.console0, "fd:0,fd:1")
        key = (self.kind, n)
        spec = self.lines.spec(key)
        if spec is None:
            return "none"
        line = self.lines.lines.get(key)
        return self._describe(line, spec) if line is not None else spec

    @staticmethod
    def _describe(line: Console, spec: str) -> str:
        """An active line's channel as UML's chan_config_string shows it (pts:/dev/pts/3)."""
        chan = line.channel
        if chan.kind in ("pty", "xterm"):
            return f"{spec.split(':')[0]}:{chan.description}"
        return spec

    def remove(self, name: str) -> None:
        n = self._number(name, "Couldn't parse device number", "Device number out of range")
        if not self._is_con0(n) and self.lines.spec((self.kind, n)) is None:
            raise HotplugError("configured as 'none'", -errno.EINVAL)
        self.config(f"{self.kind}{n}", "none")
