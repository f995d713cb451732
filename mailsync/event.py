"""The normalized event: the one domain model every channel produces.

`Event` is frozen and typed. `Event.to_json()` returns exactly the object that
the contract (section 2) fixes for `mailsync parse`; `Event.to_record()` adds the
internal provenance fields (`resource_arn`, `dedupe_ids`) used by the outbox and
the CRM merge, and `Event.from_record()` reverses it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """Event kinds (contract section 3), plus `UNRECOGNIZED`."""

    OFFER_ACCEPTED = "offer.accepted"
    AGREEMENT_STARTED = "agreement.started"
    AGREEMENT_CANCELLED = "agreement.cancelled"
    AGREEMENT_REPLACED = "agreement.replaced"
    AGREEMENT_CREATION_FAILED = "agreement.creation_failed"
    AGREEMENT_PAYMENT_FAILED = "agreement.payment_failed"
    OFFER_PUBLISHED = "offer.published"
    RESALE_AUTHORIZATION_CREATED = "resale_authorization.created"
    RESALE_AUTHORIZATION_UPDATED = "resale_authorization.updated"
    RESALE_AUTHORIZATION_REVOKED = "resale_authorization.revoked"
    RESALE_AUTHORIZATION_EXPIRED = "resale_authorization.expired"
    DISBURSEMENT_PAUSED = "disbursement.paused"
    PROFESSIONAL_SERVICES_REQUESTED = "professional_services.requested"
    SECURITY_SCAN_REPORTED = "security_scan.reported"
    SUBSCRIPTION_SUCCEEDED = "subscription.succeeded"
    SUBSCRIPTION_FAILED = "subscription.failed"
    SUBSCRIPTION_UNSUBSCRIBE_PENDING = "subscription.unsubscribe_pending"
    SUBSCRIPTION_UNSUBSCRIBED = "subscription.unsubscribed"
    ENTITLEMENT_UPDATED = "entitlement.updated"
    AGREEMENT_CREATED = "agreement.created"
    AGREEMENT_AMENDED = "agreement.amended"
    AGREEMENT_ENDED = "agreement.ended"
    AGREEMENT_ENDING = "agreement.ending"
    OFFER_RELEASED = "offer.released"
    LICENSE_UPDATED = "license.updated"
    LICENSE_DEPROVISIONED = "license.deprovisioned"
    AGREEMENT_SNAPSHOT = "agreement.snapshot"  #: Agreement API state (section 6)
    UNRECOGNIZED = "unrecognized"


class Channel(StrEnum):
    EMAIL = "email"
    SNS = "sns"
    EVENTBRIDGE = "eventbridge"
    API = "api"  #: the Agreement API (contract section 6)


class Trust(StrEnum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    REJECTED = "rejected"


class Role(StrEnum):
    ISV = "isv"
    CHANNEL_PARTNER = "channel_partner"


#: Agreement statuses (contract sections 2 and 6; the Agreement API's
#: `AgreementStatus` enum adds ARCHIVED, ROLLED_BACK and SUPERSEDED).
AGREEMENT_STATUSES = frozenset(
    {
        "ACTIVE",
        "CANCELLED",
        "EXPIRED",
        "TERMINATED",
        "RENEWED",
        "REPLACED",
        "ARCHIVED",
        "ROLLED_BACK",
        "SUPERSEDED",
    }
)
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_CENT = Decimal("0.01")


def _is_account(value: str) -> bool:
    """Does `value` match `_ACCOUNT_RE`? A 12-character str is checked
    without the regex engine (`str.isdecimal` is exactly the regex's `\\d`)."""
    if type(value) is str and len(value) == 12:
        return value.isdecimal()
    return _ACCOUNT_RE.match(value) is not None


@dataclass(frozen=True, slots=True)
class Money:
    """An amount with its ISO 4217 currency; serialized with exactly two decimals."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        currency = self.currency
        # Three ASCII capitals pass without the regex engine.
        if not (
            type(currency) is str
            and len(currency) == 3
            and currency.isascii()
            and currency.isalpha()
            and currency.isupper()
        ) and not _CURRENCY_RE.match(currency):
            raise ValueError(f"currency must be a 3-letter ISO code: {currency!r}")
        if not self.amount.is_finite():
            raise ValueError("amount must be finite")

    def to_json(self) -> dict[str, str]:
        return {
            "amount": str(self.amount.quantize(_CENT, rounding=ROUND_HALF_UP)),
            "currency": self.currency,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Money:
        return cls(Decimal(str(data["amount"])), str(data["currency"]))


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


_DATE_FIELDS = (
    "acceptance_date",
    "start_date",
    "end_date",
    "offer_published_date",
    "offer_expiration_date",
)
_MONEY_FIELDS = ("purchase_amount", "wholesale_price", "margin")
_ACCOUNT_FIELDS = (
    "customer_account_id",
    "isv_account_id",
    "channel_partner_account_id",
)


@dataclass(frozen=True)
class Event:
    """One normalized Marketplace notification (contract section 2).

    Field order is the serialization order. Every field defaults to "unknown";
    `kind`, `channel` and `trust` are always set by the parser.
    """

    kind: Kind
    reason: str | None = None  #: why unrecognized / rejected; else None
    channel: Channel = Channel.EMAIL
    source_id: str | None = None  #: Message-ID (no <>), SNS MessageId, EventBridge id
    occurred_at: datetime | None = None  #: UTC, whole seconds
    recipient_role: Role | None = None
    customer_account_id: str | None = None  #: 12 digits; None when several buyers
    customer_account_ids: tuple[str, ...] = ()
    customer_name: str | None = None
    customer_identifier: str | None = None  #: SNS customer-identifier, trimmed
    product_id: str | None = None
    product_name: str | None = None
    product_code: str | None = None
    #: License Manager license ARN (EventBridge license.arn, Agreement API
    #: entitlements[].licenseArn): how Concurrent Agreements name a purchase
    license_arn: str | None = None
    offer_id: str | None = None
    offer_name: str | None = None
    agreement_id: str | None = None  #: for agreement.replaced: the NEW agreement
    previous_agreement_id: str | None = None
    agreement_status: str | None = None
    acceptance_date: date | None = None
    start_date: date | None = None
    end_date: date | None = None  #: None also for "no end" (year 9999)
    offer_published_date: date | None = None
    offer_expiration_date: date | None = None
    purchase_amount: Money | None = None
    wholesale_price: Money | None = None
    margin: Money | None = None
    isv_name: str | None = None
    isv_account_id: str | None = None
    channel_partner_name: str | None = None
    channel_partner_account_id: str | None = None
    opportunity_id: str | None = None
    resale_authorization_id: str | None = None
    selling_authorization_duration: str | None = None
    free_trial: bool | None = None
    trust: Trust = Trust.UNVERIFIED
    # --- internal provenance, not part of the contract JSON -------------------
    #: ARN named by the event (disbursement paused: the bank account ARN)
    resource_arn: str | None = field(default=None, compare=False)
    #: every transport ID that identifies this delivery (Message-ID, SNS
    #: MessageId, EventBridge id, EventBridge detail.requestId)
    dedupe_ids: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        # Read directly, not by name: one event is built per parsed message.
        for name, value in (
            ("customer_account_id", self.customer_account_id),
            ("isv_account_id", self.isv_account_id),
            ("channel_partner_account_id", self.channel_partner_account_id),
        ):
            if value is not None and not _is_account(value):
                raise ValueError(f"{name} must be 12 digits: {value!r}")
        for value in self.customer_account_ids:
            if not _is_account(value):
                raise ValueError(f"customer_account_ids must be 12 digits: {value!r}")
        if self.agreement_status is not None and (
            self.agreement_status not in AGREEMENT_STATUSES
        ):
            raise ValueError(f"unknown agreement_status {self.agreement_status!r}")
        moment = self.occurred_at
        if moment is not None:
            if moment.tzinfo is None:
                raise ValueError("occurred_at must be timezone-aware")
            # The contract keeps whole seconds in UTC; normalize once here
            # (parsers mostly pass it normalized already: then keep it).
            if not (
                type(moment) is datetime
                and moment.tzinfo is UTC
                and moment.microsecond == 0
            ):
                normalized = moment.astimezone(UTC).replace(microsecond=0)
                object.__setattr__(self, "occurred_at", normalized)

    # -- construction helpers ------------------------------------------------

    @classmethod
    def unrecognized(
        cls,
        reason: str,
        *,
        channel: Channel = Channel.EMAIL,
        source_id: str | None = None,
        occurred_at: datetime | None = None,
        trust: Trust = Trust.UNVERIFIED,
    ) -> Event:
        """An `unrecognized` event carrying a one-line reason."""
        return cls(
            kind=Kind.UNRECOGNIZED,
            reason=" ".join(reason.split()),
            channel=channel,
            source_id=source_id,
            occurred_at=occurred_at,
            trust=trust,
        )

    def replace(self, **changes: Any) -> Event:
        """A copy with `changes` applied (validated like a new event)."""
        return dataclasses.replace(self, **changes)

    def rejected(self, reason: str) -> Event:
        """This event marked `trust = rejected` with `reason`."""
        return self.replace(trust=Trust.REJECTED, reason=" ".join(reason.split()))

    @property
    def recognized(self) -> bool:
        return self.kind is not Kind.UNRECOGNIZED

    # -- serialization ---------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The contract's JSON object: every key present, in a fixed order."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("resource_arn", "dedupe_ids"):
                continue
            out[f.name] = _dump(getattr(self, f.name))
        return out

    def to_record(self) -> dict[str, Any]:
        """`to_json()` plus the internal provenance fields (for durable storage)."""
        out = self.to_json()
        out["resource_arn"] = self.resource_arn
        out["dedupe_ids"] = list(self.dedupe_ids)
        return out

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Event:
        """Rebuild an event from `to_record()` (or `to_json()`) output."""
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if value is None:
                kwargs[f.name] = None
            elif f.name in _DATE_FIELDS:
                kwargs[f.name] = date.fromisoformat(value)
            elif f.name in _MONEY_FIELDS:
                kwargs[f.name] = Money.from_json(value)
            elif f.name == "occurred_at":
                kwargs[f.name] = _parse_ts(value)
            elif f.name in ("customer_account_ids", "dedupe_ids"):
                kwargs[f.name] = tuple(value)
            elif f.name == "kind":
                kwargs[f.name] = Kind(value)
            elif f.name == "channel":
                kwargs[f.name] = Channel(value)
            elif f.name == "trust":
                kwargs[f.name] = Trust(value)
            elif f.name == "recipient_role":
                kwargs[f.name] = Role(value)
            else:
                kwargs[f.name] = value
        return cls(**kwargs)


def _one_step_init(cls: type[Event]) -> None:
    """Give `cls` an `__init__` with the dataclass's signature (the same
    parameters, order and defaults) that stores every field in one step,
    then runs `__post_init__`.

    The dataclass's own `__init__` of a frozen class calls
    `object.__setattr__` once per field; with some forty fields that was the
    largest part of building an event, and one event is built per parsed
    message (see bench/parse.py). The instance keeps a `__dict__` (no
    `__slots__`) so that the fields can be stored as one dictionary; the
    class stays frozen (`__setattr__`/`__delattr__` raise as before).
    """
    params: list[str] = []
    items: list[str] = []
    defaults: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING or not f.init:
            raise TypeError(f"{f.name}: only plain defaults are supported")
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            defaults[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
        items.append(f"{f.name!r}: {f.name}")
    source = (
        f"def __init__(self, {', '.join(params)}):\n"
        f"    _set(self, '__dict__', {{{', '.join(items)}}})\n"
        "    self.__post_init__()\n"
    )
    namespace: dict[str, Any] = {"_set": object.__setattr__, **defaults}
    exec(source, namespace)  # the source is built from the field names above
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]


_one_step_init(Event)


def _dump(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, datetime):
        return _ts(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Money):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [_dump(v) for v in value]
    return value


def all_json_keys() -> Sequence[str]:
    """The contract keys of `Event.to_json()`, in order."""
    return [
        f.name
        for f in dataclasses.fields(Event)
        if f.name not in ("resource_arn", "dedupe_ids")
    ]
