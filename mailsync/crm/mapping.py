"""The one pure mapping from events to CRM records, and the CRM names.

This module is the only place where CRM object and field names appear. The
names below are the defaults of the contract (section 4); the merge rules
(`mailsync.crm.merge`) work on these *logical* names, and `CrmMapping` renames
objects, fields and picklist values at the backend boundary, as configured in
``[crm.salesforce] mapping``:

```toml
[crm.salesforce.mapping.objects]          # logical object -> CRM object
AWS_Agreement__c = "My_Agreement__c"
[crm.salesforce.mapping.fields.AWS_Agreement__c]   # logical field -> CRM field
Status__c = "Stage__c"
Margin__c = ""                            # "" = do not write this field
[crm.salesforce.mapping.values.AWS_Agreement__c]   # picklist value renames
Active = "Live"
[crm.salesforce.mapping.extra_fields.AWS_Agreement__c]  # opt-in extra fields
Product_Code__c = "product_code"          # CRM field = event key (section 2)
```

`touches(event)` is pure: it says which records an event names, with which
facts and which proposed status. It never decides what wins; merge does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from mailsync.errors import ConfigError
from mailsync.event import Event, Kind, Money

ACCOUNT = "Account"
AGREEMENT = "AWS_Agreement__c"
OFFER = "AWS_Offer__c"
SUBSCRIPTION = "AWS_Subscription__c"
EVENT = "AWS_Marketplace_Event__c"
OPPORTUNITY = "Opportunity"

#: Objects in dependency order: a parent before the records that look it up.
OBJECTS: tuple[str, ...] = (ACCOUNT, AGREEMENT, OFFER, SUBSCRIPTION, EVENT)

EXTERNAL_ID: dict[str, str] = {
    ACCOUNT: "AWS_Account_ID__c",
    AGREEMENT: "Agreement_ID__c",
    OFFER: "Offer_ID__c",
    SUBSCRIPTION: "Subscription_Key__c",
    EVENT: "Event_Key__c",
}

NAME = "Name"
STATUS = "Status__c"
LAST_AT = "Last_Event_At__c"
LAST_KIND = "Last_Event_Kind__c"
ACCOUNT_LOOKUP = "Account__c"  #: lookup field; written as `Account__r`
ACCOUNT_REF = "Account__r"

#: Every field mailsync writes by default, per object (contract section 4).
FIELDS: dict[str, tuple[str, ...]] = {
    ACCOUNT: ("AWS_Account_ID__c", NAME),
    AGREEMENT: tuple(
        "Agreement_ID__c Name Status__c Account__c Customer_AWS_Account_ID__c "
        "Customer_Name__c Offer_ID__c Offer_Name__c Product_ID__c Product_Name__c "
        "Acceptance_Date__c Start_Date__c End_Date__c Purchase_Amount__c "
        "Wholesale_Price__c Margin__c Currency__c Channel_Partner_Name__c "
        "Channel_Partner_AWS_Account_ID__c ISV_Name__c ISV_AWS_Account_ID__c "
        "Previous_Agreement_ID__c Last_Event_At__c Last_Event_Kind__c".split()
    ),
    OFFER: tuple(
        "Offer_ID__c Name Status__c Product_ID__c Product_Name__c "
        "Customer_AWS_Account_IDs__c Published_Date__c Expiration_Date__c "
        "Opportunity_ID__c Wholesale_Price__c Currency__c Last_Event_At__c".split()
    ),
    SUBSCRIPTION: tuple(
        "Subscription_Key__c Name Status__c Product_Code__c Customer_Identifier__c "
        "Offer_ID__c Free_Trial__c Customer_AWS_Account_ID__c "
        "Last_Entitlement_Update__c Last_Event_At__c".split()
    ),
    EVENT: tuple(
        "Event_Key__c Name Kind__c Channel__c Source_ID__c Occurred_At__c "
        "Agreement_ID__c Offer_ID__c Customer_AWS_Account_ID__c Summary__c".split()
    ),
}

_CENT = Decimal("0.01")
NUMBER_FIELDS = frozenset({"Purchase_Amount__c", "Wholesale_Price__c", "Margin__c"})
BOOLEAN_FIELDS = frozenset({"Free_Trial__c"})

#: The columns `mailsync records` shows in its table format (all in json/csv).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    ACCOUNT: ("AWS_Account_ID__c", NAME),
    AGREEMENT: tuple(
        "Agreement_ID__c Status__c Customer_AWS_Account_ID__c Customer_Name__c "
        "End_Date__c Purchase_Amount__c Currency__c".split()
    ),
    OFFER: tuple(
        "Offer_ID__c Name Status__c Product_ID__c Customer_AWS_Account_IDs__c "
        "Expiration_Date__c".split()
    ),
    SUBSCRIPTION: tuple(
        "Subscription_Key__c Status__c Offer_ID__c Customer_AWS_Account_ID__c "
        "Last_Event_At__c".split()
    ),
    EVENT: tuple("Event_Key__c Kind__c Channel__c Occurred_At__c Summary__c".split()),
}

# -- status values and ranks (contract section 4, "Status never rolls back") --

AGREEMENT_RANK: dict[str, int] = {
    "Active": 1,
    "Payment Failed": 2,
    "Cancelled": 3,
    "Expired": 3,
    "Terminated": 3,
    "Renewed": 3,
    "Replaced": 3,
    "Creation Failed": 3,
}
OFFER_RANK: dict[str, int] = {"Published": 1, "Accepted": 2}
SUBSCRIPTION_RANK: dict[str, int] = {
    "Subscribe Failed": 1,
    "Subscribed": 1,
    "Unsubscribe Pending": 2,
    "Unsubscribed": 3,
}
RANKS: dict[str, dict[str, int]] = {
    AGREEMENT: AGREEMENT_RANK,
    OFFER: OFFER_RANK,
    SUBSCRIPTION: SUBSCRIPTION_RANK,
}

#: `agreement_status` (EventBridge / email) -> Status__c picklist value.
_AGREEMENT_STATUS = {
    "ACTIVE": "Active",
    "CANCELLED": "Cancelled",
    "EXPIRED": "Expired",
    "TERMINATED": "Terminated",
    "RENEWED": "Renewed",
    "REPLACED": "Replaced",
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
}
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
    - one event row keyed by `event_key()`.
    Unrecognized and rejected events name nothing.
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
    out.append(_event_row(event))
    if extra_fields:
        out = [_with_extras(t, event, extra_fields.get(t.obj, {})) for t in out]
    return out


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


class CrmMapping:
    """Logical (contract) names <-> the CRM's names; identity by default."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        config = dict(config or {})
        where = "[crm.salesforce] mapping"
        unknown = set(config) - {"objects", "fields", "values", "extra_fields"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {sorted(unknown)[0]!r}; use objects, fields, "
                "values or extra_fields"
            )
        self.objects = _str_table(config.get("objects", {}), f"{where}.objects")
        self.fields = _nested(config.get("fields", {}), f"{where}.fields")
        self.values = _nested(config.get("values", {}), f"{where}.values")
        self.extra_fields = _nested(
            config.get("extra_fields", {}), f"{where}.extra_fields"
        )
        for name, table in (
            ("objects", dict.fromkeys(self.objects)),
            ("fields", self.fields),
            ("values", self.values),
            ("extra_fields", self.extra_fields),
        ):
            for obj in table:
                if obj not in FIELDS and obj != OPPORTUNITY:
                    raise ConfigError(
                        f"{where}.{name}.{obj}: unknown object; valid: "
                        + ", ".join(OBJECTS)
                    )
        for obj, renames in self.fields.items():
            for f in renames:
                if f not in FIELDS.get(obj, ()):
                    raise ConfigError(
                        f"{where}.fields.{obj}.{f}: unknown field; valid: "
                        + ", ".join(FIELDS[obj])
                    )
                if f == EXTERNAL_ID.get(obj) and not renames[f]:
                    raise ConfigError(
                        f"{where}.fields.{obj}.{f}: the external ID cannot be "
                        "switched off"
                    )

    def obj(self, logical: str) -> str:
        return self.objects.get(logical, logical)

    def field(self, obj: str, logical: str) -> str:
        """The CRM name of a field; "" when switched off."""
        return self.fields.get(obj, {}).get(logical, logical)

    def external_id(self, obj: str) -> str:
        return self.field(obj, EXTERNAL_ID[obj])

    def to_crm(self, obj: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Rename a logical record for the CRM (fields, picklist values, and the
        `Account__r` reference by external ID)."""
        out: dict[str, Any] = {}
        values = self.values.get(obj, {})
        for name, value in record.items():
            if name == ACCOUNT_REF:
                lookup = self.field(obj, ACCOUNT_LOOKUP)
                if lookup:
                    ref = _relationship(lookup)
                    out[ref] = {self.external_id(ACCOUNT): value[EXTERNAL_ID[ACCOUNT]]}
                continue
            crm = self.field(obj, name) if name in FIELDS[obj] else name
            if not crm:
                continue
            out[crm] = values.get(value, value) if name == STATUS else value
        return out

    def from_crm(self, obj: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Rename a CRM record back to the contract's field names."""
        back = {self.field(obj, f): f for f in FIELDS[obj] if self.field(obj, f)}
        values = {v: k for k, v in self.values.get(obj, {}).items()}
        out: dict[str, Any] = {}
        for name, value in record.items():
            logical = back.get(name, name)
            out[logical] = values.get(value, value) if logical == STATUS else value
        return out


def _relationship(lookup_field: str) -> str:
    """`Account__c` -> `Account__r`; a standard `AccountId` -> `Account`."""
    if lookup_field.endswith("__c"):
        return lookup_field[:-3] + "__r"
    return lookup_field[:-2] if lookup_field.endswith("Id") else lookup_field


def _str_table(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(v, str) for v in value.values()
    ):
        raise ConfigError(f"{where}: expected a table of strings")
    return dict(value)


def _nested(value: Any, where: str) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table of tables")
    return {k: _str_table(v, f"{where}.{k}") for k, v in value.items()}
