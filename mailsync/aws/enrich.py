"""Optional enrichment of events with the AWS Marketplace APIs (`[enrichment]`).

`Enricher.enrich(event) -> Event` returns the event with facts the APIs add,
never removing or overwriting a fact the event already carries:

- Subscription and `entitlement.updated` events (SNS carries no AWS account ID):
  `GetEntitlements` (marketplace-entitlement, us-east-1 only) filtered by the
  customer's AWS account ID when known, else by the legacy customer identifier
  (deprecated by AWS, still the only key SNS gives). The buyer's account ID
  fills `customer_account_id`; a one-line summary of the current entitlements
  is stored per subscription (`entitlement_summary()`), for the CRM's
  `Last_Entitlement_Update__c`.
- Agreement events lacking the amount or dates: `DescribeAgreement`
  (marketplace-agreement) for `estimatedCharges` and the acceptance, start and
  end times.

Responses are cached in the state store for `ttl` seconds. Throttling, 5xx and
connection errors are retried with exponential backoff (tenacity); any failure
is logged and the event goes on unchanged, so enrichment never blocks syncing
what is already known. Off by default, and off when no AWS credentials are
found in the standard chain.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from tenacity.wait import wait_base

from mailsync.aws.agreement_api import (
    AgreementApi,
    ApiCache,
    ApiCaller,
    has_credentials,
    jsonable,
    make_client,
)
from mailsync.config import EnrichmentSettings
from mailsync.event import Event, Kind
from mailsync.log import kv
from mailsync.parsers.agreement_api import snapshot
from mailsync.statedb import ensure

__all__ = ["Enricher", "entitlement_summary", "has_credentials", "subscription_key"]

log = logging.getLogger(__name__)

_DDL = """
CREATE TABLE IF NOT EXISTS entitlements (
    subscription_key TEXT PRIMARY KEY,
    customer_account_id TEXT,
    summary TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

_SUBSCRIPTION_KINDS = frozenset(
    {
        Kind.SUBSCRIPTION_SUCCEEDED,
        Kind.SUBSCRIPTION_FAILED,
        Kind.SUBSCRIPTION_UNSUBSCRIBE_PENDING,
        Kind.SUBSCRIPTION_UNSUBSCRIBED,
        Kind.ENTITLEMENT_UPDATED,
    }
)
_AGREEMENT_KINDS = frozenset(
    {
        Kind.OFFER_ACCEPTED,
        Kind.AGREEMENT_STARTED,
        Kind.AGREEMENT_CANCELLED,
        Kind.AGREEMENT_REPLACED,
        Kind.AGREEMENT_CREATED,
        Kind.AGREEMENT_AMENDED,
        Kind.AGREEMENT_ENDED,
        Kind.AGREEMENT_ENDING,
    }
)
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_MAX_PAGES = 20
#: Facts DescribeAgreement adds to an agreement event that lacks them.
_AGREEMENT_FACTS = (
    "acceptance_date",
    "start_date",
    "end_date",
    "offer_id",
    "product_id",
)


def subscription_key(product_code: str, customer: str) -> str:
    """The contract's `Subscription_Key__c`: `<product_code>:<customer_identifier>`."""
    return f"{product_code}:{customer}"


def entitlement_summary(
    conn: sqlite3.Connection, product_code: str, customer_identifier: str
) -> str | None:
    """The stored entitlement summary of one subscription, or None."""
    ensure(conn, _DDL)
    row = conn.execute(
        "SELECT summary FROM entitlements WHERE subscription_key = ?",
        (subscription_key(product_code, customer_identifier),),
    ).fetchone()
    return str(row[0]) if row else None


class Enricher:
    """Adds API facts to events; see the module docstring."""

    def __init__(
        self,
        settings: EnrichmentSettings,
        *,
        state: sqlite3.Connection | None = None,
        entitlement_client: Any = None,
        agreement_client: Any = None,
        ttl: float = 3600.0,
        attempts: int = 4,
        wait: wait_base | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.state = state
        if state is not None:
            ensure(state, _DDL)
        self.cache = ApiCache(state, ttl=ttl, clock=clock)
        self.caller = ApiCaller(attempts=attempts, wait=wait)
        self.enabled = settings.enabled
        if self.enabled and entitlement_client is None and not has_credentials():
            log.info("enrichment off: no AWS credentials found")
            self.enabled = False
        self._entitlement = entitlement_client
        self.agreements = AgreementApi(
            region=settings.region or "us-east-1",
            endpoint_url=settings.endpoint_url,
            caller=self.caller,
            client=agreement_client,
        )

    @property
    def calls(self) -> int:
        """API requests made (cache misses and retries), for status and tests."""
        return self.caller.calls

    def __call__(self, event: Event) -> Event:
        return self.enrich(event)

    def enrich(self, event: Event) -> Event:
        """`event` plus API facts; unchanged when off, not applicable or failing."""
        if not self.enabled or not event.recognized:
            return event
        try:
            if event.kind in _SUBSCRIPTION_KINDS:
                return self._subscription(event)
            if event.kind in _AGREEMENT_KINDS and event.agreement_id:
                return self._agreement_facts(event)
        except Exception as err:  # enrichment must never block a sync
            log.warning(
                "enrichment failed",
                extra=kv(kind=str(event.kind), error=" ".join(str(err).split())),
            )
        return event

    # -- GetEntitlements ---------------------------------------------------------

    def _subscription(self, event: Event) -> Event:
        code, customer = event.product_code, event.customer_identifier
        if not code or not (customer or event.customer_account_id):
            return event
        if event.customer_account_id:
            filt = {"CUSTOMER_AWS_ACCOUNT_ID": [event.customer_account_id]}
        else:
            filt = {"CUSTOMER_IDENTIFIER": [str(customer)]}
        entitlements = self.cache.get(
            f"entitlements:{code}:{sorted(filt.items())}",
            lambda: self._get_entitlements(code, filt),
        )
        accounts = {
            e["account"] for e in entitlements if _ACCOUNT_RE.match(e["account"] or "")
        }
        account = event.customer_account_id
        if account is None and len(accounts) == 1 and not event.customer_account_ids:
            account = accounts.pop()
            event = event.replace(
                customer_account_id=account, customer_account_ids=(account,)
            )
        if customer and self.state is not None:
            self._store_summary(code, customer, account, _summary(entitlements))
        return event

    def _get_entitlements(self, code: str, filt: Mapping[str, list[str]]) -> Any:
        out: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(_MAX_PAGES):
            kwargs: dict[str, Any] = {"ProductCode": code, "Filter": dict(filt)}
            if token:
                kwargs["NextToken"] = token
            client = self._entitlement_client()
            page = self.caller.call(client.get_entitlements, **kwargs)
            for item in page.get("Entitlements", []):
                out.append(
                    {
                        "account": item.get("CustomerAWSAccountId"),
                        "dimension": item.get("Dimension"),
                        "value": _value(item.get("Value") or {}),
                        "expires": _iso(item.get("ExpirationDate")),
                    }
                )
            # An empty page may still carry a NextToken (API reference).
            token = page.get("NextToken")
            if not token:
                break
        return out

    def _store_summary(
        self, code: str, customer: str, account: str | None, summary: str
    ) -> None:
        assert self.state is not None
        with self.state:
            self.state.execute(
                "INSERT INTO entitlements (subscription_key, customer_account_id,"
                " summary, updated_at) VALUES (?,?,?,?) ON CONFLICT"
                " (subscription_key) DO UPDATE SET customer_account_id ="
                " COALESCE(excluded.customer_account_id, customer_account_id),"
                " summary = excluded.summary, updated_at = excluded.updated_at",
                (
                    subscription_key(code, customer),
                    account,
                    summary,
                    datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                ),
            )

    # -- DescribeAgreement ---------------------------------------------------------

    def _agreement_facts(self, event: Event) -> Event:
        if event.purchase_amount and event.start_date and event.end_date:
            return event
        agreement_id = str(event.agreement_id)
        described = self.cache.get(
            f"describe:{agreement_id}",
            lambda: jsonable(self.agreements.describe(agreement_id)),
        )
        # The same reading of the response as the Agreement API source.
        api = snapshot(described, {}, {})
        if not api.recognized or api.agreement_id != agreement_id:
            return event
        changes: dict[str, Any] = {
            name: getattr(api, name)
            for name in _AGREEMENT_FACTS
            if getattr(event, name) is None and getattr(api, name) is not None
        }
        amount = api.purchase_amount
        # 0 means pure usage pricing (API reference): no contract value.
        if event.purchase_amount is None and amount is not None and amount.amount > 0:
            changes["purchase_amount"] = amount
        acceptor = api.customer_account_id
        if event.customer_account_id is None and not event.customer_account_ids:
            if acceptor is not None:
                changes["customer_account_id"] = acceptor
                changes["customer_account_ids"] = (acceptor,)
        return event.replace(**changes) if changes else event

    def _entitlement_client(self) -> Any:
        if self._entitlement is None:
            # The Entitlement Service exists only in us-east-1.
            self._entitlement = make_client(
                "marketplace-entitlement",
                self.settings.region or "us-east-1",
                self.settings.endpoint_url,
            )
        return self._entitlement


def _iso(value: object) -> str | None:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def _value(value: Mapping[str, Any]) -> Any:
    for key in ("IntegerValue", "DoubleValue", "BooleanValue", "StringValue"):
        if key in value:
            return value[key]
    return None


def _summary(entitlements: list[dict[str, Any]]) -> str:
    """One line, e.g. ``admin_users=25 (until 2027-03-01); sso=true``."""
    if not entitlements:
        return "no current entitlements"
    parts = []
    for e in sorted(entitlements, key=lambda e: str(e["dimension"])):
        value = e["value"]
        text = str(value).lower() if isinstance(value, bool) else str(value)
        part = f"{e['dimension']}={text}"
        if e["expires"]:
            part += f" (until {e['expires'][:10]})"
        parts.append(part)
    return "; ".join(parts)
