"""A Salesforce REST emulator for tests and benchmarks (see `server`)."""

from .server import HOST, Emulator, Faults

__all__ = ["HOST", "Emulator", "Faults"]
