"""What the SQS source lets in: the trust decision and the event for one body.

`admit_json(body, settings, verifier)` is the one entrance for a JSON input
that claims to come from the queue (the SQS source, `quarantine retry` and
`replay` all use it). It takes the SQS / Lambda wrappers off first
(`json_input.unwrap`), judges the object found inside, and parses exactly
that object (`json_input.parse_unwrapped`), so a wrapper can never carry an
unchecked envelope or event past the checks:

- an SNS envelope is checked by `SnsVerifier` (signature, certificate, topic)
  unless `verify_signatures = false`; it is then `verified`, else `unverified`;
  a `Timestamp` older than `max_message_age_days` is rejected as stale;
- an SNS `SubscriptionConfirmation` / `UnsubscribeConfirmation` is never
  confirmed: `admit_json` returns a `Confirmation` to record (with the topic
  ARN and the SubscribeURL host, so an operator can confirm it by hand);
- an EventBridge event, bare or as the `Message` of an SNS Notification, is
  admitted only from `eventbridge_sources` and, when set,
  `eventbridge_accounts`;
- a bare raw-delivery message is admitted (`unverified`) only with
  `raw_delivery = true`;
- JSON nested deeper than `jsonload.MAX_DEPTH` is rejected before parsing;
- an object that is an SNS envelope and also has EventBridge keys is rejected
  (the parser would read the unsigned EventBridge keys, the signature covers
  only the envelope's).

A failed check raises `RejectedError` with a one-line reason naming the
setting to change. Anything else (not JSON, not a known shape) comes back as
the parser's `unrecognized` event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from mailsync.config import SqsSettings
from mailsync.errors import RejectedError
from mailsync.event import Event, Trust
from mailsync.parsers.agreement_api import is_agreement_response
from mailsync.parsers.eventbridge import is_eventbridge_event
from mailsync.parsers.json_input import (
    Unwrapped,
    event_in_notification,
    parse_unwrapped,
    unwrap,
)
from mailsync.parsers.jsonload import TooDeepError
from mailsync.parsers.sns import is_bare_message, normalize_envelope, parse_timestamp
from mailsync.security.sns_verify import SnsVerifier

CONFIRMATIONS = ("SubscriptionConfirmation", "UnsubscribeConfirmation")


@dataclass(frozen=True)
class Confirmation:
    """An SNS subscription confirmation, recorded (quarantined) unconfirmed."""

    topic: Any  #: `TopicArn` as the envelope gives it
    host: str | None  #: the host of `SubscribeURL`
    message_id: str  #: the envelope's `MessageId`
    reason: str  #: the ledger reason: what it is and what to do
    raw: bytes  #: the normalized envelope as JSON, kept for the operator

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def admit_json(
    body: bytes | str,
    settings: SqsSettings,
    verifier: SnsVerifier,
    *,
    sqs_sent_at: datetime | None = None,
    now: datetime | None = None,
) -> Event | Confirmation:
    """The checked event in `body` (its `trust` set by the checks), or the
    `Confirmation` it is; raise `RejectedError` for a failed check (module doc).

    `sqs_sent_at` is the queue's sent time (the `occurred_at` of a bare
    message); `now` the time the staleness is judged at (default: now).
    """
    try:
        found = unwrap(body, sqs_sent_at=sqs_sent_at)
    except TooDeepError as err:
        raise RejectedError(f"{err}: not an AWS message") from None
    if isinstance(found, Event):
        return found  # not JSON, a batch of several records: unrecognized
    verdict = admit_object(found, settings, verifier, now=now)
    if isinstance(verdict, Confirmation):
        return verdict
    event = parse_unwrapped(found)
    return event.replace(trust=verdict) if event.recognized else event


def admit_object(
    found: Unwrapped,
    settings: SqsSettings,
    verifier: SnsVerifier,
    *,
    now: datetime | None = None,
) -> Trust | Confirmation:
    """The trust the checks give the unwrapped object `parse_unwrapped` will
    parse, or its `Confirmation`; `RejectedError` for a failed check."""
    obj = found.obj
    trust = Trust.UNVERIFIED
    if isinstance(obj, Mapping) and is_agreement_response(obj):
        # AWS never delivers Agreement API answers through a queue; only the
        # Agreement API source may speak for the "api" channel.
        raise RejectedError("an Agreement API response is not a queue message")
    envelope = normalize_envelope(obj)
    if envelope is not None and isinstance(obj, Mapping) and is_eventbridge_event(obj):
        # The parser reads such an object as the EventBridge event (its
        # unsigned top-level keys), while the signature covers the envelope's
        # keys only: two readings of one object, so neither is admitted.
        raise RejectedError(
            "object is both an SNS envelope and an EventBridge event "
            "(detail-type and source beside the envelope keys): not an AWS message"
        )
    if envelope is not None:
        if settings.verify_signatures:
            verifier.verify(envelope)
            trust = Trust.VERIFIED
        check_age(envelope, settings, now or datetime.now(UTC))
        if envelope.get("Type") in CONFIRMATIONS:
            return confirmation(envelope)
        carried = event_in_notification(envelope)
        if carried is not None:
            check_eventbridge(carried, settings)
    elif isinstance(obj, Mapping) and is_eventbridge_event(obj):
        check_eventbridge(obj, settings)
    elif is_bare_message(obj) and not settings.raw_delivery:
        raise RejectedError(
            "bare SNS message on a queue not configured for raw delivery "
            "(set [source.sqs] raw_delivery = true if the subscription is raw)"
        )
    return trust


def check_age(
    envelope: Mapping[str, Any], settings: SqsSettings, now: datetime
) -> None:
    """Raise `RejectedError` for an SNS envelope whose `Timestamp` is older
    than `[source.sqs] max_message_age_days` (0 = no limit).

    SQS keeps a message 14 days at most, so a much older signed envelope is a
    recording played back, not a delivery.
    """
    days = settings.max_message_age_days
    stamp = parse_timestamp(envelope.get("Timestamp"))
    if days <= 0 or stamp is None:
        return
    if now - stamp > timedelta(days=days):
        raise RejectedError(
            f"SNS message of {stamp:%Y-%m-%dT%H:%M:%SZ} is older than "
            f"[source.sqs] max_message_age_days = {days}: stale, not synced"
        )


def check_eventbridge(obj: Mapping[str, Any], settings: SqsSettings) -> None:
    """Raise `RejectedError` unless the event's `source` (and, when the list is
    set, its `account`) is allowed by `[source.sqs]`."""
    source = obj.get("source")
    if source not in settings.eventbridge_sources:
        raise RejectedError(
            f"EventBridge source {source!r} is not in [source.sqs] eventbridge_sources"
        )
    accounts = settings.eventbridge_accounts
    if accounts and obj.get("account") not in accounts:
        raise RejectedError(
            f"EventBridge account {obj.get('account')!r} is not in "
            "[source.sqs] eventbridge_accounts"
        )


def confirmation(envelope: Mapping[str, Any]) -> Confirmation:
    """The record of an SNS (un)subscription confirmation envelope."""
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
    return Confirmation(
        topic=topic,
        host=host,
        message_id=str(envelope.get("MessageId")),
        reason=reason,
        raw=json.dumps(envelope).encode("utf-8"),
    )


class SavedInputChecker:
    """The live SQS checks for saved JSON inputs (`mailsync replay`).

    A saved SNS envelope or EventBridge event gets exactly the admission a
    delivery on the queue gets (`admit_json` with `[source.sqs]`, or its
    defaults when the table is absent: signatures verified, the Marketplace
    topics, no raw delivery, the default EventBridge sources), and its
    certificate comes from `[security] sns_certificate_dir` or a download.
    """

    def __init__(self, settings: SqsSettings | None, certificate_dir: str) -> None:
        self.settings = settings or SqsSettings(queue_url="")
        self.verifier = SnsVerifier(
            topic_arns=self.settings.topic_arns,
            certificate_dir=certificate_dir or None,
        )

    def check(self, raw: bytes) -> Event:
        """The admitted event of one saved JSON input; `RejectedError` for a
        failed check, `TransientError` when a certificate cannot be had now."""
        event = admit_json(raw, self.settings, self.verifier)
        if isinstance(event, Confirmation):
            return Event.unrecognized(event.reason)
        return event
