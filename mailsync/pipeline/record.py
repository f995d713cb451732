"""Recording outcomes for `mailsync.pipeline`: ledger, metrics, log.

- `submit`: hand an accepted event to the sink (the outbox also records the
  input's origin); True = new, False = a delivery already seen.
- `synced`: record an input whose event the sink made durable.
- `record`: record any other outcome (unrecognized, rejected, failed); the
  ledger keeps the raw bytes of quarantined inputs for a later retry.
- `failed`: `failed` (retried later) for a `TransientError` or an internal
  error, so that one bad input never stops a batch.

Each writes through the given `Ledger` (inside the caller's transaction when
one is open) and logs as ``mailsync.pipeline``; the log line and the metric
wait for that transaction's COMMIT (`statedb.after_commit`), so an outcome
is never logged as done when a full disk lost it.
"""

from __future__ import annotations

import logging

from mailsync import ledger as L
from mailsync import metrics
from mailsync.crm.outbox import Outbox
from mailsync.errors import TransientError
from mailsync.event import Event
from mailsync.ledger import Ledger
from mailsync.log import kv
from mailsync.pipeline.inputs import InputKind, Outcome, Pending
from mailsync.sink import Sink
from mailsync.statedb import after_commit

log = logging.getLogger("mailsync.pipeline")


def submit(sink: Sink, event: Event, origin: str) -> bool:
    if isinstance(sink, Outbox):  # the outbox also records where it came from
        return sink.submit(event, origin=origin)
    return sink.submit(event)


def synced(
    ledger: Ledger,
    source: str,
    key: str,
    message_id: str | None,
    digest: str,
    event: Event,
    new: bool,
) -> Outcome:
    ledger.record(
        source,
        key,
        message_id,
        digest,
        L.SYNCED,
        None if new else "duplicate delivery",
    )
    fields = kv(
        source=source,
        key=key,
        kind=str(event.kind),
        message_id=message_id,
        duplicate=not new or None,
    )
    after_commit(ledger.conn, lambda: log.info("synced", extra=fields))
    return Outcome(L.SYNCED, None, event, not new, message_id, digest)


def failed(
    ledger: Ledger,
    source: str,
    key: str,
    pre: Pending,
    kind: InputKind,
    err: Exception,
) -> Outcome:
    """`failed` (retried later) for a TransientError or an internal error;
    one bad input never stops the batch."""
    if isinstance(err, TransientError):
        reason = str(err)
    else:
        log.exception("input failed", extra=kv(source=source, key=key))
        reason = f"internal error: {type(err).__name__}: {err}"
    return record(
        ledger, source, key, pre.message_id, pre.digest, L.FAILED, reason, None, kind
    )


def record(
    ledger: Ledger,
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
    ledger.record(
        source, key, message_id, digest, outcome, reason, raw=raw, input_kind=kind
    )
    # Levels by meaning: a failure or an input refused as untrusted needs a
    # look (WARNING); synced and unrecognized (not Marketplace mail) are news.
    # Logged only once the batch is committed (nothing "synced" that is not).
    level = logging.WARNING if outcome in (L.FAILED, L.REJECTED) else logging.INFO
    fields = kv(source=source, key=key, reason=reason, message_id=message_id)

    def done() -> None:
        metrics.outcome(source, outcome)
        log.log(level, outcome, extra=fields)

    after_commit(ledger.conn, done)
    return Outcome(outcome, reason, event, False, message_id, digest)
