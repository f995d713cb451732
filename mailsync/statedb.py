"""The state store: one SQLite file (`[state] path`) in WAL mode.

Several modules keep tables in it (the ledger and checkpoints, the outbox, the
quarantine, dead letters); each creates its own tables with `CREATE TABLE IF NOT
EXISTS` through `ensure()`. Writes use `synchronous=FULL` so that a committed
transaction survives a power cut: the daemon marks mail processed only after
such a commit. Any `sqlite3` failure to open or write becomes a `StateError`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mailsync.errors import StateError


def open_db(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the SQLite file at `path`; raise `StateError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
    except (OSError, sqlite3.Error) as err:
        raise StateError(
            f"state store {path} cannot be opened ({err}); check that its folder "
            "exists, is writable and the disk is not full"
        ) from None
    return conn


def ensure(conn: sqlite3.Connection, ddl: str) -> None:
    """Run idempotent schema statements (`CREATE ... IF NOT EXISTS`)."""
    try:
        conn.executescript(ddl)
    except sqlite3.Error as err:
        raise StateError(f"state store schema cannot be created: {err}") from None


def explain(message: str, path: Path) -> str:
    """One line for a state-store failure: the path, what happened and what to
    fix (the daemon stops on it rather than lose track of mail it handled)."""
    if str(path) in message:
        return message  # already says where and what (see `open_db`)
    low = message.lower()
    if "full" in low or "no space" in low:
        hint = "the disk holding it is full: free space there or move [state] path"
    elif "readonly" in low or "read-only" in low:
        hint = (
            "it is read-only: make the file and its folder writable for the "
            "mailsync user or move [state] path"
        )
    else:
        hint = "check that its folder is writable and the disk is not full"
    return (
        f"state store {path} cannot be written ({message}); {hint}, then start "
        "mailsync again (mail not yet recorded stays unmarked and is read again)"
    )
