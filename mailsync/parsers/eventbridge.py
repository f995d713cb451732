"""Amazon EventBridge events from AWS Marketplace (seller side).

Exports:

- `MARKETPLACE_SOURCES`: the event `source` values AWS Marketplace uses.
- `is_eventbridge_event(obj)`: `obj` has the shape of an EventBridge event.
- `split_detail_type(text) -> (name, role | None)`: `"Purchase Agreement
  Created - Proposer"` to `("purchase agreement created", "proposer")`;
  tolerant of a missing dash and of spacing/case.
- `parse_eventbridge(obj) -> Event`: the normalized event; never raises for
  bad content. Unmapped detail-types and buyer-side (`Acceptor`) events are
  `unrecognized` with a reason naming the detail-type.

Formats: AWS Marketplace seller guide, "Amazon EventBridge events"
(notifications-eventbridge.html) and the buyer guide's agreement events page,
whose field semantics (e.g. `requestId` for de-duplication) hold for sellers too.
Values that fail validation (an account ID that is not 12 digits, a date that
does not parse) become `null` rather than failing the whole event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from mailsync.event import AGREEMENT_STATUSES, Channel, Event, Kind, Role, Trust
from mailsync.parsers.sns import parse_timestamp

__all__ = [
    "LICENSE_ARN_RE",
    "MARKETPLACE_SOURCES",
    "is_eventbridge_event",
    "parse_eventbridge",
    "split_detail_type",
]

#: Event sources AWS Marketplace publishes under (reference 3.1). EventBridge
#: refuses PutEvents with an `aws.` source, so these cannot be forged on a bus.
MARKETPLACE_SOURCES = frozenset(
    {"aws.agreement-marketplace", "aws.marketplacecatalog", "aws.marketplace"}
)

# detail-type names (role suffix removed, case-folded) to kinds.
_KINDS: Mapping[str, Kind] = {
    "purchase agreement created": Kind.AGREEMENT_CREATED,
    "purchase agreement amended": Kind.AGREEMENT_AMENDED,
    "purchase agreement ended": Kind.AGREEMENT_ENDED,
    "purchase agreement ending": Kind.AGREEMENT_ENDING,
    "offer released": Kind.OFFER_RELEASED,
    "license updated": Kind.LICENSE_UPDATED,
    "license deprovisioned": Kind.LICENSE_DEPROVISIONED,
    "disbursement paused": Kind.DISBURSEMENT_PAUSED,
    "products security report created": Kind.SECURITY_SCAN_REPORTED,
}

_SUFFIX_RE = re.compile(
    r"^(?P<name>.*?)\s*(?:-\s*)?\b(?P<role>proposer|manufacturer|acceptor)$",
    re.IGNORECASE,
)
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_AGREEMENT_RE = re.compile(r"^agmt-[A-Za-z0-9]{6,64}$")
# Offer IDs: `offer-…`, or bare 25-character IDs in license events (reference 3.4).
_OFFER_RE = re.compile(r"^(?:offer-)?[A-Za-z0-9]{6,64}$")
# Product IDs: `prod-…`, or UUID-like in Offer Released examples (reference 3.4).
_PRODUCT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{5,127}$")
_PRODUCT_CODE_RE = re.compile(r"^[A-Za-z0-9]{10,40}$")
_RESALE_RE = re.compile(r"^resaleauthz-[A-Za-z0-9]{6,64}$")
# License Manager ARNs; AWS's own examples drop the `arn:` prefix (reference 3.4).
LICENSE_ARN_RE = re.compile(
    r"^(?:arn:)?aws[a-z-]*:license-manager:[A-Za-z0-9:/_.-]{1,200}$"
)


def is_eventbridge_event(obj: object) -> bool:
    """True when `obj` has the top-level shape of an EventBridge event."""
    return isinstance(obj, Mapping) and "detail-type" in obj and "source" in obj


def split_detail_type(text: str) -> tuple[str, str | None]:
    """(case-folded name, case-folded role suffix or `None`) of a detail-type.

    The buyer guide writes "Purchase Agreement Amended Acceptor" without the
    dash (reference 3.4), so the dash is optional.
    """
    normalized = " ".join(text.split())
    match = _SUFFIX_RE.match(normalized)
    if match is None or not match.group("name"):
        return normalized.casefold(), None
    return match.group("name").casefold(), match.group("role").casefold()


def parse_eventbridge(obj: object) -> Event:
    """The normalized event for one EventBridge event (the SQS body as is)."""
    if not isinstance(obj, Mapping):
        return _broken("an EventBridge event must be a JSON object", None, obj)
    event_id = _text(obj.get("id"))
    detail_type = obj.get("detail-type")
    if not isinstance(detail_type, str) or not detail_type.strip():
        return _broken("EventBridge event without a detail-type", event_id, obj)
    source = obj.get("source")
    if not isinstance(source, str) or source not in MARKETPLACE_SOURCES:
        return _broken(
            f"EventBridge {detail_type!r} from source {source!r}, "
            "which is not an AWS Marketplace source",
            event_id,
            obj,
        )
    name, role = split_detail_type(detail_type)
    if role == "acceptor":
        return _broken(
            f"EventBridge {detail_type!r} is a buyer-side (Acceptor) event",
            event_id,
            obj,
        )
    kind = _KINDS.get(name)
    if kind is None:
        return _broken(
            f"EventBridge detail-type {detail_type!r} is not mapped to a kind",
            event_id,
            obj,
        )
    if event_id is None:
        return _broken(f"EventBridge {detail_type!r} without an id", None, obj)
    detail = obj.get("detail")
    if not isinstance(detail, Mapping):
        return _broken(f"EventBridge {detail_type!r} without a detail", event_id, obj)
    request_id = _text(detail.get("requestId"))
    dedupe = (event_id, f"requestId:{request_id}") if request_id else (event_id,)
    base = Event(
        kind=kind,
        channel=Channel.EVENTBRIDGE,
        source_id=event_id,
        occurred_at=parse_timestamp(obj.get("time")),
        trust=Trust.UNVERIFIED,
        dedupe_ids=dedupe,
    )
    if kind is Kind.DISBURSEMENT_PAUSED:
        # The bank account ARN is only in the top-level `resources` list.
        resources = obj.get("resources")
        arn = _text(resources[0]) if isinstance(resources, list) and resources else None
        return base.replace(resource_arn=arn)
    if kind is Kind.SECURITY_SCAN_REPORTED:
        return base
    return base.replace(**_detail_fields(obj, detail, kind, role))


def _detail_fields(
    obj: Mapping[str, Any], detail: Mapping[str, Any], kind: Kind, role: str | None
) -> dict[str, Any]:
    agreement = _obj(detail.get("agreement"))
    offer = _obj(detail.get("offer"))
    product = _obj(detail.get("product"))
    status = _text(agreement.get("status"))
    status = status.upper() if status else None
    resale_id = _match(_obj(detail.get("resaleAuthorization")).get("id"), _RESALE_RE)

    buyers: list[str] = []
    # Agreement/license events: `acceptor.accountId`; cancellation-style
    # events: `agreement.acceptorId`; Offer Released: `targetedBuyerAccountIds`.
    candidates: list[object] = [
        _obj(detail.get("acceptor")).get("accountId"),
        agreement.get("acceptorId"),
    ]
    targeted = detail.get("targetedBuyerAccountIds")
    if isinstance(targeted, list):
        candidates.extend(targeted)
    for value in candidates:
        account = _match(value, _ACCOUNT_RE)
        if account and account not in buyers:
            buyers.append(account)

    fields: dict[str, Any] = {
        "customer_account_id": buyers[0] if len(buyers) == 1 else None,
        "customer_account_ids": tuple(buyers),
        "product_id": _match(
            product.get("id") or agreement.get("productId"), _PRODUCT_RE
        ),
        "product_name": _text(product.get("title")),
        "product_code": _match(product.get("code"), _PRODUCT_CODE_RE),
        "license_arn": _match(_obj(detail.get("license")).get("arn"), LICENSE_ARN_RE),
        "offer_id": _match(offer.get("id") or agreement.get("offerId"), _OFFER_RE),
        "offer_name": _text(offer.get("name")),
        "offer_expiration_date": _date(offer.get("expirationDate")),
        "agreement_id": _match(agreement.get("id"), _AGREEMENT_RE),
        "previous_agreement_id": _match(
            agreement.get("previousAgreementId"), _AGREEMENT_RE
        ),
        "agreement_status": status if status in AGREEMENT_STATUSES else None,
        "acceptance_date": _date(agreement.get("acceptanceTime")),
        "start_date": _date(agreement.get("startTime")),
        "end_date": _date(agreement.get("endTime")),
        "resale_authorization_id": resale_id,
    }
    fields.update(_parties(obj, detail, kind, role, resale_named=resale_id is not None))
    return fields


def _parties(
    obj: Mapping[str, Any],
    detail: Mapping[str, Any],
    kind: Kind,
    role: str | None,
    *,
    resale_named: bool,
) -> dict[str, Any]:
    """ISV / channel partner fields and `recipient_role` (contract section 2)."""
    isv: tuple[str | None, str | None] = (None, None)
    partner: tuple[str | None, str | None] = (None, None)
    manufacturer = _party(detail.get("manufacturer"))
    # On Offer Released the seller of record plays the proposer's part.
    proposer = _party(detail.get("proposer") or detail.get("sellerOfRecord"))
    if manufacturer != (None, None):
        isv = manufacturer
    cpp_offer = kind is Kind.OFFER_RELEASED and (
        manufacturer[1] is not None
        and proposer[1] is not None
        and proposer[1] != manufacturer[1]
    )
    if proposer != (None, None):
        if resale_named or cpp_offer:
            partner = proposer
        elif manufacturer == (None, None):
            isv = proposer
    recipient: Role | None = None
    if role == "manufacturer":
        recipient = Role.ISV
    elif role == "proposer":
        recipient = Role.CHANNEL_PARTNER if resale_named else Role.ISV
    else:
        # No suffix (Offer Released): the receiving `account` says who we are.
        account = _match(obj.get("account"), _ACCOUNT_RE)
        if account is not None and account == isv[1]:
            recipient = Role.ISV
        elif account is not None and account == partner[1]:
            recipient = Role.CHANNEL_PARTNER
    return {
        "isv_name": isv[0],
        "isv_account_id": isv[1],
        "channel_partner_name": partner[0],
        "channel_partner_account_id": partner[1],
        "recipient_role": recipient,
    }


def _party(value: object) -> tuple[str | None, str | None]:
    data = _obj(value)
    return _text(data.get("name")), _match(data.get("accountId"), _ACCOUNT_RE)


def _broken(reason: str, event_id: str | None, obj: object) -> Event:
    time = obj.get("time") if isinstance(obj, Mapping) else None
    return Event.unrecognized(
        reason,
        channel=Channel.EVENTBRIDGE,
        source_id=event_id,
        occurred_at=parse_timestamp(time),
    )


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _match(value: object, pattern: re.Pattern[str]) -> str | None:
    text = _text(value)
    return text if text is not None and pattern.match(text) else None


def _date(value: object) -> date | None:
    """The UTC date of an ISO timestamp; year 9999 means "no end" (`None`)."""
    parsed = parse_timestamp(value)
    if parsed is None or parsed.year >= 9999:
        return None
    return parsed.date()
