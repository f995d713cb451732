"""Dispatch for JSON inputs: SNS, EventBridge, and the SQS wrappers around them.

Export: `parse_json(data, *, sqs_sent_at=None) -> Event`. It accepts

- an SNS envelope (HTTP/SQS body form, or a Lambda record with it under `Sns`);
- a bare Marketplace SNS message (SNS raw message delivery);
- an EventBridge event (also when an SNS Notification carries it as its
  `Message`, as when an EventBridge rule targets an SNS topic);
- a saved Agreement API `DescribeAgreement` response, bare or as
  `{"agreement": ..., "summary": ..., "terms": ...}` (channel `api`,
  `mailsync.parsers.agreement_api`);
- an SQS message whose body holds one of those: the boto3 `ReceiveMessage`
  shape (`Body`, `Attributes.SentTimestamp`) or the Lambda SQS record shape
  (`body`, `attributes.SentTimestamp`), and a Lambda `{"Records": [...]}`
  batch of exactly one record.

`unwrap(data) -> Unwrapped | Event` takes the wrappers off and
`parse_unwrapped(found) -> Event` parses what is inside; the SQS source, the
quarantine retry and `replay` call them apart so that their admission checks
judge exactly the object that is parsed (`mailsync.aws.sqs_policy`).

It never raises for bad content: anything it cannot use is an `unrecognized`
event with a reason. The channel of an input that is not even valid JSON is a
guess (`eventbridge` if the text mentions `detail-type`, else `sns`), because
those are the only two channels that arrive as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailsync.errors import ParseError
from mailsync.event import Channel, Event
from mailsync.parsers.agreement_api import is_agreement_response, parse_agreement
from mailsync.parsers.eventbridge import is_eventbridge_event, parse_eventbridge
from mailsync.parsers.jsonload import TooDeepError, load_json
from mailsync.parsers.sns import is_bare_message, normalize_envelope, parse_sns

__all__ = [
    "Unwrapped",
    "decode",
    "event_in_notification",
    "parse_json",
    "parse_unwrapped",
    "unwrap",
]

# SQS wrappers nest at most once (an SQS body holds an SNS envelope or an
# event); the bound keeps a hostile input from recursing without end.
_MAX_DEPTH = 3


@dataclass(frozen=True)
class Unwrapped:
    """The object inside the SQS / Lambda wrappers of one JSON input.

    `obj` is exactly what `parse_unwrapped` turns into an event, and so
    exactly what the SQS admission checks (`mailsync.aws.sqs_policy`) judge.
    """

    obj: Any  #: an SNS envelope or Lambda SNS record, an event, a bare message...
    sent_at: datetime | None  #: the SQS sent time (given, or the wrapper's)
    wrappers: int = 0  #: how many SQS / Lambda wrappers were taken off


def parse_json(data: bytes | str, *, sqs_sent_at: datetime | None = None) -> Event:
    """The event for one JSON input (see the module docstring for the shapes).

    `sqs_sent_at` is the queue's sent time, used as `occurred_at` of a bare SNS
    message (which has no timestamp); an SQS wrapper's own `SentTimestamp` is
    used when this is not given.
    """
    try:
        found = unwrap(data, sqs_sent_at=sqs_sent_at)
    except TooDeepError as err:
        return Event.unrecognized(str(err), channel=Channel.SNS)
    if isinstance(found, Event):
        return found
    return parse_unwrapped(found)


def decode(data: bytes | str) -> str | Event:
    """The text of a JSON input, or the `unrecognized` event saying why not."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return Event.unrecognized(
            f"JSON input is not UTF-8 ({err.reason} at byte {err.start})",
            channel=_guess_channel(data.decode("latin-1")),
        )


def unwrap(
    data: bytes | str, *, sqs_sent_at: datetime | None = None
) -> Unwrapped | Event:
    """Decode `data` (depth-bounded, `jsonload`) and take off the SQS message
    (`Body` / `body`) and Lambda batch (`Records` of one) wrappers; an
    `unrecognized` event when the input is not usable JSON. JSON nested too
    deeply raises `jsonload.TooDeepError` (hostile, not merely unusable).
    A saved Agreement API response is recognised at the top level only."""
    text = decode(data)
    if isinstance(text, Event):
        return text
    return _unwrap_text(text, sqs_sent_at, depth=0)


