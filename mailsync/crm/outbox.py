"""The durable outbox: the `Sink` every source hands events to.

`Outbox.submit(event)` commits the event to the state store and returns; from
then on the event survives a crash and the source may mark its input
processed. Called inside an open transaction (a source committing a whole
FETCH batch at once, see `mailsync.statedb.atomic`), it joins it as a
savepoint instead, and the event is durable when that transaction commits.
A delivery whose transport ID (Message-ID, SNS MessageId, EventBridge id or
requestId) was seen before is not stored again, unless the new one is
`verified` and none of the earlier ones was: a transport ID is chosen by the
sender, so an unverified forgery that arrives first must not shadow the
genuine message (the IDs then point at the verified delivery). The flusher reads
`pending()` in order and calls `done()` once the CRM write is durable.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

from mailsync.errors import StateError
from mailsync.event import Event, Trust
from mailsync.statedb import atomic, ensure

_DDL = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    flushed_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(flushed_at, seq);
CREATE TABLE IF NOT EXISTS delivery_ids (
    delivery_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
"""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Outbox:
    """The state-store outbox; implements `mailsync.sink.Sink`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        ensure(conn, _DDL)

    def submit(self, event: Event, origin: str = "") -> bool:
        """Commit `event` durably; False if a delivery with its ID was seen."""
        ids = [i for i in {event.source_id, *event.dedupe_ids} if i]
        try:
            with atomic(self.conn, "outbox_submit"):
                seen = self._seen_trust(ids)
                if seen and (event.trust != Trust.VERIFIED or Trust.VERIFIED in seen):
                    return False
                cur = self.conn.execute(
                    "INSERT INTO outbox (event, origin, created_at) VALUES (?, ?, ?)",
                    (json.dumps(event.to_record()), origin, _now()),
                )
                seq = cur.lastrowid
                self.conn.executemany(
                    "INSERT OR REPLACE INTO delivery_ids (delivery_id, seq) "
                    "VALUES (?, ?)",
                    [(i, seq) for i in ids],
                )
        except sqlite3.Error as err:
            raise StateError(f"outbox write failed: {err}") from None
        return True

    def _seen_trust(self, ids: list[str]) -> set[str]:
        """The trust of each stored delivery that shares one of `ids`."""
        seen: set[str] = set()
        for delivery_id in ids:
            row = self.conn.execute(
                "SELECT o.event FROM delivery_ids d LEFT JOIN outbox o "
                "ON o.seq = d.seq WHERE d.delivery_id = ?",
                (delivery_id,),
            ).fetchone()
            if row is None:
                continue
            try:
                trust = str(json.loads(row[0]).get("trust", ""))
            except (TypeError, ValueError, AttributeError):
                trust = ""
            # A row whose event is gone (pruned) counts as seen, not verified:
            # only a stored verified delivery can stop a verified one.
            seen.add(trust or Trust.UNVERIFIED.value)
        return seen

    def pending(self, limit: int = 1000) -> list[tuple[int, Event]]:
        """Events not yet written to the CRM, oldest first."""
        rows = self.conn.execute(
            "SELECT seq, event FROM outbox WHERE flushed_at IS NULL "
            "ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [(seq, Event.from_record(json.loads(text))) for seq, text in rows]

    def done(self, seqs: list[int]) -> None:
        """Mark these outbox entries as written to the CRM."""
        try:
            with atomic(self.conn, "outbox_done"):
                self.conn.executemany(
                    "UPDATE outbox SET flushed_at = ? WHERE seq = ?",
                    [(_now(), s) for s in seqs],
                )
        except sqlite3.Error as err:
            raise StateError(f"outbox update failed: {err}") from None

    def depth(self) -> int:
        """How many events wait for the CRM."""
        row = self.conn.execute(
            "SELECT count(*) FROM outbox WHERE flushed_at IS NULL"
        ).fetchone()
        return int(row[0])
