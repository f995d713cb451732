"""Agreement API responses (`marketplace-agreement`) to `agreement.snapshot` events.

Exports:

- `is_agreement_response(obj)`: `obj` is a saved `DescribeAgreement` response
  (an object with `agreementId` and at least one of `acceptor`, `proposer`,
  `status`), or `{"agreement": <that>, "summary": ..., "terms": ...}`.
- `parse_agreement(obj, *, role="isv", trust=UNVERIFIED) -> Event`: the
  snapshot event (contract section 6); never raises for bad content.
- `snapshot(agreement, summary, terms, *, role, trust) -> Event`: the same from
  the three parts, as the `[source.agreements]` poller holds them.

Field meanings (API reference, DescribeAgreement / AgreementViewSummary /
GetAgreementTerms; botocore model marketplace-agreement 2020-03-01):
`acceptor.accountId` is the buyer, `proposer.accountId` the seller of record
(the ISV, or with `role = "channel_partner"` this account as reseller; the API
does not say whether a proposer resells), `initialAgreementId` the first
agreement of a renewal / replacement chain (equal to `agreementId` when the
agreement derives from no other), `estimatedCharges.agreementValue` the total
contract value as a decimal string, `lastUpdateTime` (summary only) moves on
every change. Timestamps arrive as epoch seconds (JSON protocol), as datetimes
turned to text by a tool that saved the response, or as ISO 8601 strings.
Values that fail validation become `null`, as in the other JSON parsers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from mailsync.event import AGREEMENT_STATUSES, Channel, Event, Kind, Money, Role, Trust
from mailsync.parsers.eventbridge import LICENSE_ARN_RE
from mailsync.parsers.sns import parse_timestamp

__all__ = ["is_agreement_response", "parse_agreement", "snapshot"]

_AGREEMENT_RE = re.compile(r"^agmt-[A-Za-z0-9]{6,64}$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_OFFER_RE = re.compile(r"^(?:offer-)?[A-Za-z0-9]{6,64}$")
_PRODUCT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{5,127}$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
# agreementValue is a BoundedString; a decimal of sane size only.
_AMOUNT_RE = re.compile(r"^-?\d{1,15}(?:\.\d{1,6})?$")
_PARTS = ("agreement", "summary", "terms")


def is_agreement_response(obj: object) -> bool:
    """True for a saved DescribeAgreement response, bare or wrapped."""
    if not isinstance(obj, Mapping):
        return False
    inner = obj.get("agreement")
    if isinstance(inner, Mapping) and set(obj) <= set(_PARTS):
        obj = inner
    return "agreementId" in obj and any(
        k in obj for k in ("acceptor", "proposer", "status")
    )


def parse_agreement(
    obj: object, *, role: str = "isv", trust: Trust = Trust.UNVERIFIED
) -> Event:
    """The snapshot event for one saved response (see the module docstring)."""
    if not isinstance(obj, Mapping):
        return _broken("an Agreement API response must be a JSON object")
    inner = obj.get("agreement")
    if isinstance(inner, Mapping) and set(obj) <= set(_PARTS):
        return snapshot(
            inner,
            _obj(obj.get("summary")),
            _obj(obj.get("terms")),
            role=role,
            trust=trust,
        )
    return snapshot(obj, {}, {}, role=role, trust=trust)


def snapshot(
    agreement: Mapping[str, Any],
    summary: Mapping[str, Any],
    terms: Mapping[str, Any],
    *,
    role: str = "isv",
    trust: Trust = Trust.UNVERIFIED,
) -> Event:
    """The `agreement.snapshot` event for DescribeAgreement (+ summary, terms)."""
    agreement_id = _match(agreement.get("agreementId"), _AGREEMENT_RE)
    if agreement_id is None:
        return _broken(
            "Agreement API response without a valid agreementId "
            f"({_short(agreement.get('agreementId'))})"
        )
    if summary and summary.get("agreementId") not in (None, agreement_id):
        return _broken(
            f"summary is for {_short(summary.get('agreementId'))}, not {agreement_id}"
        )

    def pick(key: str) -> Any:
        """DescribeAgreement's value, else the search summary's."""
        value = agreement.get(key)
        return value if value is not None else summary.get(key)

    updated = _time(summary.get("lastUpdateTime"))
    source_id = agreement_id
    if updated is not None:
        source_id = f"{agreement_id}@{updated.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    buyer = _match(_obj(pick("acceptor")).get("accountId"), _ACCOUNT_RE)
    proposer = _match(_obj(pick("proposer")).get("accountId"), _ACCOUNT_RE)
    status = _text(pick("status"))
    status = status.upper() if status else None
    proposal = _obj(pick("proposalSummary"))
    initial = _match(pick("initialAgreementId"), _AGREEMENT_RE)
    partner = role == Role.CHANNEL_PARTNER
    end = _time(pick("endTime"))
    return Event(
        kind=Kind.AGREEMENT_SNAPSHOT,
        channel=Channel.API,
        source_id=source_id,
        occurred_at=updated,
        recipient_role=None,
        customer_account_id=buyer,
        customer_account_ids=(buyer,) if buyer else (),
        product_id=_product(proposal.get("resources")),
        license_arn=_license(summary.get("entitlements")),
        offer_id=_match(proposal.get("offerId"), _OFFER_RE),
        agreement_id=agreement_id,
        previous_agreement_id=initial if initial != agreement_id else None,
        agreement_status=status if status in AGREEMENT_STATUSES else None,
        acceptance_date=_day(_time(pick("acceptanceTime"))),
        start_date=_day(_time(pick("startTime"))),
        end_date=_day(end),
        purchase_amount=_amount(_obj(agreement.get("estimatedCharges")), terms),
        isv_account_id=None if partner else proposer,
        channel_partner_account_id=proposer if partner else None,
        trust=trust,
    )


def _amount(charges: Mapping[str, Any], terms: Mapping[str, Any]) -> Money | None:
    """`estimatedCharges` (agreementValue, currencyCode); without them, the
    accepted terms' fixed upfront price or payment-schedule total, which the
    API reference names as what agreementValue sums."""
    value = _decimal(charges.get("agreementValue"))
    currency = _match(charges.get("currencyCode"), _CURRENCY_RE)
    if value is not None and currency is not None:
        return Money(value, currency)
    total: Decimal | None = None
    found: str | None = None
    items = terms.get("acceptedTerms")
    for item in items if isinstance(items, list) else []:
        for name, term in _obj(item).items():
            term = _obj(term)
            term_currency = _match(term.get("currencyCode"), _CURRENCY_RE)
            if name == "fixedUpfrontPricingTerm":
                amounts = [_decimal(term.get("price"))]
            elif name == "paymentScheduleTerm":
                schedule = term.get("schedule")
                amounts = [
                    _decimal(_obj(s).get("chargeAmount"))
                    for s in (schedule if isinstance(schedule, list) else [])[:1000]
                ]
            else:
                continue
            if term_currency is None or None in amounts:
                continue
            if found not in (None, term_currency):
                return None  # two currencies: no single figure
            found = term_currency
            total = (total or Decimal(0)) + sum(a for a in amounts if a is not None)
    currency = currency or found
    if value is not None and currency is not None:
        return Money(value, currency)
    if total is not None and found is not None:
        return Money(total, found)
    return None


def _product(resources: object) -> str | None:
    """The proposal's product: the first resource whose type names a product
    (`SaaSProduct`, `AmiProduct`, `ContainerProduct`, ...)."""
    if not isinstance(resources, list):
        return None
    for item in resources[:100]:
        data = _obj(item)
        kind = _text(data.get("type")) or ""
        if kind.endswith("Product"):
            found = _match(data.get("id"), _PRODUCT_RE)
            if found:
                return found
    return None


def _license(entitlements: object) -> str | None:
    if not isinstance(entitlements, list):
        return None
    for item in entitlements[:100]:
        found = _match(_obj(item).get("licenseArn"), LICENSE_ARN_RE)
        if found:
            return found
    return None


def _time(value: object) -> datetime | None:
    """Epoch seconds (the JSON protocol's timestamps), a datetime, or text."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).replace(microsecond=0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC).replace(microsecond=0)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and len(value) <= 64:
        parsed = parse_timestamp(value.replace(" ", "T", 1))
        return parsed.replace(microsecond=0) if parsed else None
    return None


def _day(value: datetime | None) -> date | None:
    # Year 9999 means "no end" (contract section 2).
    return None if value is None or value.year >= 9999 else value.date()


def _decimal(value: object) -> Decimal | None:
    text = _text(value)
    if text is None or not _AMOUNT_RE.match(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _broken(reason: str) -> Event:
    return Event.unrecognized(reason, channel=Channel.API)


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _match(value: object, pattern: re.Pattern[str]) -> str | None:
    text = _text(value)
    return (
        text if text is not None and len(text) <= 256 and pattern.match(text) else None
    )


def _short(value: object) -> str:
    """A value for a reason line: repr, at most 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
