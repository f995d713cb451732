"""The ledger: what every source has seen, in the state store.

Tables (all in `[state] path`, created on first use):

- ``mailbox_state``: per source (mailbox), its IMAP UIDVALIDITY and checkpoint
  (the highest UID below which every message is finished).
- ``ledger``: per input (``source``, ``key``) its Message-ID (or transport ID),
  SHA-256 of the raw bytes, ``outcome`` and one-line ``reason``. Outcomes:
  ``synced`` (durable in the outbox, duplicates included), ``unrecognized``,
  ``rejected`` (both final and quarantined), ``failed`` (retried later).
- ``quarantine``: one entry per unrecognized/rejected input, with its raw bytes
  (when under the size limit) so it can be inspected and retried.
- ``source_status``: per source, checkpoint text, last success, last error.

API for sources (IMAP, Maildir, SQS)::

    ledger = Ledger(conn)
    ledger.record(source, key, message_id, sha256, outcome, reason, raw=raw)
    ledger.finished(source, key)                 # outcome or None when unfinished
    ledger.seen_before(source, message_id, sha256)   # finished under another key
    ledger.source_ok(name, checkpoint="uidvalidity=5 uid=120")
    ledger.source_error(name, "login failed: ...")
    with ledger.batch():                         # one commit for many records
        ...                                      # (and outbox submits)

Keys are source-defined: IMAP uses ``<uidvalidity>:<uid>``, Maildir the file's
path relative to the folder, SQS the message ID.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailsync.errors import StateError
from mailsync.redact import safe_error
from mailsync.statedb import atomic, committed, ensure, rolled_back

#: Ledger and quarantine reasons are cut to this many characters.
REASON_CHARS = 1000

SYNCED = "synced"
UNRECOGNIZED = "unrecognized"
REJECTED = "rejected"
FAILED = "failed"
OUTCOMES = (SYNCED, UNRECOGNIZED, REJECTED, FAILED)
FINAL = (SYNCED, UNRECOGNIZED, REJECTED)

_DDL = """
CREATE TABLE IF NOT EXISTS mailbox_state (
    source TEXT PRIMARY KEY,
    uidvalidity INTEGER,
    checkpoint INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ledger (
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT,
    sha256 TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    first_seen TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (source, key)
);
CREATE INDEX IF NOT EXISTS ledger_hash ON ledger(source, sha256);
CREATE INDEX IF NOT EXISTS ledger_msgid ON ledger(source, message_id);
CREATE INDEX IF NOT EXISTS ledger_outcome ON ledger(source, outcome);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    input_kind TEXT NOT NULL DEFAULT 'email',
    message_id TEXT,
    sha256 TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    raw BLOB,
    created_at TEXT NOT NULL,
    released_at TEXT,
    UNIQUE (source, key)
);
CREATE TABLE IF NOT EXISTS source_status (
    source TEXT PRIMARY KEY,
    checkpoint TEXT,
    last_success TEXT,
    last_error TEXT,
    last_error_at TEXT
);
"""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class MailboxState:
    uidvalidity: int | None
    checkpoint: int


@dataclass(frozen=True)
class SourceStatus:
    source: str
    checkpoint: str | None
    last_success: str | None
    last_error: str | None
    last_error_at: str | None
    counts: dict[str, int]
    quarantined: int


class Batch:
    """A batch transaction: ``with ledger.batch() as batch: ...``.

    It opens ``BEGIN IMMEDIATE`` on entry and commits on a clean exit (rolls
    back on an exception, which leaves every input of the batch unrecorded and
    so unmarked). Writes inside (`Ledger.record`, `Outbox.submit`) become
    savepoints of it. Other connections (the CRM flusher, other sources) wait
    for the write lock meanwhile, so `step()` after each input commits early
    once the lock has been held for `max_hold` seconds; `ensure()` before the
    next input's writes opens the next transaction. Entered while a
    transaction is already open, it leaves every decision to that one.
    """

    def __init__(self, conn: sqlite3.Connection, max_hold: float = 0.5) -> None:
        self.conn = conn
        self.max_hold = max_hold
        self.nested = False
        self.started = 0.0

    def __enter__(self) -> Batch:
        self.nested = self.conn.in_transaction
        self.ensure()
        return self

    def ensure(self) -> None:
        """Open the batch's transaction unless one is open."""
        if self.conn.in_transaction:
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise StateError(f"ledger write failed: {err}") from None
        self.started = time.monotonic()

    def step(self) -> None:
        """Commit now if the write lock has been held for `max_hold` s."""
        if self.nested or not self.conn.in_transaction:
            return
        if time.monotonic() - self.started >= self.max_hold:
            self._commit()

    def commit(self) -> None:
        """Make everything written so far durable (the next write reopens)."""
        if not self.nested and self.conn.in_transaction:
            self._commit()

    def _commit(self) -> None:
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as err:
            self._rollback()
            raise StateError(f"ledger commit failed: {err}") from None
        committed(self.conn)  # now the batch's outcomes may be logged

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the error being raised says more
        rolled_back(self.conn)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.nested:
            return
        if exc_type is not None:
            self._rollback()
        elif self.conn.in_transaction:
            self._commit()


