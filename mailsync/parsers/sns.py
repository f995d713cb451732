"""Amazon SNS notifications from AWS Marketplace (SaaS, AMI and container topics).

Exports (reused by the SQS source and the SNS signature verifier):

- `ENVELOPE_FIELDS`: the envelope keys, spelled as the HTTP/SQS form spells them.
- `normalize_envelope(obj) -> dict | None`: the SNS envelope found in `obj` (the
  HTTP/SQS body form, or a Lambda record with the envelope under `Sns`), with the
  Lambda spellings `SigningCertUrl` / `UnsubscribeUrl` renamed to
  `SigningCertURL` / `UnsubscribeURL`; `None` when `obj` is not an envelope. The
  values are returned exactly as decoded from JSON (`Message` stays the signed
  string), which is what signature verification needs.
- `unwrap_envelope(obj) -> (envelope | None, message)`: the normalized envelope
  (or `None` for a bare, raw-delivery message) and the Marketplace message as a
  dict. `Message` may be a JSON string (compact or pretty) or, for internal
  replays, an object. Raises `ParseError` when there is no Marketplace message.
- `is_bare_message(obj)`: `obj` looks like a raw-delivery Marketplace message.
- `parse_sns(obj, *, sqs_sent_at=None) -> Event`: the normalized event; never
  raises for bad content (an unusable input is `unrecognized` with a reason).
- `parse_timestamp(value) -> datetime | None`: ISO 8601 to aware UTC, or `None`.

Message keys and semantics: AWS Marketplace seller guide, "Amazon SNS
notifications for SaaS products" (saas-notification.html) and the AMI/container
pages; envelope: SNS developer guide, "Amazon SNS message and JSON formats".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mailsync.errors import ParseError
from mailsync.event import Channel, Event, Kind, Trust
from mailsync.parsers.jsonload import TooDeepError, load_json

__all__ = [
    "ACTION_KINDS",
    "ENVELOPE_FIELDS",
    "is_bare_message",
    "normalize_envelope",
    "parse_sns",
    "parse_timestamp",
    "unwrap_envelope",
]

#: Envelope keys in the HTTP/SQS spelling (SNS "message and JSON formats" page).
ENVELOPE_FIELDS = (
    "Type",
    "MessageId",
    "Token",
    "TopicArn",
    "Subject",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
    "SubscribeURL",
    "UnsubscribeURL",
    "MessageAttributes",
)

# Lambda records spell these two keys differently (reference 2.4, aws-sdk-java-v2
# issue #1302); everything downstream sees the HTTP spelling only.
_RENAMES = {"SigningCertUrl": "SigningCertURL", "UnsubscribeUrl": "UnsubscribeURL"}

#: `action` values to kinds (subscription topic and entitlement topic).
ACTION_KINDS: Mapping[str, Kind] = {
    "subscribe-success": Kind.SUBSCRIPTION_SUCCEEDED,
    "subscribe-fail": Kind.SUBSCRIPTION_FAILED,
    "unsubscribe-pending": Kind.SUBSCRIPTION_UNSUBSCRIBE_PENDING,
    "unsubscribe-success": Kind.SUBSCRIPTION_UNSUBSCRIBED,
    "entitlement-updated": Kind.ENTITLEMENT_UPDATED,
}

_CONFIRMATIONS = ("SubscriptionConfirmation", "UnsubscribeConfirmation")


def parse_timestamp(value: object) -> datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime; `None` if unusable.

    A value without an offset is taken as UTC (AWS always writes `Z`).
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00
        return None


def normalize_envelope(obj: object) -> dict[str, Any] | None:
    """The SNS envelope in `obj` with normalized key casing, or `None`.

    An envelope is an object with string `Type` and `MessageId` and a `Message`;
    a Lambda record (`{"EventSource": "aws:sns", "Sns": {...}}`) is unwrapped.
    """
    if not isinstance(obj, Mapping):
        return None
    inner = obj.get("Sns")
    if isinstance(inner, Mapping):
        obj = inner
    if not (
        isinstance(obj.get("Type"), str)
        and isinstance(obj.get("MessageId"), str)
        and "Message" in obj
    ):
        return None
    return {_RENAMES.get(str(key), str(key)): value for key, value in obj.items()}


def is_bare_message(obj: object) -> bool:
    """True when `obj` looks like a raw-delivery Marketplace message."""
    return (
        isinstance(obj, Mapping)
        and "action" in obj
        and ("customer-identifier" in obj or "product-code" in obj)
    )


def unwrap_envelope(obj: object) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Split `obj` into (normalized envelope or `None`, Marketplace message).

    Raises `ParseError` when `obj` is neither an envelope holding a JSON object
    nor a bare message (a subscription confirmation raises too: its `Message`
    is prose).
    """
    envelope = normalize_envelope(obj)
    if envelope is None:
        if is_bare_message(obj):
            assert isinstance(obj, Mapping)
            return None, dict(obj)
        raise ParseError("not an SNS envelope or a Marketplace SNS message")
    message = envelope.get("Message")
    if isinstance(message, str):
        try:
            message = load_json(message)
        except TooDeepError as err:
            raise ParseError(f"SNS Message is not JSON ({err})") from None
        except ParseError as err:  # the decoder's own words, as before
            detail = str(err).removeprefix("not valid JSON ")
            raise ParseError(f"SNS Message is not JSON {detail}") from None
    if not isinstance(message, Mapping):
        raise ParseError("SNS Message does not hold a JSON object")
    return envelope, dict(message)


