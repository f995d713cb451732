"""The one pure mapping from events to CRM records.

`touches(event)` is pure: it says which records an event names, with which
facts and which proposed status. It never decides what wins; merge
(`mailsync.crm.merge`) does, on the *logical* names of the default model.
`event_key`, `event_version` and `summary` give each event its row key, its
place in the order of events, and its one-line summary.

The CRM's names live in `mailsync.crm.mapping_model` (the default model of
the contract, section 4) and their configured renames in
`mailsync.crm.mapping_config` (`CrmMapping`, ``[crm.salesforce] mapping``);
every name of both stays importable from this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from mailsync.crm import clamp
from mailsync.crm.mapping_config import CrmMapping
from mailsync.crm.mapping_model import (
    ACCOUNT,
    ACCOUNT_LOOKUP,
    ACCOUNT_REF,
    AGREEMENT,
    AGREEMENT_LOOKUP,
    AGREEMENT_RANK,
    AGREEMENT_REF,
    BOOLEAN_FIELDS,
    EVENT,
    EXTERNAL_ID,
    FIELDS,
    INTEGER_FIELDS,
    INVOICE,
    LAST_AT,
    LAST_KIND,
    LENGTHS,
    LICENSE_STATUSES,
    NAME,
    NUMBER_FIELDS,
    OBJECTS,
    OFFER,
    OFFER_RANK,
    OPPORTUNITY,
    RANKS,
    STATUS,
    SUBSCRIPTION,
    SUBSCRIPTION_RANK,
    TABLE_COLUMNS,
)
from mailsync.event import Event, Kind, Money

__all__ = [
    "ACCOUNT",
    "ACCOUNT_LOOKUP",
    "ACCOUNT_REF",
    "AGREEMENT",
    "AGREEMENT_LOOKUP",
    "AGREEMENT_RANK",
    "AGREEMENT_REF",
    "BOOLEAN_FIELDS",
    "EVENT",
    "EXTERNAL_ID",
    "FIELDS",
    "INTEGER_FIELDS",
    "INVOICE",
    "LAST_AT",
    "LAST_KIND",
    "LENGTHS",
    "NAME",
    "NUMBER_FIELDS",
    "OBJECTS",
    "OFFER",
    "OFFER_RANK",
    "OPPORTUNITY",
    "RANKS",
    "STATUS",
    "SUBSCRIPTION",
    "SUBSCRIPTION_RANK",
    "TABLE_COLUMNS",
    "CrmMapping",
    "Touch",
    "agreement_status",
    "event_digest",
    "event_key",
    "event_version",
    "placeholder_name",
    "summary",
    "touches",
]

_CENT = Decimal("0.01")

#: `agreement_status` (EventBridge / email) -> Status__c picklist value.
_AGREEMENT_STATUS = {
    "ACTIVE": "Active",
    "CANCELLED": "Cancelled",
    "EXPIRED": "Expired",
    "TERMINATED": "Terminated",
    "RENEWED": "Renewed",
    "REPLACED": "Replaced",
    "ARCHIVED": "Archived",
    "ROLLED_BACK": "Rolled Back",
    "SUPERSEDED": "Superseded",
}
#: The status an agreement event implies when it carries no `agreement_status`.
_KIND_AGREEMENT_STATUS = {
    Kind.OFFER_ACCEPTED: "Active",
    Kind.AGREEMENT_STARTED: "Active",
    Kind.AGREEMENT_REPLACED: "Active",  # agreement_id is the NEW agreement
    Kind.AGREEMENT_CREATED: "Active",
    Kind.AGREEMENT_AMENDED: "Active",
    Kind.AGREEMENT_CANCELLED: "Cancelled",
    Kind.AGREEMENT_ENDED: None,  # only from agreement_status
    Kind.AGREEMENT_SNAPSHOT: None,  # the Agreement API's status, as given
}
#: `License_Status__c` per license event (contract section 6).
_LICENSE_STATUS = dict(
    zip(
        (Kind.LICENSE_UPDATED, Kind.LICENSE_DEPROVISIONED),
        LICENSE_STATUSES,
        strict=True,
    )
)
#: Kinds whose status is the kind itself, whatever agreement_status says.
_FIXED_AGREEMENT_STATUS = {
    Kind.AGREEMENT_CREATION_FAILED: "Creation Failed",
    Kind.AGREEMENT_PAYMENT_FAILED: "Payment Failed",
}
_SUBSCRIPTION_STATUS = {
    Kind.SUBSCRIPTION_SUCCEEDED: "Subscribed",
    Kind.SUBSCRIPTION_FAILED: "Subscribe Failed",
    Kind.SUBSCRIPTION_UNSUBSCRIBE_PENDING: "Unsubscribe Pending",
    Kind.SUBSCRIPTION_UNSUBSCRIBED: "Unsubscribed",
}
_PUBLISH_KINDS = frozenset({Kind.OFFER_PUBLISHED, Kind.OFFER_RELEASED})

# -- business-event keys (contract section 4, "One business event, one row") --

_SEMANTIC_SUFFIX = {
    Kind.OFFER_ACCEPTED: "created",
    Kind.AGREEMENT_REPLACED: "created",
    Kind.AGREEMENT_CREATED: "created",
    Kind.AGREEMENT_STARTED: "started",
    Kind.AGREEMENT_CANCELLED: "ended",
    Kind.AGREEMENT_ENDED: "ended",
    Kind.AGREEMENT_PAYMENT_FAILED: "payment_failed",
    Kind.AGREEMENT_CREATION_FAILED: "creation_failed",
}


def placeholder_name(account_id: str) -> str:
    """The Account Name mailsync uses until a customer name is known."""
    return f"AWS account {account_id}"


def event_digest(event: Event) -> str:
    """A stable digest of the event's contract JSON (a tiebreak and a key)."""
    text = json.dumps(event.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def event_version(event: Event) -> str:
    """A total order on events: occurrence time, then the digest.

    "Newest" in the merge rules means the greatest version. An event without a
    time (a bare SNS message) sorts before every timed event. The digest makes
    ties between different events deterministic, so merging is independent of
    the order events arrive in.
    """
    at = _iso(event.occurred_at) or "0000-00-00T00:00:00Z"
    return f"{at}|{event_digest(event)}"


def event_key(event: Event) -> str:
    """`Event_Key__c`: the business-event key, else the transport key.

    Transport keys are ``email:<Message-ID>``, ``sns:<MessageId>`` and
    ``eventbridge:<id>``; an input without an ID (bare SNS) is keyed
    ``<channel>:sha256:<digest>`` of its content.
    """
    suffix = _SEMANTIC_SUFFIX.get(event.kind)
    if suffix and event.agreement_id:
        return f"agreement:{event.agreement_id}:{suffix}"
    if event.kind in _PUBLISH_KINDS and event.offer_id:
        return f"offer:{event.offer_id}:published"
    if (
        event.kind is Kind.DISBURSEMENT_PAUSED
        and event.resource_arn
        and event.occurred_at
    ):
        return f"disbursement:{event.resource_arn}:{event.occurred_at.date()}"
    if event.source_id:
        return f"{event.channel}:{event.source_id}"
    return f"{event.channel}:sha256:{event_digest(event)}"


@dataclass(frozen=True)
class Touch:
    """What one event says about one record (before merge rules apply)."""

    obj: str  #: logical object name
    key: str  #: external ID value
    facts: dict[str, Any] = field(default_factory=dict)  #: logical field -> value
    status: str | None = None  #: proposed Status__c (logical picklist value)
    reopens: bool = False  #: a subscription.succeeded (may re-open)
    oldest_wins: bool = False  #: event rows keep what the first delivery said


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _money(value: Money | None) -> float | None:
    """A number for the CRM (Currency fields take JSON numbers), in cents."""
    return float(value.amount.quantize(_CENT)) if value else None


def _clean(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Drop unknown values: an event without a value never blanks a field."""
    return {k: v for k, v in facts.items() if v is not None and v != ""}


def _currency(*amounts: Money | None) -> str | None:
    return next((m.currency for m in amounts if m is not None), None)


def agreement_status(event: Event) -> str | None:
    """The Status__c an event proposes for its agreement, or None."""
    fixed = _FIXED_AGREEMENT_STATUS.get(event.kind)
    if fixed:
        return fixed
    if event.kind not in _KIND_AGREEMENT_STATUS:
        return None
    if event.agreement_status:
        return _AGREEMENT_STATUS[event.agreement_status]
    return _KIND_AGREEMENT_STATUS[event.kind]


def _last(event: Event) -> dict[str, Any]:
    return {LAST_AT: _iso(event.occurred_at), LAST_KIND: str(event.kind)}


def _agreement(event: Event, agreement_id: str) -> Touch:
    e = event
    facts = {
        "Customer_AWS_Account_ID__c": e.customer_account_id,
        "Customer_Name__c": e.customer_name,
        "Offer_ID__c": e.offer_id,
        "Offer_Name__c": e.offer_name,
        "Product_ID__c": e.product_id,
        "Product_Name__c": e.product_name,
        "Acceptance_Date__c": e.acceptance_date and e.acceptance_date.isoformat(),
        "Start_Date__c": e.start_date and e.start_date.isoformat(),
        "End_Date__c": e.end_date and e.end_date.isoformat(),
        "Purchase_Amount__c": _money(e.purchase_amount),
        "Wholesale_Price__c": _money(e.wholesale_price),
        "Margin__c": _money(e.margin),
        "Currency__c": _currency(e.purchase_amount, e.wholesale_price, e.margin),
        "Channel_Partner_Name__c": e.channel_partner_name,
        "Channel_Partner_AWS_Account_ID__c": e.channel_partner_account_id,
        "ISV_Name__c": e.isv_name,
        "ISV_AWS_Account_ID__c": e.isv_account_id,
        "Previous_Agreement_ID__c": e.previous_agreement_id,
        "License_ARN__c": e.license_arn,
        "Product_Code__c": e.product_code,
        # A fact, so the newer license event wins (merge: greatest version).
        "License_Status__c": _LICENSE_STATUS.get(e.kind),
        **_last(e),
    }
    return Touch(AGREEMENT, agreement_id, _clean(facts), agreement_status(e))


def _offer(event: Event, offer_id: str, status: str) -> Touch:
    e = event
    facts: dict[str, Any] = {
        NAME: e.offer_name,
        "Product_ID__c": e.product_id,
        "Product_Name__c": e.product_name,
        "Published_Date__c": e.offer_published_date
        and e.offer_published_date.isoformat(),
        "Expiration_Date__c": e.offer_expiration_date
        and e.offer_expiration_date.isoformat(),
        "Opportunity_ID__c": e.opportunity_id,
        "Wholesale_Price__c": _money(e.wholesale_price),
        "Currency__c": _currency(e.wholesale_price),
        LAST_AT: _iso(e.occurred_at),
    }
    if status == "Published":
        # The targets of a published offer; an acceptance names one buyer and
        # must not shrink the list.
        ids = e.customer_account_ids or (
            (e.customer_account_id,) if e.customer_account_id else ()
        )
        facts["Customer_AWS_Account_IDs__c"] = ",".join(ids) or None
    return Touch(OFFER, offer_id, _clean(facts), status)


def _subscription(event: Event) -> Touch | None:
    e = event
    if not (e.product_code and e.customer_identifier):
        return None
    facts: dict[str, Any] = {
        "Product_Code__c": e.product_code,
        "Customer_Identifier__c": e.customer_identifier,
        "Offer_ID__c": e.offer_id,
        "Free_Trial__c": e.free_trial,
        "Customer_AWS_Account_ID__c": e.customer_account_id,
        LAST_AT: _iso(e.occurred_at),
    }
    if e.kind is Kind.ENTITLEMENT_UPDATED:
        facts["Last_Entitlement_Update__c"] = _iso(e.occurred_at)
    return Touch(
        SUBSCRIPTION,
        f"{e.product_code}:{e.customer_identifier}",
        _clean(facts),
        _SUBSCRIPTION_STATUS.get(e.kind),
        reopens=e.kind is Kind.SUBSCRIPTION_SUCCEEDED,
    )


def summary(event: Event) -> str:
    """A one-line human summary for `Summary__c` (at most 255 characters)."""
    e = event
    parts = [str(e.kind)]
    for label, value in (
        ("agreement", e.agreement_id),
        ("offer", e.offer_id),
        ("customer", e.customer_name),
        ("account", e.customer_account_id),
        ("product", e.product_name or e.product_id or e.product_code),
        ("status", e.agreement_status),
        ("resource", e.resource_arn),
    ):
        if value:
            parts.append(f"{label} {value}")
    return "; ".join(parts)[:255]


def _event_row(event: Event) -> Touch:
    e = event
    key = event_key(e)
    facts = {
        NAME: f"{e.kind} {e.agreement_id or e.offer_id or ''}".strip()[:80],
        "Kind__c": str(e.kind),
        "Channel__c": str(e.channel),
        "Source_ID__c": e.source_id,
        "Occurred_At__c": _iso(e.occurred_at),
        "Agreement_ID__c": e.agreement_id,
        "Offer_ID__c": e.offer_id,
        "Customer_AWS_Account_ID__c": e.customer_account_id,
        "Summary__c": summary(e),
    }
    return Touch(EVENT, key, _clean(facts), oldest_wins=True)


def touches(
    event: Event, extra_fields: Mapping[str, Mapping[str, str]] | None = None
) -> list[Touch]:
    """Every record `event` names, in dependency order (pure).

    - an Account for the buyer of an agreement or subscription (never for the
      targets of a published offer), with the customer name as Name candidate;
    - the agreement it names (facts, and a status for agreement kinds);
    - the offer: Published for offer.published / offer.released; Accepted for
      any event naming both the offer and an agreement;
    - the subscription `<product_code>:<customer_identifier>` for SNS events;
    - one event row keyed by `event_key()`, except for an
      `agreement.snapshot` (state, not an event: contract section 6).
    Unrecognized and rejected events name nothing. Every text value is free
    of control characters and fits its field (`mailsync.crm.clamp`), so one
    oversized or hostile value can never make the CRM refuse the record.
    """
    if not event.recognized or event.trust == "rejected":
        return []
    out: list[Touch] = []
    agreement = event.agreement_id if event.kind not in _PUBLISH_KINDS else None
    sub = _subscription(event)
    if event.customer_account_id and (agreement or sub):
        out.append(
            Touch(
                ACCOUNT, event.customer_account_id, _clean({NAME: event.customer_name})
            )
        )
    if agreement:
        out.append(_agreement(event, agreement))
    if event.offer_id and event.kind in _PUBLISH_KINDS:
        out.append(_offer(event, event.offer_id, "Published"))
    elif event.offer_id and agreement:
        out.append(_offer(event, event.offer_id, "Accepted"))
    if sub:
        out.append(sub)
    if event.kind is not Kind.AGREEMENT_SNAPSHOT:
        out.append(_event_row(event))
    if extra_fields:
        out = [_with_extras(t, event, extra_fields.get(t.obj, {})) for t in out]
    return [_clamped(t) for t in out]


def _clamped(touch: Touch) -> Touch:
    lengths = LENGTHS[touch.obj]
    return Touch(
        touch.obj,
        clamp.key(touch.key, lengths.get(EXTERNAL_ID[touch.obj])),
        _clean(clamp.facts(touch.facts, lengths)),
        touch.status,
        touch.reopens,
        touch.oldest_wins,
    )


def _with_extras(touch: Touch, event: Event, extras: Mapping[str, str]) -> Touch:
    if not extras:
        return touch
    data = event.to_json()
    facts = dict(touch.facts)
    for crm_field, key in extras.items():
        value = data.get(key)
        if isinstance(value, dict):  # money
            value = float(value["amount"])
        elif isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if value is not None and value != "":
            facts[crm_field] = value
    return Touch(
        touch.obj, touch.key, facts, touch.status, touch.reopens, touch.oldest_wins
    )
