"""What the SQS source lets in: the trust decision for one message body.

`admit(body, settings, verifier)` decides, before any parsing into an event:

- an SNS envelope is checked by `SnsVerifier` (signature, certificate, topic)
  unless `verify_signatures = false`; it is then `verified`, else `unverified`;
- an SNS `SubscriptionConfirmation` / `UnsubscribeConfirmation` is never
  confirmed: `admit` returns a `Confirmation` to record (with the topic ARN and
  the SubscribeURL host, so an operator can confirm it by hand);
- an EventBridge event is admitted (`unverified`) only from
  `eventbridge_sources` and, when set, `eventbridge_accounts`;
- a bare raw-delivery message is admitted (`unverified`) only with
  `raw_delivery = true`.

A failed check raises `RejectedError` with a one-line reason naming the
setting to change. Anything else (not JSON, not a known shape) is admitted
`unverified` and left to the parser to call unrecognized.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mailsync.config import SqsSettings
from mailsync.errors import RejectedError
from mailsync.event import Trust
from mailsync.parsers.eventbridge import is_eventbridge_event
from mailsync.parsers.sns import is_bare_message, normalize_envelope
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


def admit(
    body: str, settings: SqsSettings, verifier: SnsVerifier
) -> Trust | Confirmation:
    """The trust to give the event in `body`, or the `Confirmation` it is;
    raise `RejectedError` for a failed check (see module doc)."""
    try:
        obj = json.loads(body)
    except ValueError:
        obj = None
    trust = Trust.UNVERIFIED
    envelope = normalize_envelope(obj)
    if envelope is not None:
        if settings.verify_signatures:
            verifier.verify(envelope)
            trust = Trust.VERIFIED
        if envelope.get("Type") in CONFIRMATIONS:
            return confirmation(envelope)
    elif isinstance(obj, Mapping) and is_eventbridge_event(obj):
        check_eventbridge(obj, settings)
    elif is_bare_message(obj) and not settings.raw_delivery:
        raise RejectedError(
            "bare SNS message on a queue not configured for raw delivery "
            "(set [source.sqs] raw_delivery = true if the subscription is raw)"
        )
    return trust


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
