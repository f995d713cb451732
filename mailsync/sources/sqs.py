"""The SQS source: SNS notifications and EventBridge events from an SQS queue.

One pass receives batches of up to 10 messages (long polling), and for each:

1. SNS envelopes are checked by `SnsVerifier` (signature, certificate, topic)
   unless `verify_signatures = false` (then `trust = unverified`); bare
   raw-delivery messages are accepted only with `raw_delivery = true`
   (`unverified`); EventBridge events only from `eventbridge_sources` and, when
   set, `eventbridge_accounts`. A failed check is `rejected`: logged, counted,
   quarantined with its body, deleted, never synced.
2. SNS subscription confirmations are never confirmed: logged with the topic
   ARN and SubscribeURL host, recorded (quarantine, so an operator can confirm
   by hand) and deleted.
3. `parse_json(body, sqs_sent_at=SentTimestamp)`, then enrichment, then
   `sink.submit`. The message is deleted only after `submit` returned (the
   event is durable in the outbox). Redeliveries are dropped by the outbox on
   SNS `MessageId` / EventBridge `id` and `detail.requestId`, and on the SQS
   message ID (raw messages have no ID of their own).
4. A message that cannot be parsed, or whose processing fails, stays in the
   queue and is retried; once `ApproximateReceiveCount` reaches `max_receives`
   it is quarantined with its body and deleted (a poison message).

While a batch is processed, a heartbeat thread keeps extending the visibility
timeout of its unfinished messages so a slow batch is not redelivered.
Outcomes go to the ledger under the source name and the SQS message ID.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from mailsync import ledger as L
from mailsync.config import SecuritySettings, Settings, SqsSettings
from mailsync.crm.outbox import Outbox
from mailsync.errors import RejectedError, StateError, TransientError
from mailsync.event import Event, Trust
from mailsync.ledger import Ledger
from mailsync.log import kv
from mailsync.parsers.eventbridge import is_eventbridge_event
from mailsync.parsers.json_input import parse_json
from mailsync.parsers.sns import is_bare_message, normalize_envelope
from mailsync.security.sns_verify import SnsVerifier
from mailsync.sink import Sink
from mailsync.sources.base import CheckLine, PassResult

log = logging.getLogger(__name__)

Enrich = Callable[[Event], Event]
_CONFIRMATIONS = ("SubscriptionConfirmation", "UnsubscribeConfirmation")
_COUNT_ATTRS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]


def make_client(settings: SqsSettings) -> Any:
    """A boto3 SQS client; credentials from the standard AWS chain."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=10,
        # A long poll holds the connection for up to 20 s before answering.
        read_timeout=settings.wait_time_seconds + 20,
        retries={"mode": "standard", "max_attempts": 3},
    )
    return boto3.session.Session().client(
        "sqs",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url or None,
        config=config,
    )


def _aws_error(action: str, err: Exception) -> TransientError:
    return TransientError(f"SQS {action} failed: {' '.join(str(err).split())}")


def queue_counts(settings: SqsSettings, client: Any = None) -> dict[str, int]:
    """`{"waiting": n, "in_flight": m}` from GetQueueAttributes (for `status`);
    raise `TransientError` when the queue cannot be reached."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = client or make_client(settings)
    try:
        attrs = client.get_queue_attributes(
            QueueUrl=settings.queue_url, AttributeNames=_COUNT_ATTRS
        )["Attributes"]
    except (BotoCoreError, ClientError) as err:
        raise _aws_error("GetQueueAttributes", err) from None
    return {
        "waiting": int(attrs.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
    }


def source_name(settings: SqsSettings) -> str:
    """`sqs:<queue name>`, the name used in the ledger and by `status`."""
    return f"sqs:{settings.queue_url.rstrip('/').rsplit('/', 1)[-1]}"


def status_lines(settings: SqsSettings, client: Any = None) -> list[str]:
    """Lines for `mailsync status`: the queue's approximate counts; never raises."""
    try:
        counts = queue_counts(settings, client)
    except TransientError as err:
        return [f"  queue: unreachable ({err})"]
    return [
        f"  queue waiting: {counts['waiting']}",
        f"  queue in flight: {counts['in_flight']}",
    ]


def build(settings: Settings, pipeline: Any) -> SqsSource:
    """The configured SQS source for the daemon (`pipeline` gives the ledger),
    with enrichment when `[enrichment] enabled` and credentials are present."""
    return _configured(settings, pipeline.ledger)


def serve(
    settings: Settings,
    stop: threading.Event,
    *,
    on_beat: Callable[[], None] = lambda: None,
) -> str | None:
    """The daemon's SQS worker: pass, long-poll, repeat until `stop`; connection
    errors back off (1 s steps, calling `on_beat` to stay visibly alive).
    Returns the message of a fatal `StateError`, else None."""
    from mailsync.statedb import open_db

    assert settings.sqs is not None
    try:
        conn = open_db(settings.state.path)
    except StateError as err:
        return str(err)
    source = _configured(settings, Ledger(conn))
    outbox = Outbox(conn)
    attempt = 0
    try:
        while not stop.is_set():
            on_beat()
            try:
                result = source.run_pass(outbox, stop)
                attempt = 0
                if result.fetched:
                    log.info("pass done", extra=kv(source=source.name, **vars(result)))
                on_beat()
                if settings.sqs.wait_time_seconds == 0:
                    stop.wait(settings.sqs.poll_interval)
                source.wait_for_input(settings.sqs.wait_time_seconds, stop)
            except StateError as err:
                return str(err)
            except Exception as err:  # the worker outlives any one failure
                attempt += 1
                delay = min(300, 2**attempt)
                if isinstance(err, TransientError):
                    log.error(f"{err}; retrying in {delay} s")
                else:
                    log.exception(f"unexpected error: {err}")
                for _ in range(delay):
                    if stop.wait(1):
                        break
                    on_beat()
    finally:
        source.close()
        conn.close()
    return None


