"""Enrichment through GetEntitlements / DescribeAgreement, against the
Agreement API emulator (unmodified boto3 over loopback HTTP)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from agreement_emulator import Emulator
from tenacity import wait_none

from mailsync.aws.enrich import Enricher, entitlement_summary
from mailsync.config import EnrichmentSettings
from mailsync.event import Channel, Event, Kind, Money
from mailsync.statedb import open_db

CODE = "4x9k2m7q1z8p3v6b0n5c2w7r1"
AGREEMENT = "agmt-3k8d0v7q2m5xw9b1c4n6r8t0y"


@pytest.fixture
def state(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = open_db(tmp_path / "state.sqlite3")
    yield conn
    conn.close()


@pytest.fixture
def api(agreement_api: Emulator) -> Emulator:
    agreement_api.entitlements = [dict(e) for e in ENTITLEMENTS]
    agreement_api.put(AGREEMENT, updated="2026-03-03T14:07:15Z")
    return agreement_api


def enricher(state: sqlite3.Connection | None, api: Emulator, **kw: Any) -> Enricher:
    settings = EnrichmentSettings(enabled=True, endpoint_url=api.url)
    return Enricher(settings, state=state, wait=wait_none(), **kw)


def subscription(**kw: Any) -> Event:
    fields: dict[str, Any] = {
        "source_id": "m-1",
        "customer_identifier": "QbT3kZx9LmA",
        "product_code": CODE,
        **kw,
    }
    return Event(kind=Kind.SUBSCRIPTION_SUCCEEDED, channel=Channel.SNS, **fields)


ENTITLEMENTS = [
    {
        "CustomerAWSAccountId": "010987654321",
        "CustomerIdentifier": "QbT3kZx9LmA",
        "ProductCode": CODE,
        "Dimension": "admin_users",
        "Value": {"IntegerValue": 25},
        "ExpirationDate": 1803859200,  # 2027-03-01, epoch seconds in JSON
    },
    {
        "CustomerAWSAccountId": "010987654321",
        "CustomerIdentifier": "QbT3kZx9LmA",
        "ProductCode": CODE,
        "Dimension": "sso",
        "Value": {"BooleanValue": True},
    },
]


def test_subscription_gets_account_and_summary(
    state: sqlite3.Connection, api: Emulator
) -> None:
    api.faults.empty_entitlement_pages = 1  # an empty page with a NextToken
    e = enricher(state, api)
    out = e.enrich(subscription())
    assert out.customer_account_id == "010987654321"
    assert out.customer_account_ids == ("010987654321",)
    assert entitlement_summary(state, CODE, "QbT3kZx9LmA") == (
        "admin_users=25 (until 2027-03-01); sso=true"
    )
    first, second = (body for op, body in api.log if op == "GetEntitlements")
    assert first["Filter"] == {"CUSTOMER_IDENTIFIER": ["QbT3kZx9LmA"]}
    assert second["NextToken"] == "page-2"
    # Cached: the same lookup makes no second call.
    again = e.enrich(subscription(source_id="m-2"))
    assert again.customer_account_id == "010987654321"
    assert e.calls == 2
    assert api.calls == {"GetEntitlements": 2}


def test_known_account_filters_by_account(
    state: sqlite3.Connection, api: Emulator
) -> None:
    event = Event(
        kind=Kind.ENTITLEMENT_UPDATED,
        channel=Channel.SNS,
        customer_identifier="QbT3kZx9LmA",
        customer_account_id="010987654321",
        customer_account_ids=("010987654321",),
        product_code=CODE,
    )
    assert enricher(state, api).enrich(event) == event
    assert api.log[0][1]["Filter"] == {"CUSTOMER_AWS_ACCOUNT_ID": ["010987654321"]}


def test_throttling_retried_then_success(
    state: sqlite3.Connection, api: Emulator
) -> None:
    api.faults.errors["GetEntitlements"] = [
        (400, "ThrottlingException"),
        (500, "InternalServiceErrorException"),
    ]
    out = enricher(state, api).enrich(subscription())
    assert out.customer_account_id == "010987654321"
    assert api.calls == {"GetEntitlements": 3}


def test_failure_never_blocks(state: sqlite3.Connection, api: Emulator) -> None:
    api.faults.denied.add("GetEntitlements")
    api.faults.throttle["DescribeAgreement"] = 2
    e = enricher(state, api, attempts=2)
    sub = subscription()
    assert e.enrich(sub) == sub
    ended = Event(
        kind=Kind.AGREEMENT_ENDED, channel=Channel.EVENTBRIDGE, agreement_id=AGREEMENT
    )
    assert e.enrich(ended) == ended
    assert entitlement_summary(state, CODE, "QbT3kZx9LmA") is None
    assert api.calls == {"GetEntitlements": 1, "DescribeAgreement": 2}


def test_agreement_without_amount_or_dates_is_described(api: Emulator) -> None:
    ended = Event(
        kind=Kind.AGREEMENT_ENDED,
        channel=Channel.EVENTBRIDGE,
        agreement_id=AGREEMENT,
        agreement_status="RENEWED",
        start_date=date(2026, 3, 1),  # known facts are never overwritten
    )
    e = enricher(None, api)  # memory cache
    out = e.enrich(ended)
    assert out.purchase_amount == Money(Decimal("48000.00"), "USD")
    assert out.start_date == date(2026, 3, 1)
    assert out.end_date == date(2027, 3, 2)
    assert out.acceptance_date == date(2026, 3, 3)
    assert out.customer_account_id == "210987654321"
    assert out.offer_id == "offer-7j3k9m2n5b8vc"
    assert out.product_id == "prod-7hq2kx3m9pz4d"
    assert out.agreement_status == "RENEWED"
    assert e.enrich(ended) == out  # from the cache
    assert api.calls == {"DescribeAgreement": 1}
    assert api.log[0][1] == {"agreementId": AGREEMENT}


def test_complete_agreement_event_needs_no_call(api: Emulator) -> None:
    full = Event(
        kind=Kind.AGREEMENT_CREATED,
        channel=Channel.EVENTBRIDGE,
        agreement_id=AGREEMENT,
        purchase_amount=Money(Decimal("1.00"), "USD"),
        start_date=date(2026, 1, 1),
        end_date=date(2027, 1, 1),
    )
    assert enricher(None, api).enrich(full) == full
    assert api.calls == {}


def test_usage_pricing_and_open_end_add_nothing(api: Emulator) -> None:
    api.put(
        AGREEMENT,
        updated="2026-03-03T14:07:15Z",
        amount="0",
        end="9999-01-01T00:00:00Z",
    )
    event = Event(
        kind=Kind.AGREEMENT_CREATED, channel=Channel.EVENTBRIDGE, agreement_id=AGREEMENT
    )
    out = enricher(None, api).enrich(event)
    assert out.purchase_amount is None
    assert out.end_date is None
    assert out.start_date == date(2026, 3, 3)


def test_cache_expires_after_ttl(api: Emulator, state: sqlite3.Connection) -> None:
    now = [1000.0]
    e = enricher(state, api, ttl=60, clock=lambda: now[0])
    event = Event(
        kind=Kind.AGREEMENT_CREATED, channel=Channel.EVENTBRIDGE, agreement_id=AGREEMENT
    )
    e.enrich(event)
    now[0] += 30
    e.enrich(event)
    assert e.calls == 1
    now[0] += 31
    e.enrich(event)
    assert e.calls == 2
    assert api.calls == {"DescribeAgreement": 2}


def test_disabled_or_without_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    event = Event(
        kind=Kind.AGREEMENT_CREATED, channel=Channel.EVENTBRIDGE, agreement_id=AGREEMENT
    )
    assert not Enricher(EnrichmentSettings()).enabled
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    e = Enricher(EnrichmentSettings(enabled=True))
    assert not e.enabled
    assert e.enrich(event) == event
