"""One daemon per state store: an exclusive lock file beside the state file.

`DaemonLock(state_path).acquire()` takes ``<state file>.lock`` with
``fcntl.flock(LOCK_EX | LOCK_NB)`` and writes the holder's PID into it (like
fetchmail's lock file). The kernel drops the lock when the process ends,
however it ends, so a stale file left by a crash never blocks a restart; the
PID in it is only for the message. A second `mailsync run` on the same state
store fails with `ConfigError` (exit 2) naming the PID holding the lock.
`run --once` and the read-only commands take no lock: SQLite's own locking
keeps their writes consistent beside a running daemon.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mailsync.errors import ConfigError, StateError


def lock_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


class DaemonLock:
    """The exclusive daemon lock for one state store; held until `release`."""

    def __init__(self, state_path: Path) -> None:
        self.path = lock_path(state_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `ConfigError` naming the holder's PID."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise StateError(
                f"lock file {self.path} cannot be created ({err.strerror}); check "
                "that the state store's folder exists and is writable"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"another mailsync daemon (PID {holder}) is already running on "
                f"the state store {self.path.with_suffix('')} (lock file "
                f"{self.path}); stop it first, or give this one its own "
                "[state] path"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
