"""The email parser type shared by every email kind, and event assembly.

An `EmailParser` is declarative: the titles it answers to, the kind it emits,
which fields must be present for the email to count as that kind, the role of
the recipient when the email names neither party, and the agreement status the
kind implies (contract section 2). `matches()` only looks at the subject (or,
when the subject is generic, a title line at the top of the body), so it is
cheap; `parse()` extracts and normalizes the labelled fields.

Recipient role (seller guide, "Email notifications", CPPO rows): the
channel-partner copy names the ISV ("ISV name", "ISV AWS account ID"), the ISV
copy names the channel partner; a direct-deal email names neither and goes to
the ISV. Kinds whose recipient the documentation leaves open use `None`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from mailsync.errors import ParseError
from mailsync.event import Channel, Event, Kind, Money, Role, Trust
from mailsync.parsers import values
from mailsync.parsers.fields import extract
from mailsync.parsers.message import EmailView

T = TypeVar("T")
_SEPARATOR = r"(?:^|.*[:\]\-–—|>]\s*)"
_ARTICLE = re.compile(r"^(?:a|an|the)\s+")
# A product or account name may follow the title after a separator or "for".
_SUFFIX = r"(?:\s*[-–—:|(\[].*|\s+(?:for|from|on|in)\s.*)?"


def normalize_title(text: str) -> str:
    """Lower case, single spaces, no trailing period: the form titles match in."""
    return " ".join(text.lower().split()).rstrip(" .!")


class TitleMatcher:
    """Subjects that end with one of `titles`, after an optional prefix.

    The prefix must end with a separator (`Fwd:`, `[AWS Marketplace]`,
    `AWS Notification -`), so "You accepted an AWS Marketplace offer" never
    matches "Customer accepted an AWS Marketplace offer". A leading "A", "An"
    or "The" is optional on both sides. A product name may
    follow after a separator or "for". Each title's last two words must occur
    in the subject, a substring test that skips the regex for most subjects.
    """

    __slots__ = ("keywords", "last_words", "pattern")

    def __init__(self, *titles: str) -> None:
        # A leading article is optional: "An AWS Marketplace agreement has
        # started" and "AWS Marketplace agreement has started" are one title.
        normalized = [_ARTICLE.sub("", normalize_title(t)) for t in titles]
        alternation = "|".join(re.escape(t) for t in normalized)
        self.pattern = re.compile(
            _SEPARATOR + r"(?:(?:a|an|the)\s+)?(?:" + alternation + ")" + _SUFFIX + "$"
        )
        keywords = sorted({" ".join(t.split()[-2:]) for t in normalized})
        #: the last word of each title: a registry index key
        self.last_words = frozenset(t.split()[-1] for t in normalized)
        self.keywords = re.compile("|".join(re.escape(k) for k in keywords))

    def __call__(self, title: str) -> bool:
        if self.keywords.search(title) is None:
            return False
        return self.pattern.match(title) is not None


def title_pattern(*titles: str) -> TitleMatcher:
    """A `TitleMatcher` for `titles` (see its docstring for the rules)."""
    return TitleMatcher(*titles)


#: a predicate on the normalized subject (lower case, single spaces)
SubjectTest = Callable[[str], bool]


@dataclass(frozen=True)
class EmailParser:
    """One email type: how to recognize it and which event it yields."""

    name: str
    kind: Kind
    subject: SubjectTest
    #: at least one of these event fields must be found, else ParseError
    required: tuple[str, ...]
    #: recipient when the email names neither the ISV nor the channel partner
    default_role: Role | None = None
    agreement_status: str | None = None

    def matches_title(self, title: str) -> bool:
        """Does the normalized subject (or body title line) name this type?"""
        return self.subject(title)

    def matches(self, msg: EmailView) -> bool:
        """Cheap: does the subject (or a title line atop the body) name this type?

        The registry asks about the subject first (`matches_title`) and only
        falls back to body title lines when no parser claims the subject.
        """
        title = normalize_title(msg.subject)
        if self.matches_title(title):
            return True
        return any(self.matches_title(line) for line in body_titles(msg))

    def parse(self, msg: EmailView) -> Event:
        """The event for `msg`; ParseError when no required field is present."""
        found = _extract(msg.text)
        event = self._build(msg, found)
        if not self._complete(event) and msg.alt_html:
            # A text/plain part that only says "view this in HTML": try HTML.
            event = self._build(msg, _extract(msg.alt_text))
        if not self._complete(event):
            wanted = " or ".join(f.replace("_", " ") for f in self.required)
            raise ParseError(f"{self.name}: the email has no valid {wanted}")
        return event

    def _complete(self, event: Event) -> bool:
        for name in self.required:
            if _present(event, name):
                return True
        return False

    def _build(self, msg: EmailView, found: dict[str, list[str]]) -> Event:
        got: dict[str, Any] = {}
        for key, raws in found.items():
            if (convert := _CONVERT.get(key)) is not None:
                # One value per label is the rule; `_one` of a single value
                # is that value converted.
                value = convert(raws[0]) if len(raws) == 1 else _one(raws, convert)
                if value is values.NO_END:  # only `parse_date` returns it
                    value = None  # JAN-1-9999: no end date, serialized as null
                got[key] = value
        if not _MONEY.isdisjoint(found):
            currency = _one(found.get("currency", ()), values.currency_code)

            def money(raw: str) -> Money | None:
                return values.parse_money(raw, currency)

            for key in _MONEY.intersection(found):
                got[key] = _one(found[key], money)
        listed = found.get("customer_accounts", [])
        if len(listed) == 1:
            accounts = values.account_ids(listed[0])  # in order, without repeats
        else:
            accounts = []
            for raw in listed:
                accounts.extend(a for a in values.account_ids(raw) if a not in accounts)
        opportunity = got.get("opportunity_id")
        if got.get("resale_authorization_id") is None and opportunity is not None:
            got["resale_authorization_id"] = values.resale_authorization_id(opportunity)
        if self.kind is Kind.AGREEMENT_REPLACED:
            # "New agreement ID" / "New purchase amount" name the new agreement;
            # a plain "Agreement ID" beside a previous one may be the old one.
            old = "previous_agreement_id" in found
            got["agreement_id"] = got.get("new_agreement_id") or (
                None if old else got.get("agreement_id")
            )
            got["purchase_amount"] = got.get("new_purchase_amount") or got.get(
                "purchase_amount"
            )
        if got.get("isv_name") or got.get("isv_account_id"):
            role: Role | None = Role.CHANNEL_PARTNER
        elif got.get("channel_partner_name") or got.get("channel_partner_account_id"):
            role = Role.ISV
        else:
            role = self.default_role
        duration = got.get("duration")
        for key in _NOT_EVENT_KEYS.intersection(got):
            del got[key]
        return Event(
            kind=self.kind,
            channel=Channel.EMAIL,
            source_id=msg.message_id,
            occurred_at=msg.occurred_at,
            recipient_role=role,
            customer_account_id=accounts[0] if len(accounts) == 1 else None,
            customer_account_ids=tuple(accounts),
            agreement_status=self.agreement_status,
            selling_authorization_duration=duration,
            trust=Trust.UNVERIFIED,
            dedupe_ids=(msg.message_id,) if msg.message_id else (),
            **got,
        )


#: longer raw values of IDs, dates, amounts and accounts are no such value
#: (the longest genuine one is an account list of a few hundred characters);
#: dropping them keeps every value pattern's work bounded by this length
_MAX_VALUE = 4096
#: free-text keys, clamped where they reach the CRM rather than dropped here
_TEXT_KEYS = frozenset(
    {"customer_name", "product_name", "offer_name", "isv_name",
     "channel_partner_name", "duration"}
)  # fmt: skip


def _extract(text: str) -> dict[str, list[str]]:
    """`extract(text)` without over-long values of keys that are not free
    text (a text shorter than the limit cannot hold one)."""
    found = extract(text)
    if len(text) <= _MAX_VALUE:
        return found
    return {
        key: [v for v in raws if key in _TEXT_KEYS or len(v) <= _MAX_VALUE]
        for key, raws in found.items()
    }


def _one(raws: Iterable[str], convert: Callable[[str], T | None]) -> T | None:
    """The one distinct valid value among `raws`, else None.

    Two different values under one label (a repeated block that disagrees)
    are not "clearly there": the field stays unknown.
    """
    result: T | None = None
    for raw in raws:
        value = convert(raw)
        if value is None or value == result:
            continue
        if result is not None:
            return None
        result = value
    return result


_CONVERT: dict[str, Callable[[str], Any]] = {
    "customer_name": values.clean_text,
    "product_id": values.product_id,
    "product_name": values.clean_text,
    "offer_id": values.offer_id,
    "offer_name": values.clean_text,
    "agreement_id": values.agreement_id,
    "new_agreement_id": values.agreement_id,
    "previous_agreement_id": values.agreement_id,
    "acceptance_date": values.parse_date,
    "start_date": values.parse_date,
    "end_date": values.parse_date,
    "offer_published_date": values.parse_date,
    "offer_expiration_date": values.parse_date,
    "isv_name": values.clean_text,
    "isv_account_id": values.account_id,
    "channel_partner_name": values.clean_text,
    "channel_partner_account_id": values.account_id,
    "opportunity_id": values.opaque_id,
    "resale_authorization_id": values.resale_authorization_id,
    "duration": values.clean_text,
    "resource_arn": values.resource_arn,
}
_MONEY = frozenset(
    {"purchase_amount", "new_purchase_amount", "wholesale_price", "margin"}
)
#: extracted keys that are Event fields of the same name
_EVENT_KEYS = frozenset(
    {
        "customer_name", "product_id", "product_name", "offer_id", "offer_name",
        "agreement_id", "previous_agreement_id", "acceptance_date", "start_date",
        "end_date", "offer_published_date", "offer_expiration_date",
        "purchase_amount", "wholesale_price", "margin", "isv_name",
        "isv_account_id", "channel_partner_name", "channel_partner_account_id",
        "opportunity_id", "resale_authorization_id", "resource_arn",
    }
)  # fmt: skip


#: converted keys that are not Event fields of the same name
_NOT_EVENT_KEYS = (frozenset(_CONVERT) | _MONEY) - _EVENT_KEYS


def _present(event: Event, name: str) -> bool:
    value = getattr(event, name)
    return value is not None and value != ()


_TITLE_LINES = 10


def body_titles(msg: EmailView) -> list[str]:
    """The first few non-empty body lines, normalized: the new sender layout
    (AWS User Notifications) repeats the title at the top of the body."""
    out: list[str] = []
    text = msg.text
    # Only the top of the body is read: split a prefix that holds the
    # first lines, not the whole text (`splitlines` of the whole would give
    # the same first lines).
    size = 2048
    while True:
        head = text[:size]
        lines = head.splitlines()
        if len(head) < len(text) and lines:
            lines.pop()  # may be cut short; read again with a longer prefix
        out = []
        for line in lines:
            line = line.strip()
            if line:
                out.append(normalize_title(line))
                if len(out) >= _TITLE_LINES:
                    return out
        if len(head) >= len(text):
            return out
        size *= 4
