"""The state store: one SQLite file (`[state] path`) in WAL mode.

Several modules keep tables in it (the ledger and checkpoints, the outbox, the
quarantine, dead letters); each creates its own tables with `CREATE TABLE IF NOT
EXISTS` through `ensure()`. Writes use `synchronous=FULL` so that a committed
transaction survives a power cut: the daemon marks mail processed only after
such a commit. The file (and its WAL/SHM files, and folders it creates) is
private to the mailsync user whatever the umask (`mailsync.fileperms`).
Any `sqlite3` failure to open or write becomes a `StateError`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mailsync.errors import StateError
from mailsync.fileperms import private_sqlite


def open_db(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the SQLite file at `path`; raise `StateError`."""
    try:
        private_sqlite(path)  # raw mail and deal data: 0600, folders 0700
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        enable_wal(conn)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
    except (OSError, sqlite3.Error) as err:
        raise StateError(
            f"state store {path} cannot be opened ({err}); check that its folder "
            "exists, is writable and the disk is not full"
        ) from None
    return conn


def enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL (persistent, so only a new file needs it). Two threads
    opening a new file at once can make the switch answer "database is
    locked" at once: SQLite does not call the busy handler for it, so it is
    tried again for a while (https://sqlite.org/wal.html, "Concurrency")."""
    deadline = time.monotonic() + 30
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# Actions waiting for the commit of a connection's open transaction, keyed by
# id(conn); the connection is held too, so its id cannot be reused meanwhile.
_PENDING: dict[int, tuple[sqlite3.Connection, list[Callable[[], None]]]] = {}
_PENDING_LOCK = threading.Lock()
_log = logging.getLogger(__name__)


def after_commit(conn: sqlite3.Connection, action: Callable[[], None]) -> None:
    """Run `action` once what `conn` wrote so far is durable: now when no
    transaction is open, else after its COMMIT (`atomic`, `Ledger.batch`);
    dropped if the transaction is rolled back. So a log line such as
    "synced" is only written for an outcome that survived (a full disk fails
    the COMMIT, not the INSERT)."""
    if not conn.in_transaction:
        action()
        return
    with _PENDING_LOCK:
        _PENDING.setdefault(id(conn), (conn, []))[1].append(action)


def committed(conn: sqlite3.Connection) -> None:
    """`conn` committed: run its `after_commit` actions (call after COMMIT)."""
    with _PENDING_LOCK:
        entry = _PENDING.pop(id(conn), None)
    for action in entry[1] if entry else ():
        try:
            action()
        except Exception:  # a log or metric must not undo a durable commit
            _log.exception("after-commit action failed")


def rolled_back(conn: sqlite3.Connection) -> int:
    """`conn` rolled back: drop its `after_commit` actions; how many."""
    with _PENDING_LOCK:
        entry = _PENDING.pop(id(conn), None)
    return len(entry[1]) if entry else 0


def ensure(conn: sqlite3.Connection, ddl: str) -> None:
    """Run idempotent schema statements (`CREATE ... IF NOT EXISTS`)."""
    try:
        conn.executescript(ddl)
    except sqlite3.Error as err:
        raise StateError(f"state store schema cannot be created: {err}") from None


@contextmanager
def atomic(conn: sqlite3.Connection, name: str = "mailsync") -> Iterator[None]:
    """One atomic unit of writes that nests.

    Outside a transaction: ``BEGIN IMMEDIATE … COMMIT`` (the write lock is
    taken up front, so a read-then-write never fails with SQLITE_BUSY half
    way). Inside one (a source committing a whole FETCH batch at once): a
    ``SAVEPOINT`` that is released into it, or rolled back alone on error,
    so the outer transaction decides when everything becomes durable. Needs
    a connection from `open_db` (``isolation_level=None``); never use
    ``with conn:`` inside, which would commit the outer transaction.
    """
    if conn.in_transaction:
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            try:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            except sqlite3.Error:
                pass  # SQLite already rolled everything back (disk full, I/O)
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the original error says more
        rolled_back(conn)
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        rolled_back(conn)
        raise
    committed(conn)


def explain(message: str, path: Path) -> str:
    """One line for a state-store failure: the path, what happened and what to
    fix (the daemon stops on it rather than lose track of mail it handled)."""
    if str(path) in message or "[crm.sqlite] path" in message:
        return message  # already says where and what (`open_db`, the CRM file)
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
