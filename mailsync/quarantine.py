"""The quarantine: inputs that were unrecognized or rejected, and their retry.

Every unrecognized or rejected input is recorded by the source that fetched it
(`Ledger.record`) in the ``quarantine`` table, with its raw bytes (when under
`[security] max_message_bytes`), the input kind (``email`` or ``json``) and
the reason. This module reads those entries and re-runs them:

- `entries(conn)` lists the open entries (not yet released), oldest first.
- `Retrier(settings, conn).retry(entry)` runs the stored bytes through the
  *current* code and configuration, e.g. after a parser fix or after an
  administrator allowed a sender or turned `require_dkim` off:

  * email: `Pipeline.evaluate` (size limit, parsers, DKIM and sender policy,
    exactly as the daemon does);
  * json (an SQS body): `sqs_policy.admit_json` (wrappers off, then SNS
    signature, topics, age, EventBridge allow-lists on the object parsed;
    needs `[source.sqs]`), then enrichment when on.

  A recognized, trusted event is submitted to the outbox (which drops a
  delivery it has seen before, by Message-ID / SNS MessageId / EventBridge id),
  the ledger row of the input becomes ``synced`` and the entry is released
  (``released_at`` set, kept for the record). An input that still fails stays
  quarantined with its new outcome and reason (in the ledger too). A
  `TransientError` (DNS down, the SNS certificate host unreachable) changes
  nothing: the entry stays as it was and can be retried later.

Because the ledger row of a released input is ``synced`` under the source's
own key (IMAP ``<uidvalidity>:<uid>``, Maildir file path, SQS message ID) and
with the same SHA-256, a source that sees the input again (a rescan after a
UIDVALIDITY change, a renamed file) finds it finished and never submits or
quarantines it a second time. The mailbox itself is never touched here: a
message moved to the IMAP quarantine folder stays there.
"""

from __future__ import annotations

import email.policy
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from typing import Any

from mailsync import ledger as L
from mailsync.config import Settings
from mailsync.crm.outbox import Outbox
from mailsync.errors import ParseError, RejectedError, StateError, TransientError
from mailsync.event import Event, Trust
from mailsync.ledger import Ledger
from mailsync.parsers.jsonload import load_json
from mailsync.pipeline import Pipeline
from mailsync.security.limits import check_size

SKIPPED = "skipped"  #: nothing could be retried (no stored bytes, no SQS config)
KEPT = "kept"  #: a temporary failure; the entry is unchanged, retry later

_COLUMNS = (
    "id, source, key, input_kind, message_id, sha256, outcome, reason, raw,"
    " created_at, released_at"
)


@dataclass(frozen=True)
class Entry:
    """One quarantined input."""

    id: int
    source: str
    key: str
    input_kind: str  #: "email" or "json"
    message_id: str | None
    sha256: str
    outcome: str  #: unrecognized | rejected (| synced once released)
    reason: str | None
    raw: bytes | None
    created_at: str
    released_at: str | None

    @property
    def subject(self) -> str | None:
        """The email's Subject (decoded), or None."""
        if self.input_kind != "email" or not self.raw:
            return None
        try:
            headers = BytesHeaderParser(policy=email.policy.default).parsebytes(
                self.raw[:65536]
            )
            value = headers.get("Subject")
        except Exception:  # a malformed header block: just no subject
            return None
        if value is None:
            return None
        return " ".join(str(value).split()) or None

    @property
    def label(self) -> str:
        """What identifies the input to a person: the subject or Message-ID of
        an email; the SQS message ID (and SNS / EventBridge ID) of a JSON body."""
        if self.input_kind == "email":
            return self.subject or (f"<{self.message_id}>" if self.message_id else "")
        inner = _json_id(self.raw)
        sqs = f"SQS {self.key}"
        return f"{sqs}, {inner}" if inner and self.key not in inner else sqs

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "source": self.source,
            "key": self.key,
            "input_kind": self.input_kind,
            "outcome": self.outcome,
            "reason": self.reason,
            "message_id": self.message_id,
            "subject": self.subject,
            "label": self.label,
            "sha256": self.sha256,
            "size": len(self.raw) if self.raw is not None else None,
            "released_at": self.released_at,
        }


def _json_id(raw: bytes | None) -> str | None:
    try:
        obj = load_json((raw or b"").decode("utf-8", "replace"))
    except ParseError:
        return None
    if not isinstance(obj, dict):
        return None
    if obj.get("MessageId"):
        return f"SNS {obj['MessageId']}"
    if obj.get("id") and obj.get("detail-type"):
        return f"EventBridge {obj['id']}"
    return None


def _entry(row: tuple[Any, ...]) -> Entry:
    return Entry(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        row[4],
        str(row[5]),
        str(row[6]),
        row[7],
        bytes(row[8]) if row[8] is not None else None,
        str(row[9]),
        row[10],
    )


def entries(conn: sqlite3.Connection) -> list[Entry]:
    """Open (not released) entries, oldest first."""
    Ledger(conn)  # the tables exist even before the first run
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM quarantine WHERE released_at IS NULL ORDER BY id"
    ).fetchall()
    return [_entry(r) for r in rows]


def get(conn: sqlite3.Connection, entry_id: int) -> Entry | None:
    """The entry with this ID, released or not."""
    Ledger(conn)
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM quarantine WHERE id = ?", (entry_id,)
    ).fetchone()
    return _entry(row) if row else None


