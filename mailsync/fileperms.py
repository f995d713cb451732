"""Private files: the state store and the SQLite CRM hold raw mail and deal
data, so they are created readable by the mailsync user only, whatever the
umask of the process (systemd's default is 022, which gives 0644).

- `private_sqlite(path)`: create the folders missing above `path` as 0700,
  then the database file itself as 0600 (before SQLite opens it). SQLite's
  unix VFS creates the ``-wal``, ``-shm`` and ``-journal`` files with the
  permission bits of the database file (sqlite.org/src, os_unix.c
  ``findCreateFileMode``), so they follow. An existing database (and its
  ``-wal`` / ``-shm``) that is readable by others is narrowed to 0600.

Folders that already exist are left as they are: they may be shared (a
systemd ``StateDirectory``, ``/var/lib``) and are the administrator's choice.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["FILE_MODE", "FOLDER_MODE", "private_dirs", "private_sqlite"]

FILE_MODE = 0o600
FOLDER_MODE = 0o700
_SIDE_FILES = ("-wal", "-shm", "-journal")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def private_dirs(folder: Path) -> None:
    """Create `folder` and its missing parents as 0700 (umask ignored);
    `OSError` when that is not possible."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue  # made meanwhile by another process: not ours to change
        os.chmod(path, FOLDER_MODE)  # mkdir's mode is filtered by the umask


def private_sqlite(path: Path) -> None:
    """Prepare `path` for `sqlite3.connect`: folders 0700, file 0600 (see the
    module doc); a no-op for ``:memory:``. `OSError` on failure."""
    if str(path) == ":memory:" or str(path).startswith("file:"):
        return
    private_dirs(path.parent)
    # Never open (and so close) an existing database file here: closing any
    # descriptor of a file drops every POSIX lock this process holds on it,
    # including those of SQLite connections already using it (sqlite.org,
    # "How To Corrupt An SQLite Database File", section 2.2). Only a file
    # that does not exist yet is created (O_EXCL), and modes are changed by
    # path.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, FILE_MODE)
    except FileExistsError:
        pass
    else:
        os.fchmod(fd, FILE_MODE)  # the umask filtered the creation mode
        os.close(fd)
    for target in (path, *(path.with_name(path.name + s) for s in _SIDE_FILES)):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            mode = stat.S_IMODE(target.stat().st_mode)
            if mode & 0o077:
                os.chmod(target, mode & 0o700)
