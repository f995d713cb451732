"""Parsing and trust-checking inputs for `mailsync.pipeline`.

- ``kind="email"``: `mailsync.parsers.parse_email` in a worker process with a
  per-message time cap (`[security] parse_timeout_seconds`, see
  `mailsync.security.limits`), one message (`parse_one`) or a whole FETCH
  batch in one worker round trip (`parse_many`).
- ``kind="json"``: `mailsync.parsers.json_input.parse_json` (SNS /
  EventBridge bodies), in process.
- `trust_check`: a recognized email event through
  `mailsync.security.email_trust.check_email` (DKIM, sender policy,
  forwarded mail); it may raise `TransientError` (DNS unavailable).

The parsers and the trust check are imported when first used, so that
importing the pipeline stays cheap for commands that never parse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mailsync.config import Settings
from mailsync.event import Event
from mailsync.pipeline.inputs import InputKind


def parse_one(settings: Settings, raw: bytes, kind: InputKind) -> Event:
    """Parse one input; never raises for a malformed one (the parsers return
    an unrecognized event instead)."""
    if kind == "json":
        from mailsync.parsers import json_input  # lands with the SNS parsers

        parse_json = getattr(json_input, "parse_json")  # noqa: B009
        event: Event = parse_json(raw)
        return event
    from mailsync.parsers import parse_email
    from mailsync.security.limits import parse_with_timeout

    # A worker process with a time cap: a runaway parse cannot stall a source.
    seconds = settings.security.parse_timeout_seconds
    return parse_with_timeout(parse_email, raw, seconds)


def parse_many(
    settings: Settings,
    raws: Sequence[bytes],
    on_event: Callable[[int, Event], None],
    meanwhile: Callable[[], None] | None,
) -> None:
    """Parse emails in one worker round trip; `on_event(i, event)` is called
    in input order as the events stream back."""
    from mailsync.parsers import parse_email
    from mailsync.security.limits import parse_many_with_timeout

    # One worker round trip per batch, each message still capped alone.
    seconds = settings.security.parse_timeout_seconds
    parse_many_with_timeout(parse_email, raws, seconds, on_event, meanwhile)


def trust_check(settings: Settings, raw: bytes, event: Event) -> Event:
    """`event` with its trust set by the email authenticity checks."""
    from mailsync.security.email_trust import check_email

    return check_email(raw, event, settings.security)


def evaluate(settings: Settings, raw: bytes) -> Event:
    """Parse and trust-check one email as the pipeline does, without
    submitting or recording it."""
    event = parse_one(settings, raw, "email")
    if event.recognized:
        event = trust_check(settings, raw, event)
    return event