def parse_sns(obj: object, *, sqs_sent_at: datetime | None = None) -> Event:
    """The event for an SNS envelope or a bare Marketplace message.

    `sqs_sent_at` (the queue's sent time) is the `occurred_at` of a bare message,
    which carries no timestamp of its own; an envelope's `Timestamp` wins.
    """
    if sqs_sent_at is not None and sqs_sent_at.tzinfo is None:
        sqs_sent_at = sqs_sent_at.replace(tzinfo=UTC)  # SQS times are UTC
    envelope = normalize_envelope(obj)
    source_id = _text(envelope.get("MessageId")) if envelope else None
    occurred_at = (
        parse_timestamp(envelope.get("Timestamp")) if envelope else sqs_sent_at
    )
    if envelope is not None:
        kind = envelope.get("Type")
        if kind in _CONFIRMATIONS:
            # Visiting SubscribeURL would subscribe the endpoint on the word of
            # an unverified message; subscriptions are made by the queue owner.
            topic = _text(envelope.get("TopicArn"))
            return Event.unrecognized(
                f"SNS {kind}{f' for topic {topic}' if topic else ''}: "
                "a subscription confirmation, which mailsync never auto-confirms",
                channel=Channel.SNS,
                source_id=source_id,
                occurred_at=occurred_at,
            )
        if kind != "Notification":
            return Event.unrecognized(
                f"SNS envelope of unknown Type {kind!r}",
                channel=Channel.SNS,
                source_id=source_id,
                occurred_at=occurred_at,
            )
    try:
        _, message = unwrap_envelope(obj)
    except ParseError as err:
        return Event.unrecognized(
            str(err), channel=Channel.SNS, source_id=source_id, occurred_at=occurred_at
        )
    return _from_message(message, source_id=source_id, occurred_at=occurred_at)


def _from_message(
    message: Mapping[str, Any], *, source_id: str | None, occurred_at: datetime | None
) -> Event:
    action = message.get("action")
    kind = ACTION_KINDS.get(action.strip()) if isinstance(action, str) else None
    if kind is None:
        return Event.unrecognized(
            f"SNS message with unknown action {action!r}",
            channel=Channel.SNS,
            source_id=source_id,
            occurred_at=occurred_at,
        )
    return Event(
        kind=kind,
        channel=Channel.SNS,
        source_id=source_id,
        occurred_at=occurred_at,
        customer_identifier=_text(message.get("customer-identifier")),
        product_code=_text(message.get("product-code")),
        # offer-identifier is sent only with subscribe-success / subscribe-fail.
        offer_id=_text(message.get("offer-identifier")),
        free_trial=_flag(message.get("isFreeTrialTermPresent")),
        trust=Trust.UNVERIFIED,
        dedupe_ids=(source_id,) if source_id else (),
    )


def _text(value: object) -> str | None:
    """A stripped non-empty string, else `None` (AWS's own examples pad IDs)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _flag(value: object) -> bool | None:
    """`isFreeTrialTermPresent`: documented as a string, seen as a boolean too."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    return None
