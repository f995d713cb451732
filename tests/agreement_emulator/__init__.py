"""The Agreement API emulator (see `server`)."""

from .server import Emulator, Faults

__all__ = ["Emulator", "Faults"]
