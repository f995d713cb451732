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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from mailsync.errors import ParseError
from mailsync.event import Channel, Event, Kind, Money, Role, Trust
from mailsync.parsers import values
from mailsync.parsers.fields import extract
from mailsync.parsers.message import EmailView

T = TypeVar("T")
_SEPARATOR = r"(?:^|.*[:\]\-–—|>]\s*)"
# A product or account name may follow the title after a separator or "for".
_SUFFIX = r"(?:\s*[-–—:|(\[].*|\s+(?:for|from|on|in)\s.*)?"


def normalize_title(text: str) -> str:
    """Lower case, single spaces, no trailing period: the form titles match in."""
    return " ".join(text.lower().split()).rstrip(" .!")


def title_pattern(*titles: str) -> re.Pattern[str]:
    """Subjects that end with one of `titles`, after an optional prefix.

    The prefix must end with a separator (`Fwd:`, `[AWS Marketplace]`,
    `AWS Notification -`), so "You accepted an AWS Marketplace offer" never
    matches "Customer accepted an AWS Marketplace offer".
    """
    alternation = "|".join(re.escape(normalize_title(t)) for t in titles)
    return re.compile(_SEPARATOR + r"(?:" + alternation + r")" + _SUFFIX + "$")


#: a predicate on the normalized subject, for kinds without a fixed title
SubjectTest = Callable[[str], bool]


@dataclass(frozen=True)
class EmailParser:
    """One email type: how to recognize it and which event it yields."""

    name: str
    kind: Kind
    subject: re.Pattern[str] | SubjectTest
    #: at least one of these event fields must be found, else ParseError
    required: tuple[str, ...]
    #: recipient when the email names neither the ISV nor the channel partner
    default_role: Role | None = None
    agreement_status: str | None = None

    def matches_title(self, title: str) -> bool:
        if isinstance(self.subject, re.Pattern):
            return self.subject.match(title) is not None
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
        found = extract(msg.text)
        event = self._build(msg, found)
        if not self._complete(event) and msg.alt_html:
            # A text/plain part that only says "view this in HTML": try HTML.
            event = self._build(msg, extract(msg.alt_text))
        if not self._complete(event):
            wanted = " or ".join(f.replace("_", " ") for f in self.required)
            raise ParseError(f"{self.name}: the email has no valid {wanted}")
        return event

    def _complete(self, event: Event) -> bool:
        return any(_present(event, name) for name in self.required)

    def _build(self, msg: EmailView, found: dict[str, list[str]]) -> Event:
        fields = Fields(found)
        accounts = fields.accounts("customer_accounts")
        opportunity = fields.one("opportunity_id", values.opaque_id)
        resale = fields.one("resale_authorization_id", values.resale_authorization_id)
        if resale is None and opportunity is not None:
            resale = values.resale_authorization_id(opportunity)
        currency = fields.one("currency", values.currency_code)
        agreement = fields.one("agreement_id", values.agreement_id)
        purchase = fields.money("purchase_amount", currency)
        if self.kind is Kind.AGREEMENT_REPLACED:
            # "New agreement ID" / "New purchase amount" name the new agreement.
            agreement = fields.one("new_agreement_id", values.agreement_id) or (
                agreement if not fields.has("previous_agreement_id") else None
            )
            purchase = fields.money("new_purchase_amount", currency) or purchase
        isv_name = fields.one("isv_name", values.clean_text)
        isv_account = fields.one("isv_account_id", values.account_id)
        cp_name = fields.one("channel_partner_name", values.clean_text)
        cp_account = fields.one("channel_partner_account_id", values.account_id)
        if isv_name or isv_account:
            role: Role | None = Role.CHANNEL_PARTNER
        elif cp_name or cp_account:
            role = Role.ISV
        else:
            role = self.default_role
        end = fields.one("end_date", values.parse_date)
        return Event(
            kind=self.kind,
            channel=Channel.EMAIL,
            source_id=msg.message_id,
            occurred_at=msg.occurred_at,
            recipient_role=role,
            customer_account_id=accounts[0] if len(accounts) == 1 else None,
            customer_account_ids=tuple(accounts),
            customer_name=fields.one("customer_name", values.clean_text),
            product_id=fields.one("product_id", values.product_id),
            product_name=fields.one("product_name", values.clean_text),
            offer_id=fields.one("offer_id", values.offer_id),
            offer_name=fields.one("offer_name", values.clean_text),
            agreement_id=agreement,
            previous_agreement_id=fields.one(
                "previous_agreement_id", values.agreement_id
            ),
            agreement_status=self.agreement_status,
            acceptance_date=_real(fields.one("acceptance_date", values.parse_date)),
            start_date=_real(fields.one("start_date", values.parse_date)),
            end_date=_real(end),
            offer_published_date=_real(
                fields.one("offer_published_date", values.parse_date)
            ),
            offer_expiration_date=_real(
                fields.one("offer_expiration_date", values.parse_date)
            ),
            purchase_amount=purchase,
            wholesale_price=fields.money("wholesale_price", currency),
            margin=fields.money("margin", currency),
            isv_name=isv_name,
            isv_account_id=isv_account,
            channel_partner_name=cp_name,
            channel_partner_account_id=cp_account,
            opportunity_id=opportunity,
            resale_authorization_id=resale,
            selling_authorization_duration=fields.one("duration", values.clean_text),
            trust=Trust.UNVERIFIED,
            resource_arn=fields.one("resource_arn", values.resource_arn),
            dedupe_ids=(msg.message_id,) if msg.message_id else (),
        )


class Fields:
    """Raw label values with "exactly one distinct valid value" lookups."""

    def __init__(self, found: dict[str, list[str]]) -> None:
        self.found = found

    def has(self, key: str) -> bool:
        return key in self.found

    def one(self, key: str, convert: Callable[[str], T | None]) -> T | None:
        results: list[T] = []
        for raw in self.found.get(key, ()):
            value = convert(raw)
            if value is not None and value not in results:
                results.append(value)
        # Two different values under one label (a repeated block that
        # disagrees) is not clearly there: leave it unknown.
        return results[0] if len(results) == 1 else None

    def money(self, key: str, currency: str | None) -> Money | None:
        return self.one(key, lambda raw: values.parse_money(raw, currency))

    def accounts(self, key: str) -> list[str]:
        out: list[str] = []
        for raw in self.found.get(key, ()):
            for account in values.account_ids(raw):
                if account not in out:
                    out.append(account)
        return out


def _real(value: date | None) -> date | None:
    """Dates with year 9999 mean "no end" (JAN-1-9999) and serialize as null."""
    return None if value is None or value == values.NO_END else value


def _present(event: Event, name: str) -> bool:
    value = getattr(event, name)
    return value is not None and value != ()


_TITLE_LINES = 10


def body_titles(msg: EmailView) -> list[str]:
    """The first few non-empty body lines, normalized: the new sender layout
    (AWS User Notifications) repeats the title at the top of the body."""
    out: list[str] = []
    for line in msg.text.splitlines():
        line = line.strip()
        if line:
            out.append(normalize_title(line))
            if len(out) >= _TITLE_LINES:
                break
    return out
