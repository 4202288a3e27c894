"""usermode: User-Mode Linux, written in Python."""
__version__ = "0.1.0"

from usermode.machine import Machine  # noqa: E402,F401
