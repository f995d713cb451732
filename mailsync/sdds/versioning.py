"""Which revision of a feed row counts (contract section 7; AWS seller guide,
"Historization of the data"; AWS's report SQL).

Every feed row carries `valid_from`, `update_date` and `delete_date`. A new
`valid_from` is a new revision; a correction keeps `valid_from` and gets a
later `update_date`. The current value: among the records of the latest
`valid_from`, the one with the latest `update_date`; it is dropped when its
`delete_date` is set (AWS's SQL: keep the latest `update_date` per key and
`valid_from`, then drop it if deleted).

- Billing events are keyed by `billing_event_id` alone (AWS's 2026 SQL): the
  newest (`valid_from`, `update_date`) row wins, and a deleted winner removes
  the event.
- Agreements and accounts are keyed by (ID, `valid_from`): the newest
  `update_date` wins per revision, a deleted one removes that revision, and
  the current revision is the latest remaining `valid_from`.

Ties (same times) are broken by `delete_date` (a deletion wins), then by a
checksum of the row, so the result never depends on the order in which files
or deliveries were read. Timestamps are the normalized
``YYYY-MM-DDTHH:MM:SSZ`` strings of `mailsync.sdds.csvfeed`, so comparing
strings compares times; a missing `update_date` sorts first.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

Version = tuple[str, str, int, int]


def checksum(row: Sequence[object]) -> int:
    """A stable tiebreak for rows with the same times (not Python's hash(),
    which changes from process to process)."""
    return zlib.crc32("\x1f".join(map(str, row)).encode("utf-8"))


def version(
    valid_from: str | None,
    update_date: str | None,
    delete_date: str | None,
    tie: int,
) -> Version:
    """The order of two rows of the same key: the greater version wins."""
    return (valid_from or "", update_date or "", 1 if delete_date else 0, tie)


def current(
    rows: Iterable[tuple[str, Version, object]], *, per_revision: bool
) -> dict[str, object]:
    """The current, non-deleted payload per key (the in-memory form of the
    rule; `mailsync.sdds.store` applies the same rule in SQL).

    `rows`: (key, version, payload). `per_revision`: agreements/accounts
    (a deleted revision falls back to the previous one); else billing events.
    """
    best: dict[tuple[str, str], tuple[Version, object]] = {}
    for key, ver, payload in rows:
        slot = (key, ver[0] if per_revision else "")
        held = best.get(slot)
        if held is None or ver > held[0]:
            best[slot] = (ver, payload)
    out: dict[str, tuple[str, object]] = {}
    for (key, _), (ver, payload) in best.items():
        if ver[2]:
            continue  # deleted
        held_cur = out.get(key)
        if held_cur is None or ver[0] > held_cur[0]:
            out[key] = (ver[0], payload)
    return {k: v[1] for k, v in out.items()}
