"""One input through parse → trust → sink → ledger, shared by every source.

`Pipeline.handle(raw, sink, source=..., key=...)` never raises for a bad input:

1. Over `[security] max_message_bytes` → `rejected` (quarantined), unparsed.
2. Already finished in the ledger under this key → its old outcome (no work).
   Finished under another key with the same SHA-256 (UIDVALIDITY change, a
   renamed file) → that outcome is copied, nothing is re-submitted. Only the
   content hash may copy an outcome: a Message-ID is chosen by the sender, so
   a match on it alone means "evaluate again" (a forged mail carrying the
   Message-ID of a genuine one must not decide the genuine one's fate).
3. ``kind="email"``: `mailsync.security.email_gate.evaluate_email` in the
   parse worker (one reading of the message for the parsers and the trust
   check: DKIM, sender policy, forwarded mail); its date is clamped to the
   receive time (`Item.received_at`). ``kind="json"``:
   `mailsync.parsers.json_input.parse_json` (SNS / EventBridge bodies).
4. (The trust decision is part of step 3.)
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

The steps live in three modules, all re-exported here: `inputs`
(`Item`, `Outcome`, `sha256_hex`, `header_message_id`), `evaluate`
(email and JSON parsing, the trust check) and `record` (ledger,
metrics and log of each outcome).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from mailsync import ledger as L
from mailsync import metrics
from mailsync.config import Settings
from mailsync.errors import StateError, TransientError
from mailsync.event import Event, Trust
from mailsync.ledger import Batch, Ledger
from mailsync.pipeline import evaluate as ev
from mailsync.pipeline import record as rec
from mailsync.pipeline.inputs import (
    InputKind,
    Item,
    Outcome,
    Pending,
    Stopped,
    header_message_id,
    sha256_hex,
)
from mailsync.security.limits import check_size
from mailsync.sink import Sink

__all__ = [
    "InputKind",
    "Item",
    "Outcome",
    "Pipeline",
    "header_message_id",
    "sha256_hex",
]


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
        received_at: datetime | None = None,
    ) -> Outcome:
        """Process one input and commit its outcome to the ledger;
        `received_at` is when the source received it (default now)."""
        pre = self._precheck(raw, source, key, kind)
        if isinstance(pre, Outcome):
            return pre
        try:
            event = ev.parse_one(self.settings, raw, kind)
        except StateError:
            raise
        except Exception as err:
            return rec.failed(self.ledger, source, key, pre, kind, err)
        return self._finish(
            raw, event, pre, sink, source, key, kind, origin, received_at
        )

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
        todo: list[tuple[int, Pending]] = []
        later: list[int] = []  # a copy of an input earlier in this batch
        digests: set[str] = set()
        for i, item in enumerate(items):
            pre = self._precheck(item.raw, source, item.key, "email")
            if isinstance(pre, Outcome):
                outcomes[i] = pre
            elif pre.digest in digests:
                later.append(i)  # handled once the first copy is recorded
            else:
                digests.add(pre.digest)
                todo.append((i, pre))

        def finish(j: int, event: Event | TransientError) -> None:
            i, pre = todo[j]
            item = items[i]
            tx.ensure()
            if isinstance(event, TransientError):
                outcomes[i] = rec.failed(
                    self.ledger, source, item.key, pre, "email", event
                )
            else:
                outcomes[i] = self._finish(
                    item.raw,
                    event,
                    pre,
                    sink,
                    source,
                    item.key,
                    "email",
                    item.origin,
                    item.received_at,
                )
            tx.step()
            if beat is not None:
                beat()
            if stop is not None and stop.is_set():
                raise Stopped

        raws = [items[i].raw for i, _ in todo]
        try:
            ev.parse_many(self.settings, raws, finish, meanwhile)
        except Stopped:
            return outcomes
        for i in later:
            if stop is not None and stop.is_set():
                break
            tx.ensure()
            item = items[i]
            outcomes[i] = self.handle(
                item.raw,
                sink,
                source=source,
                key=item.key,
                origin=item.origin,
                received_at=item.received_at,
            )
        return outcomes

    def _precheck(
        self, raw: bytes, source: str, key: str, kind: InputKind
    ) -> Outcome | Pending:
        """The checks that need no parsing: a final Outcome, or Pending."""
        digest = sha256_hex(raw)
        metrics.fetched(source)
        done = self.ledger.finished_with_hash(source, key)
        if done is not None and done[1] == digest:
            return Outcome(done[0], "already handled", sha256=digest)
        # (a finished key with other bytes is a file rewritten in place: new input)
        message_id = header_message_id(raw) if kind == "email" else None
        reason = check_size(raw, self.settings.security)
        if reason is not None:
            return rec.record(
                self.ledger,
                source,
                key,
                message_id,
                digest,
                L.REJECTED,
                reason,
                None,
                kind,
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
        return Pending(digest, message_id)

    def _finish(
        self,
        raw: bytes,
        event: Event,
        pre: Pending,
        sink: Sink,
        source: str,
        key: str,
        kind: InputKind,
        origin: str,
        received_at: datetime | None = None,
    ) -> Outcome:
        """Submit a parsed (for email: trust-checked) event and record the
        outcome."""
        digest, message_id = pre.digest, pre.message_id
        try:
            if kind == "email":
                event = ev.received(event, received_at)
            message_id = event.source_id or message_id
            if not event.recognized or event.trust is Trust.REJECTED:
                outcome = L.UNRECOGNIZED if not event.recognized else L.REJECTED
                return rec.record(
                    self.ledger,
                    source,
                    key,
                    message_id,
                    digest,
                    outcome,
                    event.reason,
                    raw,
                    kind,
                    event,
                )
            new = rec.submit(sink, event, origin)
        except StateError:
            raise
        except Exception as err:
            pending = Pending(digest, message_id)
            return rec.failed(self.ledger, source, key, pending, kind, err)
        return rec.synced(self.ledger, source, key, message_id, digest, event, new)

    def too_big(self, size: int) -> bool:
        return check_size(size, self.settings.security) is not None

    def reject_oversize(self, source: str, key: str, size: int) -> Outcome:
        """Quarantine an input known (from its size alone) to be over the limit,
        without fetching it; the same outcome `handle` gives for the bytes."""
        done = self.ledger.finished(source, key)
        if done is not None:
            return Outcome(done, "already handled")
        reason = check_size(size, self.settings.security) or "too big"
        return rec.record(
            self.ledger,
            source,
            key,
            None,
            f"size:{size}",
            L.REJECTED,
            reason,
            None,
            "email",
        )

    def evaluate(self, raw: bytes, received_at: datetime | None = None) -> Event:
        """Parse and trust-check one email exactly as `handle` does, without
        submitting or recording it (`mailsync quarantine retry`)."""
        return ev.evaluate(self.settings, raw, received_at)
