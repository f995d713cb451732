"""Parsers: raw inputs to normalized events.

Email entry points:

- `parse_email(raw)` turns one RFC 5322 message into an `Event`. It never
  raises for bad input: anything that is not a seller notification, or lacks
  the fields its type must carry, is `Event.unrecognized(reason)`.
- `email_view(raw)` is the parsed message (sender, subject, date, body text,
  forward unwrapping) that the trust check also uses.
- `EMAIL_PARSERS` is the explicit registry. Each parser has `name`, `kind`, a
  cheap `matches(view)` and a pure `parse(view)`; exactly one may match a
  message. Adding a parser = a module under `mailsync/parsers/` plus one line
  here (see README, "Adding a parser").
"""

from __future__ import annotations

import re

from mailsync.errors import AmbiguousMatchError, ParseError
from mailsync.event import Event
from mailsync.parsers import (
    agreement_cancelled,
    agreement_failures,
    agreement_replaced,
    agreement_started,
    disbursement_paused,
    offer_accepted,
    offer_published,
    professional_services,
    resale_authorization,
    security_scan,
)
from mailsync.parsers.base import EmailParser, body_titles, normalize_title
from mailsync.parsers.message import EmailView, email_view

__all__ = [
    "EMAIL_PARSERS",
    "EmailParser",
    "EmailView",
    "email_view",
    "match_email",
    "parse_email",
    "parse_view",
]

EMAIL_PARSERS: tuple[EmailParser, ...] = (
    offer_accepted.PARSER,
    agreement_started.PARSER,
    agreement_cancelled.PARSER,
    agreement_replaced.PARSER,
    agreement_failures.CREATION_FAILED,
    agreement_failures.PAYMENT_FAILED,
    offer_published.PARSER,
    resale_authorization.CREATED,
    resale_authorization.UPDATED,
    resale_authorization.REVOKED,
    resale_authorization.EXPIRED,
    disbursement_paused.PARSER,
    professional_services.PARSER,
    security_scan.PARSER,
)

_AUTO_REPLY = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?re(?:ply|sponse)|auto"
    r"|out of (?:the )?office|abwesenheitsnotiz|r[ée]ponse automatique)\b",
    re.I,
)
_BOUNCE = re.compile(
    # Every phrase starts with one of these letters: the look-ahead lets the
    # search pass over other positions without trying each phrase.
    r"(?=[uUdDrRmMfF])(?:"
    r"undeliver|delivery status notification|returned mail|mail delivery "
    r"(?:failed|failure|subsystem)|delivery (?:has )?failed|failure notice)",
    re.I,
)
_DAEMONS = ("mailer-daemon@", "postmaster@")
# Buyer-side Marketplace mail (the seller account also buys, or a buyer
# forwards one): AWS buyer guide, "Email and chatbot notifications".
_BUYER = re.compile(
    r"(?:^|[:\]]\s*)(?:you|your)\b|renewal|renewed|expir|billing adjustment|refund"
    r"|cancellation request|invoice|\bbill\b|billing statement",
)


def _claimants(title: str, *, normalized: bool = True) -> tuple[EmailParser, ...]:
    """Parsers that claim `title`, a body line normalized by `body_titles`
    or (`normalized=False`) a subject as written."""
    index = _index()
    claims = index.claims if normalized else index.subject_claims
    found = claims.get(title)
    if found is None:
        found = index.claim(title if normalized else normalize_title(title))
        if len(claims) >= _MAX_CLAIMS:
            claims.clear()
        claims[title] = found
    return found


_PUNCT = ".,:;!?()[]{}<>\"'-–—|"
#: titles (and subjects) remembered per registry. Notification subjects
#: repeat from message to message (a fixed title per type, at most a product
#: name added), so a small memo answers nearly every message; title tests
#: are pure, so a remembered answer is the one a test would give.
_MAX_CLAIMS = 2048