def _unwrap_text(
    text: str, sqs_sent_at: datetime | None, *, depth: int
) -> Unwrapped | Event:
    try:
        obj = load_json(text)
    except TooDeepError:
        raise
    except ParseError as err:
        return Event.unrecognized(str(err), channel=_guess_channel(text))
    return _unwrap_obj(obj, sqs_sent_at, depth=depth)


def _unwrap_obj(
    obj: Any, sqs_sent_at: datetime | None, *, depth: int
) -> Unwrapped | Event:
    if (
        not isinstance(obj, Mapping)
        or is_eventbridge_event(obj)
        or (depth == 0 and is_agreement_response(obj))
        or normalize_envelope(obj) is not None
        or is_bare_message(obj)
    ):
        return Unwrapped(obj, sqs_sent_at, depth)
    records = obj.get("Records")
    if isinstance(records, list):
        if len(records) != 1:
            return Event.unrecognized(
                f"a batch of {len(records)} records; save one record per file",
                channel=Channel.SNS,
            )
        if depth >= _MAX_DEPTH:
            return Event.unrecognized(
                "SQS wrappers nested too deeply", channel=Channel.SNS
            )
        return _unwrap_obj(records[0], sqs_sent_at, depth=depth + 1)
    body_key = "Body" if "Body" in obj else "body" if "body" in obj else None
    if body_key is not None:
        if depth >= _MAX_DEPTH:
            return Event.unrecognized(
                "SQS wrappers nested too deeply", channel=Channel.SNS
            )
        sent = sqs_sent_at or _sent_timestamp(obj)
        body = obj[body_key]
        if isinstance(body, str):
            return _unwrap_text(body, sent, depth=depth + 1)
        return _unwrap_obj(body, sent, depth=depth + 1)
    return Unwrapped(obj, sqs_sent_at, depth)


def parse_unwrapped(found: Unwrapped) -> Event:
    """The event for the object `unwrap` found (no further unwrapping)."""
    obj = found.obj
    if not isinstance(obj, Mapping):
        return Event.unrecognized(
            f"JSON input is a {type(obj).__name__}, not an object",
            channel=Channel.SNS,
        )
    if is_eventbridge_event(obj):
        return parse_eventbridge(obj)
    if found.wrappers == 0 and is_agreement_response(obj):
        return parse_agreement(obj)
    envelope = normalize_envelope(obj)
    if envelope is not None:
        inner = event_in_notification(envelope)
        if inner is not None:
            return parse_eventbridge(inner)
    if envelope is not None or is_bare_message(obj):
        return parse_sns(obj, sqs_sent_at=found.sent_at)
    return Event.unrecognized(
        "JSON object is not an SNS message, an EventBridge event, an SQS message"
        " or an Agreement API response",
        channel=Channel.SNS,
    )


def event_in_notification(envelope: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The EventBridge event an SNS Notification carries, if it carries one.

    An EventBridge rule may target an SNS topic that feeds the queue; the SNS
    `Message` is then the event JSON, which is parsed as the event it is.
    """
    if envelope.get("Type") != "Notification":
        return None
    message = envelope.get("Message")
    if isinstance(message, str):
        try:
            message = load_json(message)
        except ParseError:
            return None
    return message if is_eventbridge_event(message) else None


def _sent_timestamp(message: Mapping[str, Any]) -> datetime | None:
    """SQS `SentTimestamp` (epoch milliseconds, as a string) of a wrapper."""
    attributes = message.get("Attributes") or message.get("attributes")
    if not isinstance(attributes, Mapping):
        return None
    value = attributes.get("SentTimestamp")
    try:
        millis = int(str(value))
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _guess_channel(text: str) -> Channel:
    return Channel.EVENTBRIDGE if "detail-type" in text else Channel.SNS
