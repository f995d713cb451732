"""The single entrance of every email: one reading, one parse, one verdict.

`evaluate_email(raw, settings)` is what the pipeline's parse worker runs for
each message (Maildir, IMAP, `quarantine retry`, `replay`): it reads the
message once (`reading.read_email`: canonical line ends, header structure,
repeated singletons), builds the event from that reading's `EmailView`, and
decides its trust (`email_trust.decide`: DKIM on the same canonical bytes,
sender policy, forwarded mail, recipient binding). Nothing is parsed twice,
and the DKIM verdict is about exactly the bytes the fields were read from.

DNS look-ups happen here, in the worker, bounded by the parse time cap (a
key that cannot be fetched in time is a `TransientError`: the message stays
pending, it is not quarantined). Answers are cached by the worker process.

`clamp_occurred(event, received_at)` runs in the caller, which knows when
the source received the message (IMAP INTERNALDATE, the file's mtime, or
now): an email's `occurred_at` may not be later than that plus `SKEW`; a
later one is clamped to the receive time (a wrong clock on the sending side
must not lose a genuine event, and a date from the future must not make every
later genuine event of the agreement look older).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from mailsync.config import SecuritySettings
from mailsync.event import Channel, Event
from mailsync.parsers import parse_view
from mailsync.security.dkim_check import DnsFunc
from mailsync.security.email_trust import decide
from mailsync.security.reading import Reading, read_email

#: how far an email's own date may lie after its receive time
SKEW = timedelta(minutes=10)


def read_and_parse(raw: bytes) -> Event:
    """The event of one email on its one reading, without the DKIM and
    sender checks (`mailsync parse`): a message the reading refuses (a bare
    CR in the header block, a repeated From...) is rejected all the same."""
    reading, event = _parsed(raw)
    if event.recognized and reading.problem is not None:
        return event.rejected(reading.problem)
    return event


def _parsed(raw: bytes) -> tuple[Reading, Event]:
    reading = read_email(raw)
    if reading.view is None:
        reason = reading.unreadable or "unreadable message"
        return reading, Event.unrecognized(reason, channel=Channel.EMAIL)
    return reading, parse_view(reading.view)


def evaluate_email(
    raw: bytes, settings: SecuritySettings, dnsfunc: DnsFunc | None = None
) -> Event:
    """The event of one email with its trust decided; never raises for bad
    input. Raises `TransientError` when DNS is unavailable (retry later)."""
    started = time.monotonic()
    reading, event = _parsed(raw)
    if not event.recognized:
        return event
    cap = settings.parse_timeout_seconds
    # Leave part of the cap (a second at most) for the answer to the caller.
    deadline = started + cap - min(1.0, cap / 5) if cap > 0 else None
    return decide(reading, event, settings, dnsfunc=dnsfunc, deadline=deadline)


def clamp_occurred(event: Event, received_at: datetime | None = None) -> Event:
    """`event` with `occurred_at` no later than `received_at` (default now)
    plus `SKEW` (see the module docstring)."""
    moment = event.occurred_at
    if moment is None or event.channel is not Channel.EMAIL:
        return event
    received = received_at or datetime.now(UTC)
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    if moment > received + SKEW:
        return event.replace(
            occurred_at=received.astimezone(UTC).replace(microsecond=0)
        )
    return event
