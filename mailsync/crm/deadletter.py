"""Dead letters: records the CRM refused, kept with the CRM's reason.

A refused record (`WriteResult.ok=False`: a validation rule, a missing field,
a bad picklist value) is stored here with its object, external ID, the record
as sent, and the CRM's error code and message; the rest of the batch lands.
The mirror does not count it as written, so the next event for it re-sends
it; when the CRM named the refused fields, the record was written without
them at once and the entry stays as the note of what was left out
(`mailsync.crm.sync`). `request_retry()` marks every dead letter for the next
flush, which re-sends the current merged record with every refused value and
drops the entry once it lands.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailsync.redact import safe_error
from mailsync.statedb import ensure

_DDL = """
CREATE TABLE IF NOT EXISTS crm_dead_letters (
    obj TEXT NOT NULL,
    ext_id TEXT NOT NULL,
    record TEXT NOT NULL,
    error_code TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    retry INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (obj, ext_id)
);
"""


@dataclass(frozen=True)
class DeadLetter:
    obj: str  #: logical object name
    external_id: str
    record: dict[str, Any]  #: the record as sent to the CRM
    error_code: str
    message: str
    created_at: str
    attempts: int

    def to_json(self) -> dict[str, Any]:
        return {
            "object": self.obj,
            "external_id": self.external_id,
            "error_code": self.error_code,
            "message": self.message,
            "created_at": self.created_at,
            "attempts": self.attempts,
            "record": self.record,
        }


def ensure_schema(conn: sqlite3.Connection) -> None:
    ensure(conn, _DDL)


def add(
    conn: sqlite3.Connection,
    obj: str,
    ext_id: str,
    record: dict[str, Any],
    error_code: str,
    message: str,
) -> None:
    """Record a refusal (inside the caller's transaction); the CRM's message
    is redacted and clipped (an echoing endpoint may quote credentials)."""
    message = safe_error(message)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conn.execute(
        "INSERT INTO crm_dead_letters (obj, ext_id, record, error_code, message, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (obj, ext_id) DO UPDATE "
        "SET record = excluded.record, error_code = excluded.error_code, "
        "message = excluded.message, created_at = excluded.created_at, "
        "attempts = attempts + 1, retry = 0",
        (obj, ext_id, json.dumps(record, default=str), error_code, message, now),
    )


def clear(conn: sqlite3.Connection, obj: str, ext_id: str) -> None:
    """The record landed: forget its refusal (inside the caller's transaction)."""
    conn.execute(
        "DELETE FROM crm_dead_letters WHERE obj = ? AND ext_id = ?", (obj, ext_id)
    )


def listing(conn: sqlite3.Connection, limit: int = 20) -> list[DeadLetter]:
    """The newest dead letters first."""
    rows = conn.execute(
        "SELECT obj, ext_id, record, error_code, message, created_at, attempts "
        "FROM crm_dead_letters ORDER BY created_at DESC, obj, ext_id LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        DeadLetter(o, e, json.loads(r), c, m, t, int(a)) for o, e, r, c, m, t, a in rows
    ]


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM crm_dead_letters").fetchone()[0])


def request_retry(conn: sqlite3.Connection) -> int:
    """Mark every dead letter for the next flush; return how many."""
    with conn:
        cur = conn.execute("UPDATE crm_dead_letters SET retry = 1")
    return int(cur.rowcount)


def retry_keys(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT obj, ext_id FROM crm_dead_letters WHERE retry = 1"
    ).fetchall()
    return [(str(o), str(e)) for o, e in rows]