class Ledger:
    """Typed access to the ledger tables; every write is one committed
    transaction (or a savepoint of the caller's `batch()`), so a recorded
    outcome survives a crash."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        ensure(conn, _DDL)

    def batch(self) -> Batch:
        """One transaction around many writes (a FETCH batch): `record` and the
        outbox's `submit` join it, and it all becomes durable with one commit
        (one fsync) when the `with` block exits; the caller marks its inputs
        only afterwards. See `Batch`."""
        return Batch(self.conn)

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        try:
            with atomic(self.conn, "ledger_write"):
                self.conn.execute(sql, params)
        except sqlite3.Error as err:
            raise StateError(f"ledger write failed: {err}") from None

    # -- per input -------------------------------------------------------------

    def record(
        self,
        source: str,
        key: str,
        message_id: str | None,
        sha256: str,
        outcome: str,
        reason: str | None = None,
        *,
        raw: bytes | None = None,
        input_kind: str = "email",
    ) -> None:
        """Store the outcome of one input; quarantine unrecognized/rejected."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        if reason is not None:  # may quote an error body: no credentials
            reason = safe_error(reason, REASON_CHARS)
        ts = now()
        try:
            with atomic(self.conn, "ledger_record"):
                self.conn.execute(
                    "INSERT INTO ledger (source, key, message_id, sha256, outcome,"
                    " reason, first_seen, updated_at) VALUES (?,?,?,?,?,?,?,?)"
                    " ON CONFLICT (source, key) DO UPDATE SET"
                    " message_id=excluded.message_id, sha256=excluded.sha256,"
                    " outcome=excluded.outcome, reason=excluded.reason,"
                    " attempts=attempts+1, updated_at=excluded.updated_at",
                    (source, key, message_id, sha256, outcome, reason, ts, ts),
                )
                if outcome in (UNRECOGNIZED, REJECTED):
                    self.conn.execute(
                        "INSERT OR IGNORE INTO quarantine (source, key, input_kind,"
                        " message_id, sha256, outcome, reason, raw, created_at)"
                        " VALUES (?,?,?,?,?,?,?,?,?)",
                        (
                            source,
                            key,
                            input_kind,
                            message_id,
                            sha256,
                            outcome,
                            reason,
                            raw,
                            ts,
                        ),
                    )
        except sqlite3.Error as err:
            raise StateError(f"ledger write failed: {err}") from None

    def finished(self, source: str, key: str) -> str | None:
        """The final outcome recorded for this input, or None (new or failed)."""
        row = self.conn.execute(
            "SELECT outcome FROM ledger WHERE source=? AND key=?", (source, key)
        ).fetchone()
        return str(row[0]) if row and row[0] in FINAL else None

    def finished_with_hash(self, source: str, key: str) -> tuple[str, str] | None:
        """(outcome, SHA-256) of the input finished under this key, or None."""
        row = self.conn.execute(
            "SELECT outcome, sha256 FROM ledger WHERE source=? AND key=?"
            " AND outcome IN ('synced','unrecognized','rejected')",
            (source, key),
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def finished_hash(self, source: str, key: str) -> str | None:
        """SHA-256 of the input finished under this key, or None."""
        row = self.conn.execute(
            "SELECT sha256 FROM ledger WHERE source=? AND key=?"
            " AND outcome IN ('synced','unrecognized','rejected')",
            (source, key),
        ).fetchone()
        return str(row[0]) if row else None

    def seen_before(
        self, source: str, message_id: str | None, sha256: str
    ) -> tuple[str, str | None] | None:
        """(outcome, reason) of a finished input with this content hash (after
        a UIDVALIDITY change, a rename, or a re-delivery of the same bytes),
        else None. `message_id` is not used to match: the sender chooses it,
        so a forged mail could claim a genuine one's outcome; an input that
        shares only its Message-ID is evaluated again."""
        del message_id
        row = self.conn.execute(
            "SELECT outcome, reason FROM ledger WHERE source=? AND sha256=?"
            " AND outcome IN ('synced','unrecognized','rejected') LIMIT 1",
            (source, sha256),
        ).fetchone()
        return (str(row[0]), row[1]) if row else None

    def unfinished(self, source: str) -> list[str]:
        """Keys whose last outcome was `failed` (to retry)."""
        rows = self.conn.execute(
            "SELECT key FROM ledger WHERE source=? AND outcome='failed' ORDER BY key",
            (source,),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def outcomes(self, source: str) -> dict[str, tuple[str, str | None]]:
        """{key: (outcome, reason)} for one source (status and tests)."""
        rows = self.conn.execute(
            "SELECT key, outcome, reason FROM ledger WHERE source=?", (source,)
        ).fetchall()
        return {str(k): (str(o), r) for k, o, r in rows}

    # -- per mailbox -----------------------------------------------------------

    def mailbox(self, source: str) -> MailboxState:
        row = self.conn.execute(
            "SELECT uidvalidity, checkpoint FROM mailbox_state WHERE source=?",
            (source,),
        ).fetchone()
        return MailboxState(row[0], int(row[1])) if row else MailboxState(None, 0)

    def set_mailbox(self, source: str, uidvalidity: int, checkpoint: int) -> None:
        self._write(
            "INSERT INTO mailbox_state (source, uidvalidity, checkpoint)"
            " VALUES (?,?,?) ON CONFLICT (source) DO UPDATE SET"
            " uidvalidity=excluded.uidvalidity, checkpoint=excluded.checkpoint",
            (source, uidvalidity, checkpoint),
        )

    # -- per source status -------------------------------------------------------

    def source_ok(self, name: str, checkpoint: str | None = None) -> None:
        """A pass over `name` succeeded; `checkpoint` is shown by `status`."""
        self._write(
            "INSERT INTO source_status (source, checkpoint, last_success)"
            " VALUES (?,?,?) ON CONFLICT (source) DO UPDATE SET"
            " checkpoint=COALESCE(excluded.checkpoint, checkpoint),"
            " last_success=excluded.last_success",
            (name, checkpoint, now()),
        )

    def source_error(self, name: str, message: str) -> None:
        """`name` failed (one line, no secrets); shown by `status`."""
        self._write(
            "INSERT INTO source_status (source, last_error, last_error_at)"
            " VALUES (?,?,?) ON CONFLICT (source) DO UPDATE SET"
            " last_error=excluded.last_error, last_error_at=excluded.last_error_at",
            (name, safe_error(message), now()),
        )

    def statuses(self) -> list[SourceStatus]:
        """Every source known to the ledger or status table, by name."""
        names = {
            str(r[0])
            for r in self.conn.execute(
                "SELECT source FROM source_status UNION SELECT DISTINCT source"
                " FROM ledger"
            )
        }
        out = []
        for name in sorted(names):
            row = self.conn.execute(
                "SELECT checkpoint, last_success, last_error, last_error_at"
                " FROM source_status WHERE source=?",
                (name,),
            ).fetchone() or (None, None, None, None)
            counts = dict.fromkeys(OUTCOMES, 0)
            for outcome, n in self.conn.execute(
                "SELECT outcome, count(*) FROM ledger WHERE source=? GROUP BY outcome",
                (name,),
            ):
                counts[str(outcome)] = int(n)
            quarantined = self.conn.execute(
                "SELECT count(*) FROM quarantine"
                " WHERE source=? AND released_at IS NULL",
                (name,),
            ).fetchone()[0]
            checkpoint, ok_at, error, error_at = row
            out.append(
                SourceStatus(
                    name, checkpoint, ok_at, error, error_at, counts, int(quarantined)
                )
            )
        return out
