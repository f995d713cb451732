"""Parsing and trust-checking inputs for `mailsync.pipeline`.

- ``kind="email"``: `mailsync.security.email_gate.evaluate_email` in a worker
  process with a per-message time cap (`[security] parse_timeout_seconds`,
  see `mailsync.security.limits`), one message (`parse_one`) or a whole FETCH
  batch in one worker round trip (`parse_many`). The worker reads each
  message once and decides its trust on that same reading (DKIM, sender
  policy, forwarded mail, recipient binding); a `TransientError` (DNS
  unavailable) comes back as such.
- ``kind="json"``: `mailsync.parsers.json_input.parse_json` (SNS /
  EventBridge bodies), in process.
- `evaluate`: the size limit, the email parse and trust check and the
  receive-time clamp, without the ledger (`quarantine retry`, `replay`).

The parsers and the trust check are imported when first used, so that
importing the pipeline stays cheap for commands that never parse.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime

from mailsync.config import Settings
from mailsync.errors import TransientError
from mailsync.event import Event
from mailsync.pipeline.inputs import InputKind


def email_fn(settings: Settings) -> Callable[[bytes], Event]:
    """The function the parse worker runs for one email (picklable)."""
    from mailsync.security.email_gate import evaluate_email

    return functools.partial(evaluate_email, settings=settings.security)


def parse_one(settings: Settings, raw: bytes, kind: InputKind) -> Event:
    """Parse (and for email trust-check) one input; never raises for a
    malformed one (an unrecognized event instead). `TransientError` when
    DNS is unavailable."""
    if kind == "json":
        from mailsync.parsers import json_input  # lands with the SNS parsers

        parse_json = getattr(json_input, "parse_json")  # noqa: B009
        event: Event = parse_json(raw)
        return event
    from mailsync.security.limits import parse_with_timeout

    # A worker process with a time cap: a runaway parse cannot stall a source.
    seconds = settings.security.parse_timeout_seconds
    return parse_with_timeout(email_fn(settings), raw, seconds)


def parse_many(
    settings: Settings,
    raws: Sequence[bytes],
    on_event: Callable[[int, Event | TransientError], None],
    meanwhile: Callable[[], None] | None,
) -> None:
    """Parse and trust-check emails in one worker round trip; `on_event(i,
    event)` is called in input order as the events stream back."""
    from mailsync.security.limits import parse_many_with_timeout

    # One worker round trip per batch, each message still capped alone.
    seconds = settings.security.parse_timeout_seconds
    parse_many_with_timeout(email_fn(settings), raws, seconds, on_event, meanwhile)


def received(event: Event, received_at: datetime | None) -> Event:
    """`event` with its date clamped to the receive time (email only)."""
    from mailsync.security.email_gate import clamp_occurred

    return clamp_occurred(event, received_at)


def evaluate(
    settings: Settings, raw: bytes, received_at: datetime | None = None
) -> Event:
    """Check the size, parse and trust-check one email as the pipeline does,
    without submitting or recording it. `TransientError` when DNS is
    unavailable."""
    from mailsync.security.limits import check_size

    too_big = check_size(raw, settings.security)
    if too_big is not None:
        return Event.unrecognized(too_big)
    return received(parse_one(settings, raw, "email"), received_at)
