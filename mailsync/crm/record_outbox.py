"""The durable outbox of recomputed records (Seller Data Feeds).

The SDDS channel produces no events (contract section 7: no
`AWS_Marketplace_Event__c` rows); it produces *touches*, the same
`mapping.Touch` an event maps to, each with the merge version it applies
with. `submit()` stores one batch of them in the state store inside the
caller's transaction (the feed cursor moves in that same transaction);
`CrmSync.flush` folds pending batches into the mirror like event touches and
marks them flushed in the transaction that saves the mirror.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from mailsync.crm.mapping import Touch
from mailsync.errors import StateError
from mailsync.statedb import atomic, ensure

_DDL = """
CREATE TABLE IF NOT EXISTS record_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    touches TEXT NOT NULL,
    created_at TEXT NOT NULL,
    flushed_at TEXT
);
CREATE INDEX IF NOT EXISTS record_outbox_pending ON record_outbox(flushed_at, seq);
"""

Versioned = tuple[str, Touch]


class RecordOutbox:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        ensure(conn, _DDL)

    def submit(self, touches: Sequence[Versioned], origin: str) -> None:
        """Make one batch of (version, touch) durable (or join the open
        transaction)."""
        body = json.dumps(
            [[v, t.obj, t.key, t.facts, t.status] for v, t in touches],
            separators=(",", ":"),
        )
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            with atomic(self.conn, "record_outbox_submit"):
                self.conn.execute(
                    "INSERT INTO record_outbox (origin, touches, created_at) "
                    "VALUES (?, ?, ?)",
                    (origin, body, now),
                )
        except sqlite3.Error as err:
            raise StateError(f"outbox write failed: {err}") from None

    def pending(self, limit: int) -> list[tuple[int, list[Versioned]]]:
        rows = self.conn.execute(
            "SELECT seq, touches FROM record_outbox WHERE flushed_at IS NULL "
            "ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            (
                int(seq),
                [(str(v), Touch(o, k, dict(f), s)) for v, o, k, f, s in json.loads(t)],
            )
            for seq, t in rows
        ]

    def depth(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM record_outbox WHERE flushed_at IS NULL"
        ).fetchone()
        return int(row[0])
