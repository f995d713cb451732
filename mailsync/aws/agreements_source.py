"""The Agreement API source (`[source.agreements]`, contract section 6).

One pass (`AgreementsSource.run_pass`):

1. `SearchAgreements` as proposer (catalog `AWSMarketplace`, `PartyType`
   Proposer, `AgreementType` PurchaseAgreement), sorted by last update time,
   every page; from the second pass on filtered by `AfterLastUpdateTime` =
   the durable cursor minus `overlap_seconds`, so an agreement updated at the
   boundary (or listed late by an eventually consistent index) is not missed.
2. Per listed agreement, its change marker (`lastUpdateTime`; a digest of the
   summary when AWS gives none) is compared with the one stored for it: equal
   means nothing changed and no further call is made. Otherwise
   `DescribeAgreement` (for `estimatedCharges`) and `GetAgreementTerms` (the
   amount and currency when the estimate lacks them) build one
   `agreement.snapshot` event (`trust = verified`: it came from the API over
   TLS under our credentials), which is committed to the outbox together with
   the new marker, in one transaction.
3. One agreement that fails (after tenacity's backoff on throttling) is
   logged, counted and retried next pass; it never stops the pass. The cursor
   moves only after the pass, to the greatest `lastUpdateTime` seen, and never
   past an agreement that failed; a listing that fails leaves it unchanged.

A crash at any point loses nothing: committed snapshots carry their markers
(not described again), the rest are listed again because the cursor did not
move, and the outbox drops a snapshot it already holds (`source_id`
`<agreementId>@<lastUpdateTime>`). An unchanged second pass costs one
`SearchAgreements` call per 50 agreements updated inside the overlap, and no
`DescribeAgreement`.

`snapshots(summaries)` is the same per-agreement step for `mailsync reconcile`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mailsync import ledger as L
from mailsync.aws.agreement_api import AgreementApi, ApiCache, error_code, jsonable
from mailsync.config import AgreementsSettings
from mailsync.errors import StateError
from mailsync.event import Event, Role, Trust
from mailsync.ledger import Ledger
from mailsync.log import kv
from mailsync.parsers.agreement_api import snapshot
from mailsync.sink import Sink
from mailsync.sources.base import CheckLine, PassResult
from mailsync.statedb import atomic, ensure

log = logging.getLogger(__name__)

SOURCE = "agreements"
_DDL = """
CREATE TABLE IF NOT EXISTS agreement_seen (
    agreement_id TEXT PRIMARY KEY,
    marker TEXT NOT NULL,
    event TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agreement_cursor (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
);
"""
_NAMES_TTL = 7 * 86400.0  #: offer and product names change rarely


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(value: object) -> datetime | None:
    """lastUpdateTime as botocore returns it (datetime) or epoch seconds."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).replace(microsecond=0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC).replace(microsecond=0)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def marker(summary: Mapping[str, Any]) -> str:
    """What changes when the agreement changes: its lastUpdateTime, else a
    digest of the whole summary."""
    when = _when(summary.get("lastUpdateTime"))
    if when is not None:
        return _iso(when)
    text = json.dumps(summary, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Snapshot:
    agreement_id: str
    marker: str
    event: Event | None  #: None when the API call failed
    changed: bool  #: fetched now (False: the stored snapshot is current)
    error: str | None = None

    @property
    def updated(self) -> str | None:
        """lastUpdateTime (section 2 form), None when AWS gave none."""
        return None if self.marker.startswith("sha256:") else self.marker


class AgreementsSource:
    """`mailsync.sources.base.Source` over the Agreement API."""

    name = "agreements"

    def __init__(
        self,
        settings: AgreementsSettings,
        state: sqlite3.Connection,
        *,
        api: AgreementApi | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        ensure(state, _DDL)
        self.api = api or AgreementApi(
            region=settings.region, endpoint_url=settings.endpoint_url
        )
        self.ledger = ledger or Ledger(state)
        self._names = ApiCache(state, ttl=_NAMES_TTL)

    # -- cursor and markers ------------------------------------------------------

    def _stored_cursor(self) -> str | None:
        row = self.state.execute(
            "SELECT cursor FROM agreement_cursor WHERE source = ?", (SOURCE,)
        ).fetchone()
        return str(row[0]) if row else None

    def cursor(self) -> str | None:
        """The greatest lastUpdateTime fully handled, else `since`, else None."""
        stored = self._stored_cursor()
        if stored:
            return stored
        if self.settings.since:
            return f"{self.settings.since}T00:00:00Z"
        return None

    def _set_cursor(self, value: str) -> None:
        try:
            with atomic(self.state, "agreement_cursor"):
                self.state.execute(
                    "INSERT INTO agreement_cursor (source, cursor) VALUES (?, ?)"
                    " ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor",
                    (SOURCE, value),
                )
        except sqlite3.Error as err:
            raise StateError(f"agreement cursor write failed: {err}") from None

    def stored(self, agreement_id: str) -> tuple[str, Event] | None:
        row = self.state.execute(
            "SELECT marker, event FROM agreement_seen WHERE agreement_id = ?",
            (agreement_id,),
        ).fetchone()
        if row is None:
            return None
        return str(row[0]), Event.from_record(json.loads(row[1]))

    def filters(self, after: str | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"name": "PartyType", "values": ["Proposer"]},
            {"name": "AgreementType", "values": ["PurchaseAgreement"]},
        ]
        if after:
            out.append({"name": "AfterLastUpdateTime", "values": [after]})
        return out

    # -- one pass ------------------------------------------------------------------

    def run_pass(self, sink: Sink, stop: threading.Event) -> PassResult:
        result = PassResult()
        start = self.cursor()
        after = None
        if start:
            begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
            # A stored cursor gets the overlap; `since` means "on or after"
            # that day ("after" its last second before).
            stored = self._stored_cursor() is not None
            back = self.settings.overlap_seconds if stored else 1
            after = _iso(begin - timedelta(seconds=back))
        newest: str | None = start
        oldest_failed: str | None = None
        complete = True
        try:
            for page in self.api.search_pages(self.filters(after)):
                for snap in self.snapshots(page):
                    when = snap.updated
                    if when is not None and (newest is None or when > newest):
                        newest = when
                    if snap.event is None:
                        result.failed += 1
                        result.errors.append(f"{snap.agreement_id}: {snap.error}")
                        if when is not None and (
                            oldest_failed is None or when < oldest_failed
                        ):
                            oldest_failed = when
                        continue
                    if not snap.changed:
                        result.duplicates += 1
                        continue
                    result.fetched += 1
                    if not snap.event.recognized:
                        self._quarantine(snap)
                        result.unrecognized += 1
                        continue
                    self.commit(snap, sink)
                    result.synced += 1
                if stop.is_set():
                    complete = False
                    break
        except StateError:
            raise
        except Exception as err:  # the listing failed: keep the cursor
            complete = False
            message = f"SearchAgreements failed: {error_code(err)}: {_one_line(err)}"
            result.failed += 1
            result.errors.append(message)
            self.ledger.source_error(self.name, message)
            log.error(message, extra=kv(source=self.name))
        if complete:
            target = newest
            if oldest_failed is not None:
                target = min(oldest_failed, newest or oldest_failed)
                # "After" the cursor: step back one second to list it again.
                moment = datetime.fromisoformat(target.replace("Z", "+00:00"))
                target = _iso(moment - timedelta(seconds=1))
            if target and target != self.cursor():
                self._set_cursor(target)
            if not result.failed:
                self.ledger.source_ok(self.name, checkpoint=self.cursor())
        return result

    def snapshots(self, summaries: Iterable[Mapping[str, Any]]) -> Iterator[Snapshot]:
        """Per summary: the stored snapshot when its marker is unchanged, else
        a fresh one from DescribeAgreement + GetAgreementTerms (not stored)."""
        for summary in summaries:
            agreement_id = summary.get("agreementId")
            if not isinstance(agreement_id, str) or not agreement_id:
                log.warning(
                    "SearchAgreements summary without an agreementId skipped",
                    extra=kv(source=self.name),
                )
                continue
            mark = marker(summary)
            have = self.stored(agreement_id)
            if have is not None and have[0] == mark:
                yield Snapshot(agreement_id, mark, have[1], changed=False)
                continue
            try:
                yield Snapshot(agreement_id, mark, self.fetch(summary), changed=True)
            except StateError:
                raise
            except Exception as err:  # one agreement never stops the pass
                message = f"{error_code(err)}: {_one_line(err)}"
                log.warning(
                    "agreement not read",
                    extra=kv(source=self.name, agreement=agreement_id, error=message),
                )
                yield Snapshot(agreement_id, mark, None, changed=True, error=message)

    def fetch(self, summary: Mapping[str, Any]) -> Event:
        """The snapshot event of one listed agreement (API calls)."""
        agreement_id = str(summary["agreementId"])
        agreement = jsonable(self.api.describe(agreement_id))
        terms: dict[str, Any] = {}
        charges = agreement.get("estimatedCharges") or {}
        if not (charges.get("agreementValue") and charges.get("currencyCode")):
            # The estimate lacks the amount or currency: the accepted terms
            # (fixed upfront price, payment schedule) may say it.
            terms = jsonable(self.api.terms(agreement_id))
        role = self.settings.role
        event = snapshot(
            agreement, jsonable(summary), terms, role=role, trust=Trust.VERIFIED
        )
        if not event.recognized:
            return event
        event = event.replace(recipient_role=Role(role))
        if self.settings.names:
            event = self._with_names(event)
        return event

    def _with_names(self, event: Event) -> Event:
        changes: dict[str, str] = {}
        for field, entity in (
            ("offer_name", event.offer_id),
            ("product_name", event.product_id),
        ):
            if not entity:
                continue

            def load(e: str = entity) -> str | None:
                return self.api.entity_name(e)

            try:
                name = self._names.get(f"catalog:{entity}", load)
            except Exception as err:  # names are a nicety: keep the snapshot
                log.warning(
                    "catalog name not read",
                    extra=kv(entity=entity, error=f"{error_code(err)}"),
                )
                continue
            if isinstance(name, str) and name:
                changes[field] = name
        return event.replace(**changes) if changes else event

    def commit(self, snap: Snapshot, sink: Sink) -> None:
        """The snapshot into the outbox and its marker, in one transaction."""
        assert snap.event is not None
        record = json.dumps(snap.event.to_record())
        try:
            with atomic(self.state, "agreement_snapshot"):
                sink.submit(snap.event)
                self.state.execute(
                    "INSERT INTO agreement_seen (agreement_id, marker, event,"
                    " updated_at) VALUES (?,?,?,?) ON CONFLICT (agreement_id)"
                    " DO UPDATE SET marker = excluded.marker, event = excluded.event,"
                    " updated_at = excluded.updated_at",
                    (snap.agreement_id, snap.marker, record, L.now()),
                )
        except sqlite3.Error as err:
            raise StateError(f"agreement snapshot write failed: {err}") from None

    def _quarantine(self, snap: Snapshot) -> None:
        assert snap.event is not None
        raw = json.dumps({"agreementId": snap.agreement_id}).encode()
        self.ledger.record(
            self.name,
            f"{snap.agreement_id}@{snap.marker}",
            None,
            hashlib.sha256(raw).hexdigest(),
            L.UNRECOGNIZED,
            snap.event.reason,
            raw=raw,
            input_kind="json",
        )

    # -- Source protocol -------------------------------------------------------------

    def wait_for_input(self, timeout: float, stop: threading.Event) -> None:
        stop.wait(timeout)

    def check(self) -> list[CheckLine]:
        name = "source agreements"
        try:
            page = next(self.api.search_pages(self.filters(None)), [])
        except Exception as err:
            return [CheckLine(name, False, f"SearchAgreements: {error_code(err)}")]
        return [CheckLine(name, True, f"SearchAgreements ok ({len(page)} on page 1)")]

    def close(self) -> None:
        pass


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300]