class _Index:
    """Last word of each title keyword -> registry positions of its parsers
    (rebuilt if the registry is replaced, e.g. in tests), and the claims
    already worked out."""

    def __init__(self, registry: tuple[EmailParser, ...]) -> None:
        self.registry = registry
        self.by_word: dict[str, set[int]] = {}
        self.always: list[int] = []
        self.claims: dict[str, tuple[EmailParser, ...]] = {}
        self.subject_claims: dict[str, tuple[EmailParser, ...]] = {}
        for position, parser in enumerate(registry):
            words = getattr(parser.subject, "last_words", None)
            if not words:
                self.always.append(position)  # a predicate: always asked
                continue
            for word in words:
                self.by_word.setdefault(word, set()).add(position)

    def claim(self, title: str) -> tuple[EmailParser, ...]:
        """The parsers that claim `title`. Only parsers with a title keyword
        among the subject's words are asked, so a subject meets two or three
        parsers, not all of them."""
        candidates = set(self.always)
        for word in title.split():
            found = self.by_word.get(word.strip(_PUNCT))
            if found:
                candidates.update(found)
        # Registry positions, not parser objects, go in the set: hashing a
        # frozen dataclass hashes all its fields. Sorting keeps registry order.
        registry = self.registry
        return tuple(
            registry[i] for i in sorted(candidates) if registry[i].matches_title(title)
        )


_INDEX: list[_Index] = []


def _index() -> _Index:
    if not _INDEX or _INDEX[0].registry is not EMAIL_PARSERS:
        _INDEX[:] = [_Index(EMAIL_PARSERS)]
    return _INDEX[0]


def match_email(view: EmailView) -> EmailParser | None:
    """The one parser whose type `view` is, or None; AmbiguousMatchError on two."""
    found = _claimants(view.subject, normalized=False)
    if not found:
        # New-sender layouts may use a generic subject and repeat the title
        # at the top of the body.
        for line in body_titles(view):
            found = _claimants(line)
            if found:
                break
    if len(found) > 1:
        names = " and ".join(parser.name for parser in found[:2])
        raise AmbiguousMatchError(f"ambiguous: parsers {names} both match")
    return found[0] if found else None


def parse_email(raw: bytes) -> Event:
    """Parse one RFC 5322 message; never raises for bad input."""
    try:
        view = email_view(raw)
    except Exception as exc:  # mail-parser on hostile bytes; the input is bad
        return Event.unrecognized(f"unreadable message: {type(exc).__name__}")
    return parse_view(view)


def parse_view(view: EmailView) -> Event:
    """The event of one parsed message (`email_view`); never raises."""

    def unrecognized(reason: str) -> Event:
        return Event.unrecognized(
            reason, source_id=view.message_id, occurred_at=view.date
        )

    reason = _not_a_notification(view)
    if reason is not None:
        return unrecognized(reason)
    try:
        parser = match_email(view)
    except AmbiguousMatchError as exc:
        return unrecognized(str(exc))
    if parser is None:
        title = normalize_title(view.subject)
        if _BUYER.search(title):
            return unrecognized(
                f"buyer-side or billing mail, not a seller event: {view.subject!r}"
            )
        return unrecognized(f"no parser matches subject {view.subject!r}")
    try:
        return parser.parse(view)
    except ParseError as exc:
        return unrecognized(str(exc))


def _not_a_notification(view: EmailView) -> str | None:
    """Why `view` is mail about a notification rather than one, or None."""
    sender = view.from_address or ""
    if view.content_type == "multipart/report" or sender.startswith(_DAEMONS):
        return "bounce (delivery status notification)"
    bounce, auto_reply = _subject_kinds(view.outer_subject)
    if not view.forwarded and bounce:
        return "bounce (delivery status notification)"
    if view.auto_submitted == "auto-replied" or auto_reply:
        return f"auto-reply: {view.outer_subject!r}"
    if view.is_reply:
        return f"a reply, not a notification: {view.outer_subject!r}"
    return None


_SUBJECT_KINDS: dict[str, tuple[bool, bool]] = {}


def _subject_kinds(subject: str) -> tuple[bool, bool]:
    """Whether `subject` reads like a bounce, and like an auto-reply
    (remembered like the claims: subjects repeat)."""
    found = _SUBJECT_KINDS.get(subject)
    if found is None:
        found = (
            _BOUNCE.search(subject) is not None,
            _AUTO_REPLY.match(subject) is not None,
        )
        if len(_SUBJECT_KINDS) >= _MAX_CLAIMS:
            _SUBJECT_KINDS.clear()
        _SUBJECT_KINDS[subject] = found
    return found
