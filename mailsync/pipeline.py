"""One input through parse → trust → sink → ledger, shared by every source.

`Pipeline.handle(raw, sink, source=..., key=...)` never raises for a bad input:

1. Over `[security] max_message_bytes` → `rejected` (quarantined), unparsed.
2. Already finished in the ledger under this key → its old outcome (no work).
   Finished under another key with the same SHA-256 or Message-ID (UIDVALIDITY
   change, a renamed file) → that outcome is copied, nothing is re-submitted.
3. ``kind="email"``: `mailsync.parsers.parse_email`; ``kind="json"``:
   `mailsync.parsers.json_input.parse_json` (SNS / EventBridge bodies).
4. A recognized email event goes through `security.email_trust.check_email`.
5. Recognized and not rejected → `sink.submit(event)` (durable on return; False
   = a delivery already seen, which also counts as handled) → `synced`.
   Unrecognized → `unrecognized`, rejected → `rejected`; both quarantined.
   `TransientError` (DNS down, …) → `failed`: recorded and retried later.
6. The outcome is committed to the ledger *after* the sink, so an input whose
   outcome is final is never lost; the caller marks its input only afterwards.

`Pipeline.handle_batch(items, sink, source=...)` does the same for a FETCH
batch of emails with two costs paid once per batch instead of once per
message: one round trip to the parse worker (the events stream back while the
main process trust-checks and submits the previous ones) and one commit (one
fsync) for all outbox and ledger writes (`Ledger.batch`). Its outcomes are
durable only when it returns; the caller marks the inputs afterwards.

`StateError` (the state store cannot be written) is the one exception that
propagates: the caller must stop and leave the input unmarked.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from mailsync import ledger as L
from mailsync import metrics
from mailsync.config import Settings
from mailsync.crm.outbox import Outbox
from mailsync.errors import StateError, TransientError
from mailsync.event import Event, Trust
from mailsync.ledger import Batch, Ledger
from mailsync.log import kv
from mailsync.sink import Sink

log = logging.getLogger(__name__)

InputKind = Literal["email", "json"]

#: the blank line that ends the header block, and a (folded) Message-ID field
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.I | re.M)


@dataclass(frozen=True)
class Outcome:
    """What happened to one input."""

    outcome: str  #: synced | unrecognized | rejected | failed
    reason: str | None = None
    event: Event | None = None
    duplicate: bool = False  #: the sink had this delivery already
    message_id: str | None = None
    sha256: str = ""

    @property
    def final(self) -> bool:
        return self.outcome in L.FINAL


@dataclass(frozen=True)
class Item:
    """One input of a batch: its ledger key, bytes and origin (for the outbox)."""

    key: str
    raw: bytes
    origin: str = ""


@dataclass(frozen=True)
class _Pending:
    """An input that passed the cheap checks and needs parsing."""

    digest: str
    message_id: str | None


class _Stopped(Exception):
    """Raised out of the parse stream when the caller asked to stop."""


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def header_message_id(raw: bytes) -> str | None:
    """The first Message-ID header without angle brackets, or None.

    A regular expression over the header block rather than an email parser:
    it runs for every input in the main process, before the parse worker."""
    head = raw[:65536]
    end = _HEADER_END.search(head)
    found = _MESSAGE_ID.search(head, 0, end.start() if end else len(head))
    if found is None:
        return None
    value = " ".join(found.group(1).decode("ascii", "replace").split())
    return value.strip("<>").strip() or None


class Pipeline:
    """Parse, trust-check, submit and record inputs for any source."""

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self.settings = settings
        self.ledger = ledger

    def handle(
        self,
        raw: bytes,
        sink: Sink,
        *,
        source: str,
        key: str,
        kind: InputKind = "email",
        origin: str = "",
    ) -> Outcome:
        """Process one input and commit its outcome to the ledger."""
        pre = self._precheck(raw, source, key, kind)
        if isinstance(pre, Outcome):
            return pre
        try:
            event = self._parse_one(raw, kind)
        except StateError:
            raise
        except Exception as err:
            return self._failed(source, key, pre, kind, err)
        return self._finish(raw, event, pre, sink, source, key, kind, origin)

    def handle_batch(
        self,
        items: Sequence[Item],
        sink: Sink,
        *,
        source: str,
        stop: threading.Event | None = None,
        beat: Callable[[], None] | None = None,
        meanwhile: Callable[[], None] | None = None,
        tx: Batch | None = None,
    ) -> list[Outcome | None]:
        """`handle` (kind email) for each item, in one transaction.

        Returns one outcome per item, all committed when this returns, unless
        the caller passes its own open `tx` (`Ledger.batch()`): the outcomes
        are then durable only once the caller commits it. When `stop` is set
        the batch ends after the current item and the items not reached are
        None (unrecorded: the caller must neither mark them nor move its
        checkpoint past them). `beat` is called after every item; `meanwhile`
        once while the worker parses (see `limits.parse_many_with_timeout`).
        """
        if tx is None:
            with self.ledger.batch() as own:
                return self._batch(items, sink, source, stop, beat, meanwhile, own)
        return self._batch(items, sink, source, stop, beat, meanwhile, tx)

    def _batch(
        self,
        items: Sequence[Item],
        sink: Sink,
        source: str,
        stop: threading.Event | None,
        beat: Callable[[], None] | None,
        meanwhile: Callable[[], None] | None,
        tx: Batch,
    ) -> list[Outcome | None]:
        outcomes: list[Outcome | None] = [None] * len(items)
        tx.ensure()
        todo: list[tuple[int, _Pending]] = []
        later: list[int] = []  # a copy of an input earlier in this batch
        digests: set[str] = set()
        ids: set[str] = set()
        for i, item in enumerate(items):
            pre = self._precheck(item.raw, source, item.key, "email")
            if isinstance(pre, Outcome):
                outcomes[i] = pre
            elif pre.digest in digests or (pre.message_id or "") in ids:
                later.append(i)  # handled once the first copy is recorded
            else:
                digests.add(pre.digest)
                if pre.message_id:
                    ids.add(pre.message_id)
                todo.append((i, pre))

        def finish(j: int, event: Event) -> None:
            i, pre = todo[j]
            item = items[i]
            tx.ensure()
            outcomes[i] = self._finish(
                item.raw, event, pre, sink, source, item.key, "email", item.origin
            )
            tx.step()
            if beat is not None:
                beat()
            if stop is not None and stop.is_set():
                raise _Stopped

        try:
            self._parse_many([items[i].raw for i, _ in todo], finish, meanwhile)
        except _Stopped:
            return outcomes
        for i in later:
            if stop is not None and stop.is_set():
                break
            tx.ensure()
            item = items[i]
            outcomes[i] = self.handle(
                item.raw, sink, source=source, key=item.key, origin=item.origin
            )
        return outcomes

    def _precheck(
        self, raw: bytes, source: str, key: str, kind: InputKind
    ) -> Outcome | _Pending:
        """The checks that need no parsing: a final Outcome, or _Pending."""
        digest = sha256_hex(raw)
        metrics.fetched(source)
        done = self.ledger.finished_with_hash(source, key)
        if done is not None and done[1] == digest:
            return Outcome(done[0], "already handled", sha256=digest)
        # (a finished key with other bytes is a file rewritten in place: new input)
        message_id = header_message_id(raw) if kind == "email" else None
        limit = self.settings.security.max_message_bytes
        if len(raw) > limit:
            reason = (
                f"message is {len(raw)} bytes, over [security] max_message_bytes"
                f" = {limit}"
            )
            return self._record(
                source, key, message_id, digest, L.REJECTED, reason, None, kind
            )
        earlier = self.ledger.seen_before(source, message_id, digest)
        if earlier is not None:
            old_outcome, old_reason = earlier
            self.ledger.record(source, key, message_id, digest, old_outcome, old_reason)
            return Outcome(
                old_outcome,
                old_reason,
                duplicate=True,
                message_id=message_id,
                sha256=digest,
            )
        return _Pending(digest, message_id)

    def _finish(
        self,
        raw: bytes,
        event: Event,
        pre: _Pending,
        sink: Sink,
        source: str,
        key: str,
        kind: InputKind,
        origin: str,
    ) -> Outcome:
        """Trust-check a parsed event, submit it and record the outcome."""
        digest, message_id = pre.digest, pre.message_id
        try:
            if kind == "email" and event.recognized:
                from mailsync.security.email_trust import check_email

                event = check_email(raw, event, self.settings.security)
            message_id = event.source_id or message_id
            if not event.recognized:
                return self._record(
                    source,
                    key,
                    message_id,
                    digest,
                    L.UNRECOGNIZED,
                    event.reason,
                    raw,
                    kind,
                    event,
                )
            if event.trust is Trust.REJECTED:
                return self._record(
                    source,
                    key,
                    message_id,
                    digest,
                    L.REJECTED,
                    event.reason,
                    raw,
                    kind,
                    event,
                )
            new = self._submit(sink, event, origin)
        except StateError:
            raise
        except Exception as err:
            return self._failed(source, key, _Pending(digest, message_id), kind, err)
        self.ledger.record(
            source,
            key,
            message_id,
            digest,
            L.SYNCED,
            None if new else "duplicate delivery",
        )
        log.info(
            "synced",
            extra=kv(
                source=source,
                key=key,
                kind=str(event.kind),
                message_id=message_id,
                duplicate=not new or None,
            ),
        )
        return Outcome(L.SYNCED, None, event, not new, message_id, digest)

    def _failed(
        self, source: str, key: str, pre: _Pending, kind: InputKind, err: Exception
    ) -> Outcome:
        """`failed` (retried later) for a TransientError or an internal error;
        one bad input never stops the batch."""
        if isinstance(err, TransientError):
            reason = str(err)
        else:
            log.exception("input failed", extra=kv(source=source, key=key))
            reason = f"internal error: {type(err).__name__}: {err}"
        return self._record(
            source, key, pre.message_id, pre.digest, L.FAILED, reason, None, kind
        )

    def too_big(self, size: int) -> bool:
        return size > self.settings.security.max_message_bytes

    def reject_oversize(self, source: str, key: str, size: int) -> Outcome:
        """Quarantine an input known (from its size alone) to be over the limit,
        without fetching it; the same outcome `handle` gives for the bytes."""
        done = self.ledger.finished(source, key)
        if done is not None:
            return Outcome(done, "already handled")
        limit = self.settings.security.max_message_bytes
        reason = f"message is {size} bytes, over [security] max_message_bytes = {limit}"
        return self._record(
            source, key, None, f"size:{size}", L.REJECTED, reason, None, "email"
        )

    def evaluate(self, raw: bytes) -> Event:
        """Parse and trust-check one email exactly as `handle` does, without
        submitting or recording it (`mailsync quarantine retry`)."""
        event = self._parse_one(raw, "email")
        if event.recognized:
            from mailsync.security.email_trust import check_email

            event = check_email(raw, event, self.settings.security)
        return event

    def _parse_one(self, raw: bytes, kind: InputKind) -> Event:
        if kind == "json":
            from mailsync.parsers import json_input  # lands with the SNS parsers

            parse_json = getattr(json_input, "parse_json")  # noqa: B009
            event: Event = parse_json(raw)
            return event
        from mailsync.parsers import parse_email
        from mailsync.security.limits import parse_with_timeout

        # A worker process with a time cap: a runaway parse cannot stall a source.
        seconds = self.settings.security.parse_timeout_seconds
        return parse_with_timeout(parse_email, raw, seconds)

    def _parse_many(
        self,
        raws: Sequence[bytes],
        on_event: Callable[[int, Event], None],
        meanwhile: Callable[[], None] | None,
    ) -> None:
        from mailsync.parsers import parse_email
        from mailsync.security.limits import parse_many_with_timeout

        # One worker round trip per batch, each message still capped alone.
        seconds = self.settings.security.parse_timeout_seconds
        parse_many_with_timeout(parse_email, raws, seconds, on_event, meanwhile)

    @staticmethod
    def _submit(sink: Sink, event: Event, origin: str) -> bool:
        if isinstance(sink, Outbox):  # the outbox also records where it came from
            return sink.submit(event, origin=origin)
        return sink.submit(event)

    def _record(
        self,
        source: str,
        key: str,
        message_id: str | None,
        digest: str,
        outcome: str,
        reason: str | None,
        raw: bytes | None,
        kind: InputKind,
        event: Event | None = None,
    ) -> Outcome:
        reason = " ".join((reason or outcome).split())
        self.ledger.record(
            source, key, message_id, digest, outcome, reason, raw=raw, input_kind=kind
        )
        metrics.outcome(source, outcome)
        level = logging.WARNING if outcome == L.FAILED else logging.INFO
        log.log(
            level,
            outcome,
            extra=kv(source=source, key=key, reason=reason, message_id=message_id),
        )
        return Outcome(outcome, reason, event, False, message_id, digest)
