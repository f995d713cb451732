"""Enrichment through GetEntitlements / DescribeAgreement (botocore Stubber)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from tenacity import wait_none

from mailsync.aws.enrich import Enricher, entitlement_summary
from mailsync.config import EnrichmentSettings
from mailsync.event import Channel, Event, Kind, Money
from mailsync.statedb import open_db

CODE = "4x9k2m7q1z8p3v6b0n5c2w7r1"
AGREEMENT = "agmt-3k8d0v7q2m5xw9b1c4n6r8t0y"
ON = EnrichmentSettings(enabled=True)


def client(service: str) -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def state(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = open_db(tmp_path / "state.sqlite3")
    yield conn
    conn.close()


@pytest.fixture
def ent() -> Iterator[tuple[Any, Stubber]]:
    c = client("marketplace-entitlement")
    with Stubber(c) as stub:
        yield c, stub
        stub.assert_no_pending_responses()


@pytest.fixture
def agr() -> Iterator[tuple[Any, Stubber]]:
    c = client("marketplace-agreement")
    with Stubber(c) as stub:
        yield c, stub
        stub.assert_no_pending_responses()


def enricher(
    state: sqlite3.Connection | None,
    ent: tuple[Any, Stubber],
    agr: tuple[Any, Stubber],
    **kw: Any,
) -> Enricher:
    return Enricher(
        ON,
        state=state,
        entitlement_client=ent[0],
        agreement_client=agr[0],
        wait=wait_none(),
        **kw,
    )


def subscription(**kw: Any) -> Event:
    fields: dict[str, Any] = {
        "source_id": "m-1",
        "customer_identifier": "QbT3kZx9LmA",
        "product_code": CODE,
        **kw,
    }
    return Event(kind=Kind.SUBSCRIPTION_SUCCEEDED, channel=Channel.SNS, **fields)


ENTITLEMENTS = {
    "Entitlements": [
        {
            "CustomerAWSAccountId": "010987654321",
            "CustomerIdentifier": "QbT3kZx9LmA",
            "ProductCode": CODE,
            "Dimension": "admin_users",
            "Value": {"IntegerValue": 25},
            "ExpirationDate": datetime(2027, 3, 1, tzinfo=UTC),
        },
        {
            "CustomerAWSAccountId": "010987654321",
            "CustomerIdentifier": "QbT3kZx9LmA",
            "ProductCode": CODE,
            "Dimension": "sso",
            "Value": {"BooleanValue": True},
        },
    ]
}


def test_subscription_gets_account_and_summary(
    state: sqlite3.Connection, ent: tuple[Any, Stubber], agr: tuple[Any, Stubber]
) -> None:
    # An empty first page with a NextToken: keep paging.
    ent[1].add_response(
        "get_entitlements",
        {"Entitlements": [], "NextToken": "t1"},
        {"ProductCode": CODE, "Filter": {"CUSTOMER_IDENTIFIER": ["QbT3kZx9LmA"]}},
    )
    ent[1].add_response(
        "get_entitlements",
        ENTITLEMENTS,
        {
            "ProductCode": CODE,
            "Filter": {"CUSTOMER_IDENTIFIER": ["QbT3kZx9LmA"]},
            "NextToken": "t1",
        },
    )
    e = enricher(state, ent, agr)
    out = e.enrich(subscription())
    assert out.customer_account_id == "010987654321"
    assert out.customer_account_ids == ("010987654321",)
    assert entitlement_summary(state, CODE, "QbT3kZx9LmA") == (
        "admin_users=25 (until 2027-03-01); sso=true"
    )
    # Cached: the same lookup makes no second call (Stubber would fail).
    again = e.enrich(subscription(source_id="m-2"))
    assert again.customer_account_id == "010987654321"
    assert e.calls == 2


def test_known_account_filters_by_account(
    state: sqlite3.Connection, ent: tuple[Any, Stubber], agr: tuple[Any, Stubber]
) -> None:
    ent[1].add_response(
        "get_entitlements",
        ENTITLEMENTS,
        {"ProductCode": CODE, "Filter": {"CUSTOMER_AWS_ACCOUNT_ID": ["010987654321"]}},
    )
    event = Event(
        kind=Kind.ENTITLEMENT_UPDATED,
        channel=Channel.SNS,
        customer_identifier="QbT3kZx9LmA",
        customer_account_id="010987654321",
        customer_account_ids=("010987654321",),
        product_code=CODE,
    )
    assert enricher(state, ent, agr).enrich(event) == event


def test_throttling_retried_then_success(
    state: sqlite3.Connection, ent: tuple[Any, Stubber], agr: tuple[Any, Stubber]
) -> None:
    ent[1].add_client_error(
        "get_entitlements", "ThrottlingException", http_status_code=400
    )
    ent[1].add_client_error(
        "get_entitlements", "InternalServiceErrorException", http_status_code=500
    )
    ent[1].add_response("get_entitlements", ENTITLEMENTS)
    out = enricher(state, ent, agr).enrich(subscription())
    assert out.customer_account_id == "010987654321"


def test_failure_never_blocks(
    state: sqlite3.Connection, ent: tuple[Any, Stubber], agr: tuple[Any, Stubber]
) -> None:
    ent[1].add_client_error(
        "get_entitlements", "AccessDeniedException", http_status_code=403
    )
    for _ in range(2):
        agr[1].add_client_error(
            "describe_agreement", "ThrottlingException", http_status_code=400
        )
    e = enricher(state, ent, agr, attempts=2)
    sub = subscription()
    assert e.enrich(sub) == sub
    ended = Event(
        kind=Kind.AGREEMENT_ENDED, channel=Channel.EVENTBRIDGE, agreement_id=AGREEMENT
    )
    assert e.enrich(ended) == ended
    assert entitlement_summary(state, CODE, "QbT3kZx9LmA") is None


DESCRIBED = {
    "agreementId": AGREEMENT,
    "agreementType": "PurchaseAgreement",
    "acceptor": {"accountId": "210987654321"},
    "proposer": {"accountId": "123456789012"},
    "acceptanceTime": datetime(2026, 3, 3, 14, 7, 11, tzinfo=UTC),
    "startTime": datetime(2026, 3, 3, 14, 7, 11, tzinfo=UTC),
    "endTime": datetime(2027, 3, 2, 23, 59, 59, tzinfo=UTC),
    "estimatedCharges": {"agreementValue": "48000.00", "currencyCode": "USD"},
    "proposalSummary": {
        "offerId": "offer-7j3k9m2n5b8vc",
        "resources": [{"id": "prod-7hq2kx3m9pz4d", "type": "SaaSProduct"}],
    },
    "status": "ACTIVE",
}


def test_agreement_without_amount_or_dates_is_described(
    ent: tuple[Any, Stubber], agr: tuple[Any, Stubber]
) -> None:
    agr[1].add_response("describe_agreement", DESCRIBED, {"agreementId": AGREEMENT})
    ended = Event(
        kind=Kind.AGREEMENT_ENDED,
        channel=Channel.EVENTBRIDGE,
        agreement_id=AGREEMENT,
        agreement_status="RENEWED",
        start_date=date(2026, 3, 1),  # known facts are never overwritten
    )
    e = enricher(None, ent, agr)  # memory cache
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


def test_complete_agreement_event_needs_no_call(
    ent: tuple[Any, Stubber], agr: tuple[Any, Stubber]
) -> None:
    full = Event(
        kind=Kind.AGREEMENT_CREATED,
        channel=Channel.EVENTBRIDGE,
        agreement_id=AGREEMENT,
        purchase_amount=Money(Decimal("1.00"), "USD"),
        start_date=date(2026, 1, 1),
        end_date=date(2027, 1, 1),
    )
    assert enricher(None, ent, agr).enrich(full) == full


def test_usage_pricing_and_open_end_add_nothing(
    ent: tuple[Any, Stubber], agr: tuple[Any, Stubber]
) -> None:
    payg = {
        **DESCRIBED,
        "estimatedCharges": {"agreementValue": "0", "currencyCode": "USD"},
        "endTime": datetime(9999, 1, 1, tzinfo=UTC),
    }
    agr[1].add_response("describe_agreement", payg)
    event = Event(
        kind=Kind.AGREEMENT_CREATED, channel=Channel.EVENTBRIDGE, agreement_id=AGREEMENT
    )
    out = enricher(None, ent, agr).enrich(event)
    assert out.purchase_amount is None
    assert out.end_date is None
    assert out.start_date == date(2026, 3, 3)


def test_cache_expires_after_ttl(
    ent: tuple[Any, Stubber], agr: tuple[Any, Stubber], state: sqlite3.Connection
) -> None:
    now = [1000.0]
    agr[1].add_response("describe_agreement", DESCRIBED)
    agr[1].add_response("describe_agreement", DESCRIBED)
    e = enricher(state, ent, agr, ttl=60, clock=lambda: now[0])
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
    e = Enricher(ON)
    assert not e.enabled
    assert e.enrich(event) == event