def _configured(settings: Settings, ledger: Ledger) -> SqsSource:
    from mailsync.enrich import Enricher

    assert settings.sqs is not None
    enricher = Enricher(settings.enrichment, state=ledger.conn)
    return SqsSource(
        settings.sqs,
        ledger=ledger,
        security=settings.security,
        enrich=enricher if enricher.enabled else None,
        name=source_name(settings.sqs),
    )


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
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.receive_message(
                QueueUrl=self.settings.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait,
                VisibilityTimeout=self.settings.visibility_timeout,
                MessageSystemAttributeNames=[
                    "ApproximateReceiveCount",
                    "SentTimestamp",
                ],
            )
        except (BotoCoreError, ClientError) as err:
            raise _aws_error("ReceiveMessage", err) from None
        return list(response.get("Messages", []))

    def _delete(self, handles: Sequence[tuple[str, str]]) -> None:
        """Delete `(message id, receipt handle)` pairs; a failed delete only
        means a redelivery, which the ledger and the outbox absorb."""
        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(handles), 10):
            chunk = handles[start : start + 10]
            try:
                response = self.client.delete_message_batch(
                    QueueUrl=self.settings.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": h}
                        for i, (_, h) in enumerate(chunk)
                    ],
                )
            except (BotoCoreError, ClientError) as err:
                log.warning(
                    "SQS delete failed", extra=kv(source=self.name, error=str(err))
                )
                continue
            for failed in response.get("Failed", []):
                log.warning(
                    "SQS delete failed",
                    extra=kv(source=self.name, error=failed.get("Message")),
                )

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
        visibility timeout (SQS ChangeMessageVisibility; the new timeout counts
        from the call)."""
        from botocore.exceptions import BotoCoreError, ClientError

        interval = max(0.2, self.settings.visibility_timeout / 3)
        while not done.wait(interval):
            with lock:
                entries = [
                    {
                        "Id": str(i),
                        "ReceiptHandle": handle,
                        "VisibilityTimeout": self.settings.visibility_timeout,
                    }
                    for i, handle in enumerate(list(pending.values())[:10])
                ]
            if not entries:
                continue
            try:
                self.client.change_message_visibility_batch(
                    QueueUrl=self.settings.queue_url, Entries=entries
                )
            except (BotoCoreError, ClientError) as err:
                log.warning(
                    "SQS visibility extension failed",
                    extra=kv(source=self.name, error=str(err)),
                )

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
        raise `RejectedError` for a failed check."""
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        trust = Trust.UNVERIFIED
        envelope = normalize_envelope(obj)
        if envelope is not None:
            if self.settings.verify_signatures:
                self.verifier.verify(envelope)
                trust = Trust.VERIFIED
            if envelope.get("Type") in _CONFIRMATIONS:
                self._confirmation(envelope, key)
                return None
        elif isinstance(obj, Mapping) and is_eventbridge_event(obj):
            self._check_eventbridge(obj)
        elif is_bare_message(obj) and not self.settings.raw_delivery:
            raise RejectedError(
                "bare SNS message on a queue not configured for raw delivery "
                "(set [source.sqs] raw_delivery = true if the subscription is raw)"
            )
        event = parse_json(body, sqs_sent_at=sent_at)
        if not event.recognized:
            return event
        return event.replace(trust=trust, dedupe_ids=(*event.dedupe_ids, f"sqs:{key}"))

    def _check_eventbridge(self, obj: Mapping[str, Any]) -> None:
        source = obj.get("source")
        if source not in self.settings.eventbridge_sources:
            raise RejectedError(
                f"EventBridge source {source!r} is not in "
                "[source.sqs] eventbridge_sources"
            )
        accounts = self.settings.eventbridge_accounts
        if accounts and obj.get("account") not in accounts:
            raise RejectedError(
                f"EventBridge account {obj.get('account')!r} is not in "
                "[source.sqs] eventbridge_accounts"
            )

    def _confirmation(self, envelope: Mapping[str, Any], key: str) -> None:
        topic = envelope.get("TopicArn")
        try:
            host = urlsplit(str(envelope.get("SubscribeURL", ""))).hostname
        except ValueError:
            host = None
        reason = (
            f"SNS {envelope.get('Type')} for topic {topic} (SubscribeURL host {host}):"
            " not confirmed automatically; confirm it by hand if this subscription"
            " is wanted"
        )
        log.warning(
            "SNS subscription confirmation not confirmed",
            extra=kv(source=self.name, topic=topic, subscribe_host=host),
        )
        raw = json.dumps(envelope).encode("utf-8")
        digest = hashlib.sha256(raw).hexdigest()
        self._record(
            key, str(envelope.get("MessageId")), digest, L.UNRECOGNIZED, reason, raw
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
        level = logging.INFO if outcome == L.SYNCED else logging.WARNING
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
