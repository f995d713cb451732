"""`SqsSource`: the `Source` for one SQS queue of SNS notifications and
EventBridge events (built and run by `mailsync.aws.sqs`).

One pass receives batches of up to 10 messages (long polling), and for each:

1. Each body is checked and parsed by `sqs_policy.admit_json` (after taking
   off any SQS / Lambda wrapper, so the checks judge what is parsed): SNS
   envelopes by
   `SnsVerifier` (signature, certificate, topic) unless
   `verify_signatures = false` (then `trust = unverified`); bare raw-delivery
   messages are accepted only with `raw_delivery = true` (`unverified`);
   EventBridge events only from `eventbridge_sources` and, when set,
   `eventbridge_accounts`. A failed check is `rejected`: logged, counted,
   quarantined with its body, deleted, never synced.
2. SNS subscription confirmations are never confirmed: logged with the topic
   ARN and SubscribeURL host, recorded (quarantine, so an operator can confirm
   by hand) and deleted.
3. The parsed event (`sqs_sent_at=SentTimestamp`), then enrichment, then
   `sink.submit`. The message is deleted only after `submit` returned (the
   event is durable in the outbox). Redeliveries are dropped by the outbox on
   SNS `MessageId` / EventBridge `id` and `detail.requestId`, and on the SQS
   message ID (raw messages have no ID of their own).
4. A message that cannot be parsed, or whose processing fails, stays in the
   queue and is retried; once `ApproximateReceiveCount` reaches `max_receives`
   it is quarantined with its body and deleted (a poison message). An SNS
   signing certificate that cannot be downloaded counts the same way, so a
   forged envelope naming a missing certificate is not retried forever.

While a batch is processed, a heartbeat thread keeps extending the visibility
timeout of its unfinished messages so a slow batch is not redelivered.
Outcomes go to the ledger under the source name and the SQS message ID.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from mailsync import ledger as L
from mailsync.aws import sqs_client as api
from mailsync.aws.sqs_client import make_client, queue_counts
from mailsync.aws.sqs_policy import Confirmation, admit_json
from mailsync.config import SecuritySettings, SqsSettings
from mailsync.crm.outbox import Outbox
from mailsync.errors import RejectedError, StateError, TransientError
from mailsync.event import Event
from mailsync.ledger import Ledger
from mailsync.log import kv
from mailsync.security.sns_verify import CertificateFetchError, SnsVerifier
from mailsync.sink import Sink
from mailsync.sources.base import CheckLine, PassResult

# The source's records keep one logger name (`logger` in JSON logs), whichever
# of its modules writes them.
log = logging.getLogger("mailsync.aws.sqs")

Enrich = Callable[[Event], Event]


class SqsSource:
    """Implements `mailsync.sources.base.Source` for one SQS queue."""

    def __init__(
        self,
        settings: SqsSettings,
        *,
        ledger: Ledger,
        security: SecuritySettings | None = None,
        verifier: SnsVerifier | None = None,
        enrich: Enrich | None = None,
        client: Any = None,
        name: str = "sqs",
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.name = name
        cert_dir = security.sns_certificate_dir if security else ""
        self.verifier = verifier or SnsVerifier(
            topic_arns=settings.topic_arns, certificate_dir=cert_dir or None
        )
        self.enrich = enrich
        self.client = client or make_client(settings)
        self._buffer: list[dict[str, Any]] = []

    # -- Source protocol ---------------------------------------------------------

    def run_pass(self, sink: Sink, stop: threading.Event) -> PassResult:
        """Drain the queue (until an empty receive or `stop`); see module doc."""
        result = PassResult()
        # A short wait while draining: a 0 s receive samples only some SQS
        # servers and can come back empty while messages wait.
        wait = min(1, self.settings.wait_time_seconds)
        seen: set[str] = set()
        try:
            while not stop.is_set():
                batch, self._buffer = self._buffer, []
                if not batch:
                    batch = self._receive(wait)
                # A message that comes back within one pass (it failed, and its
                # visibility timeout ran out) waits for the next pass.
                fresh = [m for m in batch if m["MessageId"] not in seen]
                if not fresh:
                    break
                seen.update(m["MessageId"] for m in fresh)
                self._process_batch(fresh, sink, stop, result)
        except TransientError as err:
            self.ledger.source_error(self.name, str(err))
            raise
        self.ledger.source_ok(self.name)
        return result

    def wait_for_input(self, timeout: float, stop: threading.Event) -> None:
        """Long-poll once (up to `wait_time_seconds`); keep what arrives for the
        next pass (its visibility timeout already runs)."""
        if self._buffer or stop.is_set():
            return
        wait = max(0, min(int(timeout), self.settings.wait_time_seconds))
        try:
            self._buffer = self._receive(wait)
        except TransientError as err:
            log.warning(
                "SQS receive failed", extra=kv(source=self.name, error=str(err))
            )
            stop.wait(min(timeout, 5.0))

    def check(self) -> list[CheckLine]:
        """GetQueueAttributes on the queue; never raises."""
        try:
            counts = queue_counts(self.settings, self.client)
        except TransientError as err:
            return [CheckLine(f"source {self.name}", False, str(err))]
        return [
            CheckLine(
                f"source {self.name}",
                True,
                f"queue reachable: {counts['waiting']} waiting, "
                f"{counts['in_flight']} in flight",
            )
        ]

    def queue_counts(self) -> dict[str, int]:
        """See the module-level `queue_counts`."""
        return queue_counts(self.settings, self.client)

    def close(self) -> None:
        self._buffer = []
        close = getattr(self.client, "close", None)
        if close is not None:
            close()

    # -- receiving and deleting -------------------------------------------------

    def _receive(self, wait: int) -> list[dict[str, Any]]:
        messages = api.receive(self.client, self.settings, wait)
        log.debug(
            "ReceiveMessage", extra=kv(source=self.name, wait=wait, got=len(messages))
        )
        return messages

    def _delete(self, handles: list[tuple[str, str]]) -> None:
        """A failed delete only means a redelivery, which the ledger and the
        outbox absorb."""
        log.debug("DeleteMessageBatch", extra=kv(source=self.name, count=len(handles)))
        api.delete(self.client, self.settings.queue_url, handles, self.name)

    # -- one batch ---------------------------------------------------------------

    def _process_batch(
        self,
        batch: list[dict[str, Any]],
        sink: Sink,
        stop: threading.Event,
        result: PassResult,
    ) -> None:
        pending = {m["MessageId"]: m["ReceiptHandle"] for m in batch}
        lock = threading.Lock()
        done = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(pending, lock, done), daemon=True
        )
        beat.start()
        finished: list[tuple[str, str]] = []
        try:
            for message in batch:
                if stop.is_set():
                    break  # the rest reappears after the visibility timeout
                result.fetched += 1
                if self._process(message, sink, result):
                    finished.append((message["MessageId"], message["ReceiptHandle"]))
                with lock:
                    pending.pop(message["MessageId"], None)
        finally:
            done.set()
            beat.join()
            self._delete(finished)

    def _heartbeat(
        self, pending: dict[str, str], lock: threading.Lock, done: threading.Event
    ) -> None:
        """Extend the visibility of unfinished messages every third of the
        visibility timeout, so a slow batch is not redelivered meanwhile."""
        interval = max(0.2, self.settings.visibility_timeout / 3)
        while not done.wait(interval):
            with lock:
                handles = list(pending.values())
            api.extend_visibility(self.client, self.settings, handles, self.name)

    def _process(
        self, message: Mapping[str, Any], sink: Sink, result: PassResult
    ) -> bool:
        """Handle one message; True when it is finished and may be deleted."""
        key = str(message["MessageId"])
        body = str(message.get("Body", ""))
        raw = body.encode("utf-8")
        digest = hashlib.sha256(raw).hexdigest()
        attrs = message.get("Attributes") or {}
        receives = _int(attrs.get("ApproximateReceiveCount"), 1)
        if self.ledger.finished(self.name, key) is not None:
            result.duplicates += 1  # finished before, but its delete was lost
            return True
        try:
            event = self._event(body, _sent_at(attrs), key)
            if event is None:  # a subscription confirmation, recorded
                result.unrecognized += 1
                return True
            if not event.recognized:
                if _json_object(body):
                    # Well formed, just not something mailsync maps (an
                    # EventBridge "Change Set Succeeded" the README's rule
                    # forwards): the same bytes give the same answer on every
                    # receive, so it is final now; quarantine and delete.
                    result.unrecognized += 1
                    self._record(
                        key, event.source_id, digest, L.UNRECOGNIZED, event.reason, raw
                    )
                    return True
                return self._poison(key, digest, raw, receives, event.reason, result)
            if self.enrich is not None:
                event = self.enrich(event)
            new = self._submit(sink, event, key)
        except RejectedError as err:
            result.rejected += 1
            self._record(key, None, digest, L.REJECTED, str(err), raw)
            return True
        except StateError:
            raise
        except CertificateFetchError as err:
            return self._poison(key, digest, raw, receives, str(err), result)
        except TransientError as err:
            result.failed += 1
            result.errors.append(str(err))
            self._record(key, None, digest, L.FAILED, str(err), None)
            return False
        except Exception as err:  # one bad message never stops the batch
            log.exception("SQS message failed", extra=kv(source=self.name, key=key))
            reason = f"internal error: {type(err).__name__}: {err}"
            return self._poison(key, digest, raw, receives, reason, result)
        if new:
            result.synced += 1
        else:
            result.duplicates += 1
        self._record(
            key,
            event.source_id,
            digest,
            L.SYNCED,
            None if new else "duplicate delivery",
            None,
        )
        return True

    def _submit(self, sink: Sink, event: Event, key: str) -> bool:
        if isinstance(sink, Outbox):
            return sink.submit(event, origin=f"{self.name}:{key}")
        return sink.submit(event)

    def _event(self, body: str, sent_at: datetime | None, key: str) -> Event | None:
        """The checked event for one body (None for a subscription confirmation);
        raise `RejectedError` for a failed check (`sqs_policy.admit_json`)."""
        event = admit_json(body, self.settings, self.verifier, sqs_sent_at=sent_at)
        if isinstance(event, Confirmation):
            self._confirmation(event, key)
            return None
        if not event.recognized:
            return event
        return event.replace(dedupe_ids=(*event.dedupe_ids, f"sqs:{key}"))

    def _confirmation(self, found: Confirmation, key: str) -> None:
        log.warning(
            "SNS subscription confirmation not confirmed",
            extra=kv(source=self.name, topic=found.topic, subscribe_host=found.host),
        )
        self._record(
            key, found.message_id, found.digest, L.UNRECOGNIZED, found.reason, found.raw
        )

    def _poison(
        self,
        key: str,
        digest: str,
        raw: bytes,
        receives: int,
        reason: str | None,
        result: PassResult,
    ) -> bool:
        """Retry a failing message until `max_receives`, then quarantine it."""
        reason = reason or "unparseable"
        if receives < self.settings.max_receives:
            result.failed += 1
            result.errors.append(reason)
            self._record(
                key,
                None,
                digest,
                L.FAILED,
                f"{reason} (receive {receives} of {self.settings.max_receives})",
                None,
            )
            return False
        result.unrecognized += 1
        self._record(
            key,
            None,
            digest,
            L.UNRECOGNIZED,
            f"{reason}; quarantined after {receives} receives",
            raw,
        )
        return True

    def _record(
        self,
        key: str,
        message_id: str | None,
        digest: str,
        outcome: str,
        reason: str | None,
        raw: bytes | None,
    ) -> None:
        reason = " ".join(reason.split()) if reason else None
        self.ledger.record(
            self.name,
            key,
            message_id or key,
            digest,
            outcome,
            reason,
            raw=raw,
            input_kind="json",
        )
        # Levels by meaning (as for mail): failed and rejected need a look;
        # synced and unrecognized (quarantined, nothing is wrong) are INFO.
        level = logging.WARNING if outcome in (L.FAILED, L.REJECTED) else logging.INFO
        log.log(level, outcome, extra=kv(source=self.name, key=key, reason=reason))


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


def _sent_at(attrs: Mapping[str, Any]) -> datetime | None:
    """SQS `SentTimestamp` (epoch milliseconds) as UTC."""
    millis = _int(attrs.get("SentTimestamp"), -1)
    if millis < 0:
        return None
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def _json_object(body: str) -> bool:
    """True when `body` is a JSON object (a well-formed message mailsync did
    not map), False for anything unparseable (kept for `max_receives`)."""
    try:
        return isinstance(json.loads(body), dict)
    except (ValueError, RecursionError):
        return False
