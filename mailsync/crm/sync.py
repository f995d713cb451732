"""Flushing the outbox to the configured CRM.

One flush, per batch of up to `batch_events` pending outbox events:

1. map every event to the records it names (`mapping.touches`), load the
   mirror records for those keys, and fold the events in (`merge.apply`);
2. ask the CRM once which of the touched Accounts exist and their Names;
3. render every touched record and keep those that differ from what was last
   written; upsert them in dependency order (Account, AWS_Agreement__c with
   `Account__r` by external ID, AWS_Offer__c, AWS_Subscription__c,
   AWS_Marketplace_Event__c) in batches of `batch_size`, then the optional
   Opportunity hook;
4. in ONE state-store transaction save the mirror, the dead letters and the
   outbox "done" marks.

A record the CRM refuses never holds back the rest of it, nor later events:
when the CRM names the fields at fault (STRING_TOO_LONG, a validation rule on
a field, INVALID_FIELD for a field the org lacks, a parent Account that does
not exist) the record is sent again at once without them, and the refused
values stay out of later writes (`merge.refuse`) until an event brings new
ones or the dead letter is retried (`merge.forgive`). The refusal is kept as
a dead letter with the CRM's code and message either way.

A crash between 3 and 4 leaves the events pending and the mirror unchanged:
the next flush re-sends the same values, and upserts by external ID make that
harmless. `TransientError` from the backend commits nothing (events stay
pending; the result says why); `CrmPausedError` also pauses flushing for
`pause_seconds`, persisted so that `status` shows it. A record the CRM refuses
is dead-lettered and not counted as written in the mirror.

The backend is opened lazily, by the first batch that needs it. A one-shot
command lets `CrmSync` open and close its own; the daemon passes a
`CrmConnection` so that one Salesforce session serves every flush
(`mailsync.crm.connection`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mailsync import metrics
from mailsync.config import Settings
from mailsync.crm import deadletter, merge, mirror
from mailsync.crm import mapping as m
from mailsync.crm.backend import CrmBackend, WriteResult
from mailsync.crm.connection import CrmConnection
from mailsync.crm.connection import make_backend as make_backend  # re-exported
from mailsync.crm.outbox import Outbox
from mailsync.crm.record_outbox import RecordOutbox, Versioned
from mailsync.errors import CrmPausedError, MailsyncError, StateError, TransientError
from mailsync.event import Event
from mailsync.redact import safe_error
from mailsync.sources.base import CheckLine
from mailsync.statedb import ensure

log = logging.getLogger(__name__)

_RECORD_BATCHES = 4  #: record-outbox batches (of up to 500 touches) per flush batch

_DDL = """
CREATE TABLE IF NOT EXISTS crm_sync_state (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS crm_name_intents (
    account TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (account, name)
);
"""


@dataclass
class FlushResult:
    written: int = 0  #: outbox events whose CRM writes are durable
    pending: int = 0  #: events still waiting in the outbox
    dead_lettered: int = 0  #: records the CRM refused (see status)
    paused_reason: str | None = None  #: why writes are paused (API limit, outage)
    records: int = 0  #: CRM records written
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: ``Object.Field`` the CRM does not have (INVALID_FIELD "No such column";
    #: NOT_FOUND for the object or its external ID field)
    missing_fields: set[str] = field(default_factory=set)

    def deploy_hint(self) -> str:
        """What to deploy when the CRM lacks fields ("" when it lacks none)."""
        if not self.missing_fields:
            return ""
        return (
            f"the CRM lacks {', '.join(sorted(self.missing_fields))}: deploy"
            " config/salesforce (mailsync check lists what is missing)"
        )

    def refused_note(self) -> str:
        """What a summary line says about refused records ("" for none)."""
        if not self.dead_lettered:
            return ""
        hint = self.deploy_hint()
        return f"{self.dead_lettered} refused" + (
            f" ({hint})" if hint else " (see mailsync quarantine list)"
        )


def crm_mapping(settings: Settings) -> m.CrmMapping:
    """The configured name mapping (Salesforce only; the SQLite store always
    uses the contract's names)."""
    if settings.crm.backend == "salesforce":
        return m.CrmMapping(settings.crm.salesforce.mapping)
    return m.CrmMapping()


def check_lines(settings: Settings) -> list[CheckLine]:
    """`mailsync check` lines for the CRM (delegates to `backend.check()`)."""
    try:
        crm_mapping(settings)
        backend = make_backend(settings)
    except MailsyncError as err:
        return [CheckLine(f"crm {settings.crm.backend}", False, str(err))]
    try:
        return backend.check()
    finally:
        backend.close()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class CrmSync:
    """Reads the outbox and writes merged records to the CRM backend."""

    def __init__(
        self,
        settings: Settings,
        state: sqlite3.Connection,
        backend: CrmBackend | None = None,
        *,
        connection: CrmConnection | None = None,
        batch_events: int = 2000,
        pause_seconds: int | None = None,
    ) -> None:
        """`backend`: use (and close) this one; else `connection`: borrow its
        backend, kept open after `close()` and discarded when a flush fails;
        else open one from `settings` when first needed, closed by `close()`."""
        self.settings = settings
        self.conn = state
        self.outbox = Outbox(state)
        self.record_outbox = RecordOutbox(state)
        mirror.ensure_schema(state)
        deadletter.ensure_schema(state)
        ensure(state, _DDL)
        self.mapping = crm_mapping(settings)
        self._backend = backend
        self._connection = None if backend is not None else connection
        self.batch_events = batch_events
        #: after REQUEST_LIMIT_EXCEEDED; `[crm] pause_seconds` unless given
        self.pause_seconds = (
            settings.crm.pause_seconds if pause_seconds is None else pause_seconds
        )
        self.batch_size = (
            settings.crm.salesforce.batch_size
            if settings.crm.backend == "salesforce"
            else 200
        )
        self.extra_fields = self.mapping.extra_fields

    @property
    def backend(self) -> CrmBackend:
        if self._backend is None:
            self._backend = (
                self._connection.acquire()
                if self._connection is not None
                else make_backend(self.settings)
            )
        return self._backend

    # -- public ----------------------------------------------------------------

    def flush(self) -> FlushResult:
        """Write pending events; never raises for a CRM outage (it reports it
        in the result and keeps the events); raises `StateError`."""
        result = FlushResult()
        until, reason = self._paused()
        if until is not None:
            result.pending = self._depth()
            result.paused_reason = f"{reason} (paused until {until})"
            return result
        retry = deadletter.retry_keys(self.conn)
        try:
            while True:
                batch = self.outbox.pending(self.batch_events)
                # Recomputed records (Seller Data Feeds) ride in the batches
                # the events leave room for.
                touched = (
                    self.record_outbox.pending(_RECORD_BATCHES)
                    if len(batch) < self.batch_events
                    else []
                )
                if not batch and not touched and not retry:
                    break
                self._flush_batch(batch, retry, result, touched)
                retry = []
                if len(batch) < self.batch_events and len(touched) < _RECORD_BATCHES:
                    break
        except CrmPausedError as err:
            metrics.crm_error(self.settings.crm.backend, "paused")
            until_at = _ts(_now() + timedelta(seconds=self.pause_seconds))
            self._set(paused_until=until_at, paused_reason=str(err))
            self._set(last_error=f"{_ts(_now())} {err}")
            result.paused_reason = f"{err} (paused until {until_at})"
        except TransientError as err:
            metrics.crm_error(self.settings.crm.backend, "transient")
            self._discard(str(err))
            self._set(last_error=f"{_ts(_now())} {err}")
            result.paused_reason = str(err)
        except Exception as err:
            self._discard(f"{type(err).__name__}: {err}")
            raise
        result.pending = self._depth()
        metrics.flushed(self.settings.crm.backend, result.written, result.pending)
        return result

    def retry_dead_letters(self) -> int:
        """Queue every dead letter for the next flush; return how many."""
        return deadletter.request_retry(self.conn)

    def status(self) -> dict[str, Any]:
        """CRM facts for `mailsync status`: backend, pending outbox count, dead
        letters (count and the latest few), pause, API usage, last flush."""
        kv = self._state()
        until, reason = self._paused()
        return {
            "backend": self.settings.crm.backend,
            "pending": self._depth(),
            "dead_letters": {
                "count": deadletter.count(self.conn),
                "latest": [
                    {k: v for k, v in d.to_json().items() if k != "record"}
                    for d in deadletter.listing(self.conn, 5)
                ],
            },
            "paused_until": until,
            "paused_reason": reason,
            "api_usage": self._usage(kv),
            "last_success": kv.get("last_success"),
            "last_error": kv.get("last_error"),
        }

    def _depth(self) -> int:
        return self.outbox.depth() + self.record_outbox.depth()

    def close(self) -> None:
        """Close the backend, or hand it back to the `connection` (which keeps
        a Salesforce session open for the next flush)."""
        if self._connection is not None:
            self._backend = None
            self._connection.release()
        elif self._backend is not None:
            self._backend.close()
            self._backend = None

    def _discard(self, reason: str) -> None:
        """After a failed flush, a borrowed backend is not reused: the next
        flush opens (logs in to) a new one."""
        if self._connection is not None:
            self._backend = None
            self._connection.discard(reason)

    # -- one batch -------------------------------------------------------------

    def _flush_batch(
        self,
        batch: Sequence[tuple[int, Event]],
        retry: Sequence[tuple[str, str]],
        result: FlushResult,
        touched: Sequence[tuple[int, list[Versioned]]] = (),
    ) -> None:
        folded = [
            (m.event_version(ev), t)
            for _, ev in batch
            for t in m.touches(ev, self.extra_fields)
        ]
        folded += [vt for _, items in touched for vt in items]
        keys = {(t.obj, t.key) for _, t in folded} | set(retry)
        records = mirror.load(self.conn, keys)
        for obj_key in retry:
            merge.forgive(records[obj_key])  # an admin asked: offer every value again
        before = {k: (r.written or {}).get(m.STATUS) for k, r in records.items()}
        for version, touch in folded:
            merge.apply(records[(touch.obj, touch.key)], touch, version)
        names = self._account_names(records)
        intended = self._intended_names(names)
        outcome = _Outcome()
        for obj in m.OBJECTS:
            todo = []
            for (o, key), record in sorted(records.items()):
                if o != obj:
                    continue
                desired = merge.render(record)
                if (
                    obj == m.ACCOUNT
                    and not merge.account_name_owned(record, names.get(key))
                    and (key, names.get(key)) not in intended
                ):
                    continue  # someone else's Account: never touch its Name
                if desired != record.written or (o, key) in retry:
                    todo.append((record, desired))
            if obj == m.ACCOUNT:
                self._intend(todo)
            self._write(obj, todo, outcome, result)
        self._opportunities(folded, records, before)
        self._commit(
            [seq for seq, _ in batch],
            records.values(),
            outcome,
            [seq for seq, _ in touched],
        )
        result.written += len(batch) + len(touched)
        result.dead_lettered += len(outcome.refused)
        result.records += len(outcome.landed)

    def _account_names(
        self, records: Mapping[tuple[str, str], merge.MirrorRecord]
    ) -> dict[str, str]:
        ids = [key for obj, key in records if obj == m.ACCOUNT]
        return self.backend.existing_account_names(ids) if ids else {}

    def _write(
        self,
        obj: str,
        todo: list[tuple[merge.MirrorRecord, dict[str, Any]]],
        outcome: _Outcome,
        result: FlushResult,
    ) -> None:
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            for _ in range(_ROUNDS):
                chunk = self._send(obj, chunk, outcome, result)
                if not chunk:
                    break

    def _send(
        self,
        obj: str,
        chunk: list[tuple[merge.MirrorRecord, dict[str, Any]]],
        outcome: _Outcome,
        result: FlushResult,
    ) -> list[tuple[merge.MirrorRecord, dict[str, Any]]]:
        """Upsert `chunk`; return the refused records that can be sent again
        without the fields the CRM named (see the module docstring)."""
        crm_obj = self.mapping.obj(obj)
        ext = self.mapping.external_id(obj)
        wire = [self.mapping.to_crm(obj, desired) for _, desired in chunk]
        metrics.crm_call(self.settings.crm.backend)
        answers = self.backend.upsert(crm_obj, ext, wire)
        result.writes.extend((obj, w) for w in wire)
        again = []
        for (record, desired), sent, answer in zip(
            chunk, wire, _complete(answers, wire, ext), strict=True
        ):
            if answer.ok:
                outcome.landed.append((record, desired))
                continue
            if _missing_field(answer):
                result.missing_fields.update(f"{crm_obj}.{f}" for f in answer.fields)
            elif answer.error_code == "NOT_FOUND":  # the object or its external ID
                result.missing_fields.add(f"{crm_obj}.{ext}")
            # The last refusal: after a collateral one (a missing parent) it
            # is the record's own.
            outcome.refusals[(record.obj, record.key)] = (record, sent, answer)
            partial = self._without_refused(obj, record, desired, answer)
            if partial is not None:
                again.append((record, partial))
        return again

    def _without_refused(
        self,
        obj: str,
        record: merge.MirrorRecord,
        desired: dict[str, Any],
        answer: WriteResult,
    ) -> dict[str, Any] | None:
        """`desired` without the fields the CRM refused, or None when it
        named none that can be left out."""
        named = set(answer.fields)
        if not named:
            return None
        lookup = self.mapping.field(obj, m.ACCOUNT_LOOKUP)
        parent = bool(lookup) and bool(
            named & {lookup, lookup.removesuffix("__c") + "__r"}
        )
        logical = set(self.mapping.from_crm(obj, dict.fromkeys(named)))
        merge.refuse(record, logical - {m.EXTERNAL_ID[obj], m.ACCOUNT_LOOKUP})
        partial = merge.render(record)
        if parent or m.ACCOUNT_REF not in desired:
            # The parent Account does not exist (yet): write the record without
            # the lookup (in every further round); the next write of the record
            # sets it again.
            partial.pop(m.ACCOUNT_REF, None)
        return partial if partial != desired else None

    def _opportunities(
        self,
        folded: Iterable[tuple[str, m.Touch]],
        records: Mapping[tuple[str, str], merge.MirrorRecord],
        before: Mapping[tuple[str, str], Any],
    ) -> None:
        """Offers newly Accepted: let the backend mark linked Opportunities won
        (Salesforce only, when `opportunity_stage` is configured)."""
        hook = getattr(self.backend, "update_opportunities", None)
        if hook is None or not self.settings.crm.salesforce.opportunity_stage:
            return
        pairs: dict[str, str] = {}
        for _, touch in folded:
            if touch.obj == m.AGREEMENT and "Offer_ID__c" in touch.facts:
                offer = touch.facts["Offer_ID__c"]
                if before.get((m.OFFER, offer)) != "Accepted" and (
                    merge.status(records.get((m.OFFER, offer)) or _empty(offer))
                    == "Accepted"
                ):
                    pairs[offer] = touch.key
        if pairs:
            hook(sorted(pairs.items()))

    def _commit(
        self,
        seqs: list[int],
        records: Iterable[merge.MirrorRecord],
        outcome: _Outcome,
        record_seqs: Sequence[int] = (),
    ) -> None:
        for record, desired in outcome.landed:
            record.written = desired
        now = _ts(_now())
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                mirror.save(self.conn, records)
                for record, _ in outcome.landed:
                    if not record.refused:  # else it landed without them: keep
                        deadletter.clear(self.conn, record.obj, record.key)
                    if record.obj == m.ACCOUNT:
                        self.conn.execute(
                            "DELETE FROM crm_name_intents WHERE account = ?",
                            (record.key,),
                        )
                for record, sent, answer in outcome.refused:
                    deadletter.add(
                        self.conn,
                        record.obj,
                        record.key,
                        sent,
                        answer.error_code or "",
                        answer.message or "",
                    )
                # Same statement as Outbox.done, inside this transaction so the
                # mirror and the "done" marks commit together.
                self.conn.executemany(
                    "UPDATE outbox SET flushed_at = ? WHERE seq = ?",
                    [(now, s) for s in seqs],
                )
                self.conn.executemany(
                    "UPDATE record_outbox SET flushed_at = ? WHERE seq = ?",
                    [(now, s) for s in record_seqs],
                )
                self._put("last_success", now)
                usage = self.backend.usage()
                if usage is not None:
                    self._put("api_usage", _dump(usage))
        except sqlite3.Error as err:
            raise StateError(f"CRM flush cannot be recorded: {err}") from None
        for record, _sent, answer in outcome.refused:
            log.warning(
                "CRM refused %s %s: %s %s",
                record.obj,
                record.key,
                answer.error_code,
                answer.message,
            )

    # -- Account Names mailsync is about to write ------------------------------
    #
    # A crash after the CRM applied an Account upsert but before the mirror was
    # committed would leave a Name mailsync wrote that the mirror does not know;
    # `merge.account_name_owned` would then take it for someone else's Name and
    # never update it again. So the Names are recorded (committed) before the
    # upsert, and such a Name counts as mailsync's own until a write lands.

    def _intended_names(self, names: Mapping[str, str]) -> set[tuple[str, str]]:
        keys = list(names)
        found: set[tuple[str, str]] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self.conn.execute(
                "SELECT account, name FROM crm_name_intents WHERE account IN "
                f"({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            found.update((str(a), str(n)) for a, n in rows)
        return found

    def _intend(self, todo: list[tuple[merge.MirrorRecord, dict[str, Any]]]) -> None:
        rows = [(r.key, str(d[m.NAME])) for r, d in todo if d.get(m.NAME)]
        if not rows:
            return
        try:
            with self.conn:
                self.conn.executemany(
                    "INSERT OR IGNORE INTO crm_name_intents (account, name)"
                    " VALUES (?, ?)",
                    rows,
                )
        except sqlite3.Error as err:
            raise StateError(f"CRM flush cannot be recorded: {err}") from None

    # -- small persistent state ----------------------------------------------

    def _state(self) -> dict[str, str]:
        rows = self.conn.execute("SELECT key, value FROM crm_sync_state").fetchall()
        return {str(k): str(v) for k, v in rows}

    def _put(self, key: str, value: str | None) -> None:
        self.conn.execute(
            "INSERT INTO crm_sync_state (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _set(self, **values: str | None) -> None:
        try:
            with self.conn:
                for key, value in values.items():
                    if key in ("last_error", "paused_reason") and value:
                        value = safe_error(value)  # may quote an error body
                    self._put(key, value)
        except sqlite3.Error as err:
            raise StateError(f"CRM sync state cannot be written: {err}") from None

    def _paused(self) -> tuple[str | None, str | None]:
        kv = self._state()
        until = kv.get("paused_until") or None
        if until and until > _ts(_now()):
            return until, kv.get("paused_reason")
        return None, None

    @staticmethod
    def _usage(kv: Mapping[str, str]) -> Any:
        return json.loads(kv["api_usage"]) if kv.get("api_usage") else None


#: Sends of one chunk: the first, then up to two without refused fields.
_ROUNDS = 3


@dataclass
class _Outcome:
    landed: list[tuple[merge.MirrorRecord, dict[str, Any]]] = field(
        default_factory=list
    )
    #: the last refusal of each record (a dead letter even when the record
    #: then landed without the refused fields)
    refusals: dict[
        tuple[str, str], tuple[merge.MirrorRecord, dict[str, Any], WriteResult]
    ] = field(default_factory=dict)

    @property
    def refused(self) -> list[tuple[merge.MirrorRecord, dict[str, Any], WriteResult]]:
        return list(self.refusals.values())


def _missing_field(answer: WriteResult) -> bool:
    """Refused for a field the CRM does not have (Salesforce INVALID_FIELD,
    "No such column 'X' on sobject of type Y"; the field is in `fields`)."""
    return answer.error_code == "INVALID_FIELD" and (answer.message or "").startswith(
        "No such column"
    )


def _empty(offer: str) -> merge.MirrorRecord:
    return merge.MirrorRecord(m.OFFER, offer)


def _complete(
    answers: Sequence[WriteResult], wire: Sequence[Mapping[str, Any]], ext: str
) -> list[WriteResult]:
    """One result per record sent; a missing answer counts as refused."""
    out = list(answers[: len(wire)])
    for record in wire[len(out) :]:
        out.append(
            WriteResult(
                str(record.get(ext)),
                False,
                False,
                "NO_RESULT",
                "the CRM returned no result for this record",
            )
        )
    return out


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class DryRunBackend:
    """A backend that reads through to `inner` but only records writes
    (for `replay --dry-run`): every upsert is reported as landed."""

    def __init__(self, inner: CrmBackend) -> None:
        self.inner = inner
        self.name = inner.name

    def existing_account_names(self, account_ids: Sequence[str]) -> dict[str, str]:
        return self.inner.existing_account_names(account_ids)

    def upsert(
        self, obj: str, external_id_field: str, records: Sequence[Mapping[str, Any]]
    ) -> list[WriteResult]:
        return [WriteResult(str(r.get(external_id_field)), True) for r in records]

    def fetch_all(self, obj: str) -> list[dict[str, Any]]:
        return self.inner.fetch_all(obj)

    def check(self) -> list[CheckLine]:
        return self.inner.check()

    def usage(self) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        self.inner.close()
