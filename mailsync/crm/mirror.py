"""The mirror: what mailsync has merged and written, kept in the state store.

One row per CRM record (logical object + external ID) holding a
`merge.MirrorRecord` as JSON: the merged facts with the version of the event
each came from, the status proposals, and the record as last written to the
CRM. Merging therefore needs no CRM reads (except the one Accounts query per
flush). `save()` runs inside the caller's transaction, so the mirror and the
outbox's "done" marks commit together.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from mailsync.crm.merge import MirrorRecord
from mailsync.errors import StateError
from mailsync.statedb import ensure

_DDL = """
CREATE TABLE IF NOT EXISTS crm_mirror (
    obj TEXT NOT NULL,
    ext_id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (obj, ext_id)
);
"""
_CHUNK = 500  # bound SQLite's host-parameter count per query

Key = tuple[str, str]


def ensure_schema(conn: sqlite3.Connection) -> None:
    ensure(conn, _DDL)


def load(conn: sqlite3.Connection, keys: Iterable[Key]) -> dict[Key, MirrorRecord]:
    """The mirror records for `keys`; a key never seen gets an empty record."""
    wanted = sorted(set(keys))
    out: dict[Key, MirrorRecord] = {k: MirrorRecord(*k) for k in wanted}
    by_obj: dict[str, list[str]] = {}
    for obj, ext in wanted:
        by_obj.setdefault(obj, []).append(ext)
    try:
        for obj, exts in by_obj.items():
            for start in range(0, len(exts), _CHUNK):
                chunk = exts[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT ext_id, data FROM crm_mirror WHERE obj = ? "
                    f"AND ext_id IN ({marks})",
                    (obj, *chunk),
                )
                for ext, data in rows:
                    out[(obj, ext)] = MirrorRecord.from_json(obj, ext, json.loads(data))
    except sqlite3.Error as err:
        raise StateError(f"CRM mirror cannot be read: {err}") from None
    return out


def save(conn: sqlite3.Connection, records: Iterable[MirrorRecord]) -> None:
    """Store `records` (inside the caller's transaction)."""
    conn.executemany(
        "INSERT INTO crm_mirror (obj, ext_id, data) VALUES (?, ?, ?) "
        "ON CONFLICT (obj, ext_id) DO UPDATE SET data = excluded.data",
        [(r.obj, r.key, json.dumps(r.to_json(), sort_keys=True)) for r in records],
    )
