"""One Seller Data Feeds pass: changed files -> store -> records -> outbox.

`FeedSync.run(files)` does, in ONE state-store transaction:

1. for every file whose signature (S3 ETag and size; for local files size and
   content digest) differs from the one recorded, stream its rows into the
   `FeedStore` (the versioning rule applies per row key, so a grown month
   file read again from its start gives the same rows as a full re-read);
2. when any file changed: recompute every invoice record and agreement
   roll-up from the store (`mailsync.sdds.compute`), and submit to the record
   outbox only the records whose values differ from those submitted before
   (an unchanged re-read submits, and so writes, nothing); an invoice that no
   longer has any current row is submitted once more with zero amounts;
3. record the file signatures (the cursor).

A crash or a malformed file anywhere rolls all of it back: the cursor never
moves ahead of the records, and the next pass reads the same files again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from mailsync.crm import mapping_sdds as ms
from mailsync.crm.mapping import Touch
from mailsync.crm.mapping_model import INVOICE
from mailsync.crm.record_outbox import RecordOutbox, Versioned
from mailsync.errors import StateError
from mailsync.sdds import csvfeed
from mailsync.sdds.compute import Invoice, Rollup, Stats, compute, day
from mailsync.sdds.store import FeedStore
from mailsync.sdds.versioning import checksum
from mailsync.statedb import atomic

_FEED_ORDER = {"account": 0, "agreements": 1, "billing_event": 2}
_CHUNK = 500  #: touches per record-outbox batch


@dataclass(frozen=True)
class FeedFile:
    """One feed file: its feed, a stable key (``<folder>/year=…/month=…/
    data.csv``), its signature, and how to open its bytes."""

    feed: str
    key: str
    signature: str
    open: Callable[[], AbstractContextManager[IO[bytes]]]


@dataclass
class SyncReport:
    files_read: int = 0
    files_unchanged: int = 0
    rows: int = 0
    invoices: int = 0
    agreements: int = 0
    submitted: int = 0  #: records handed to the outbox (changed ones)
    as_of: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        skipped = ", ".join(f"{v} {k}" for k, v in self.skipped.items() if v)
        return (
            f"sdds: {self.files_read} files read ({self.files_unchanged} unchanged),"
            f" {self.rows} rows; {self.invoices} invoices, {self.agreements}"
            f" agreements, {self.submitted} records changed; as of {self.as_of}"
            + (f"; skipped rows: {skipped}" if skipped else "")
        )


class FeedSync:
    def __init__(self, conn: sqlite3.Connection, origin: str = "sdds") -> None:
        self.conn = conn
        self.origin = origin
        self.store = FeedStore(conn)
        self.outbox = RecordOutbox(conn)
        self._published: dict[tuple[str, str], str] = {}
        self._digests: list[tuple[str, str, str]] = []

    def changed(self, files: Iterable[FeedFile]) -> list[FeedFile]:
        """The files whose signature differs from the recorded one."""
        return [f for f in files if self.store.signature(f.key) != f.signature]

    def run(self, files: Iterable[FeedFile], *, recompute: bool = False) -> SyncReport:
        """One pass (see the module docstring); raises `FeedError` for a
        malformed file and `StateError`, with nothing committed."""
        report = SyncReport()
        ordered = sorted(files, key=lambda f: (_FEED_ORDER[f.feed], f.key))
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            with atomic(self.conn, "sdds_pass"):
                for f in ordered:
                    if self.store.signature(f.key) == f.signature:
                        report.files_unchanged += 1
                        continue
                    with f.open() as stream:
                        rows, top = self.store.add(
                            f.feed, csvfeed.read(stream, csvfeed.SPECS[f.feed], f.key)
                        )
                    if f.feed == "billing_event" and top > (
                        self.store.meta("as_of") or ""
                    ):
                        self.store.set_meta("as_of", top)
                    self.store.set_file(f.key, f.signature, rows, now)
                    report.files_read += 1
                    report.rows += rows
                if report.files_read or recompute or not self.store.meta("pass"):
                    self._publish(report)
                else:
                    report.as_of = day(self.store.meta("as_of"))
        except sqlite3.Error as err:
            raise StateError(
                f"Seller Data Feed pass cannot be recorded: {err}"
            ) from None
        return report

    # -- records ---------------------------------------------------------------

    def _publish(self, report: SyncReport) -> None:
        n = int(self.store.meta("pass") or 0) + 1
        self.store.set_meta("pass", str(n))
        # Recomputed values only ever compete with earlier passes: a version
        # that grows with every pass makes the latest computation win.
        recomputed = f"~sdds|{n:012d}"
        as_of = day(self.store.meta("as_of"))
        report.as_of = as_of
        stats = Stats()
        agreements = self.store.agreements()
        items = compute(
            agreements,
            self.store.accounts(),
            self.store.disbursements(),
            self.store.billing(),
            as_of,
            stats,
        )
        seen: set[str] = set()
        buffer: list[Versioned] = []
        # What was submitted before, read once (one digest per record: a few
        # MB for tens of thousands of invoices) rather than one query per
        # record; the new digests are written with the outbox batches.
        self._published = {
            (str(o), str(k)): str(d)
            for o, k, d in self.conn.execute(
                "SELECT obj, key, digest FROM sdds_published"
            )
        }
        self._digests = []
        for touches in self._touches(items, recomputed, report, seen):
            buffer.extend(touches)
            if len(buffer) >= _CHUNK:
                self._submit(buffer)
                buffer = []
        for key in self._vanished(seen):
            invoice_id, _, agreement_id = key.rpartition(":")
            gone = Invoice(invoice_id, agreement_id, status_as_of=as_of)
            buffer.extend(self._changed([ms.invoice_facts(gone)], recomputed, report))
        self._submit(buffer)
        self._published = {}
        report.skipped = {
            "without an agreement in the agreements feed": stats.skipped_no_agreement,
            "without an invoice reference": stats.skipped_no_line,
        }

    def _touches(
        self,
        items: Iterable[Invoice | Rollup],
        recomputed: str,
        report: SyncReport,
        seen: set[str],
    ) -> Iterator[list[Versioned]]:
        for item in items:
            if isinstance(item, Invoice):
                report.invoices += 1
                seen.add(item.key)
                yield self._changed([ms.invoice_facts(item)], recomputed, report)
            else:
                report.agreements += 1
                rev = item.agreement
                tie = f"{checksum([str(v) for v in rev]):08x}"
                # The Account before the agreement that looks it up.
                facts = ms.revision_facts(rev, item.customer_account_id)
                versions = [ms.revision_version(rev, tie)] * len(facts)
                yield self._changed(
                    [*facts, ms.rollup_facts(item)],
                    recomputed,
                    report,
                    [*versions, None],
                )

    def _changed(
        self,
        facts: list[ms.Facts],
        recomputed: str,
        report: SyncReport,
        versions: list[str | None] | None = None,
    ) -> list[Versioned]:
        """The touches of one record (or an Account and its agreement), if
        they differ from what was submitted for it before."""
        versions = versions or [None] * len(facts)
        by_record: dict[tuple[str, str], list[Any]] = {}
        for (obj, key, values, status), version in zip(facts, versions, strict=True):
            by_record.setdefault((obj, key), []).append([values, status, version])
        out: list[Versioned] = []
        for (obj, key), said in by_record.items():
            digest = hashlib.sha256(
                json.dumps(said, sort_keys=True, default=str).encode()
            ).hexdigest()[:32]
            if self._published.get((obj, key)) == digest:
                continue
            self._published[(obj, key)] = digest
            self._digests.append((obj, key, digest))
            report.submitted += 1
            for values, status, version in said:
                out.append((version or recomputed, Touch(obj, key, values, status)))
        return out

    def _submit(self, buffer: list[Versioned]) -> None:
        """One outbox batch and the digests of its records (same transaction)."""
        if buffer:
            self.outbox.submit(buffer, self.origin)
        if self._digests:
            self.conn.executemany(
                "INSERT INTO sdds_published (obj, key, digest) VALUES (?, ?, ?) "
                "ON CONFLICT (obj, key) DO UPDATE SET digest = excluded.digest",
                self._digests,
            )
            self._digests = []

    def _vanished(self, seen: set[str]) -> list[str]:
        return sorted(k for o, k in self._published if o == INVOICE and k not in seen)


def status_lines(conn: sqlite3.Connection) -> list[str]:
    """`mailsync status` lines: the files read (the cursor), the as-of day
    and the number of passes that recomputed records."""
    store = FeedStore(conn)
    files = store.files()
    lines = [
        f"  feed files read: {len(files)}; billing data as of: "
        f"{day(store.meta('as_of')) or '-'}; passes: {store.meta('pass') or 0}"
    ]
    for key, _sig, rows, at in files[-5:]:
        lines.append(f"    - {key}: {rows} rows, read {at}")
    return lines