@dataclass(frozen=True)
class Retried:
    """The result of retrying one entry."""

    entry: Entry
    outcome: str  #: synced | unrecognized | rejected | kept | skipped
    reason: str | None = None
    duplicate: bool = False  #: synced, but the outbox had this delivery already

    @property
    def released(self) -> bool:
        return self.outcome == L.SYNCED

    @property
    def handled(self) -> bool:
        """False only for a temporary failure (the retry should be repeated)."""
        return self.outcome != KEPT


class Retrier:
    """Re-runs quarantined inputs through the current pipeline (module doc)."""

    def __init__(self, settings: Settings, conn: sqlite3.Connection) -> None:
        self.settings = settings
        self.conn = conn
        self.ledger = Ledger(conn)
        self.outbox = Outbox(conn)
        self.pipeline = Pipeline(settings, self.ledger)
        self._sqs: Any = None  # (verifier, enricher), built on first JSON entry

    def retry(self, entry: Entry) -> Retried:
        """Retry one open entry; raises only `StateError`."""
        if entry.raw is None:
            return Retried(
                entry,
                SKIPPED,
                "the input's bytes were not kept (over [security] "
                "max_message_bytes when it arrived); nothing to retry",
            )
        too_big = check_size(entry.raw, self.settings.security)
        if too_big:
            return self._still(entry, L.REJECTED, too_big)
        try:
            event = self._evaluate(entry)
        except _Skip as err:
            return Retried(entry, SKIPPED, str(err))
        except RejectedError as err:
            return self._still(entry, L.REJECTED, str(err))
        except StateError:
            raise
        except TransientError as err:
            return Retried(entry, KEPT, f"{err}; left in quarantine, retry later")
        except Exception as err:  # one bad entry never stops `--all`
            return Retried(entry, KEPT, f"internal error: {type(err).__name__}: {err}")
        if not event.recognized:
            return self._still(entry, L.UNRECOGNIZED, event.reason)
        if event.trust is Trust.REJECTED:
            return self._still(entry, L.REJECTED, event.reason)
        new = self.outbox.submit(event, origin=f"quarantine {entry.id}: {entry.key}")
        note = None if new else "duplicate delivery"
        message_id = event.source_id or entry.message_id
        # Ledger first, then the release: a crash between the two leaves an open
        # entry whose next retry is a harmless duplicate delivery.
        self.ledger.record(
            entry.source, entry.key, message_id, entry.sha256, L.SYNCED, note
        )
        self._update(entry.id, L.SYNCED, note or "synced on retry", release=True)
        return Retried(entry, L.SYNCED, note, duplicate=not new)

    # -- evaluation --------------------------------------------------------------

    def _evaluate(self, entry: Entry) -> Event:
        assert entry.raw is not None
        if entry.input_kind == "email":
            # The date of the mail may not be later than when it arrived.
            return self.pipeline.evaluate(entry.raw, _moment(entry.created_at))
        return self._evaluate_json(entry.key, entry.raw)

    def _evaluate_json(self, key: str, raw: bytes) -> Event:
        """An SQS body, with the SQS source's own trust decision (`admit`)."""
        from mailsync.aws.sqs_policy import Confirmation, admit_json

        sqs = self.settings.sqs
        if sqs is None:
            raise _Skip(
                "[source.sqs] is not configured, so this SQS message's signature"
                " and allow-lists cannot be checked; configure it to retry"
            )
        verifier, enrich = self._sqs_tools()
        body = raw.decode("utf-8", errors="replace")
        event = admit_json(body, sqs, verifier)
        if isinstance(event, Confirmation):
            return Event.unrecognized(event.reason)
        if not event.recognized:
            return event
        # The same extra delivery ID the SQS source gives (raw messages).
        event = event.replace(dedupe_ids=(*event.dedupe_ids, f"sqs:{key}"))
        return enrich(event) if enrich is not None else event

    def _sqs_tools(self) -> tuple[Any, Any]:
        if self._sqs is None:
            from mailsync.aws.enrich import Enricher
            from mailsync.security.sns_verify import SnsVerifier

            assert self.settings.sqs is not None
            verifier = SnsVerifier(
                topic_arns=self.settings.sqs.topic_arns,
                certificate_dir=self.settings.security.sns_certificate_dir or None,
            )
            enricher = Enricher(self.settings.enrichment, state=self.conn)
            self._sqs = (verifier, enricher if enricher.enabled else None)
        verifier, enrich = self._sqs
        return verifier, enrich

    # -- recording ---------------------------------------------------------------

    def _still(self, entry: Entry, outcome: str, reason: str | None) -> Retried:
        """Still not syncable: new outcome and reason in the ledger and entry."""
        reason = " ".join((reason or outcome).split())
        self.ledger.record(
            entry.source,
            entry.key,
            entry.message_id,
            entry.sha256,
            outcome,
            reason,
            raw=entry.raw,
            input_kind=entry.input_kind,
        )
        self._update(entry.id, outcome, reason, release=False)
        return Retried(entry, outcome, reason)

    def _update(
        self, entry_id: int, outcome: str, reason: str, *, release: bool
    ) -> None:
        try:
            with self.conn:
                self.conn.execute(
                    "UPDATE quarantine SET outcome = ?, reason = ?,"
                    " released_at = CASE WHEN ? THEN ? ELSE released_at END"
                    " WHERE id = ?",
                    (outcome, reason, release, L.now(), entry_id),
                )
        except sqlite3.Error as err:
            raise StateError(f"quarantine update failed: {err}") from None


def _moment(text: str) -> datetime | None:
    """A stored ISO 8601 time as an aware datetime (None when unreadable)."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _Skip(Exception):
    """The entry cannot be retried with this configuration."""
