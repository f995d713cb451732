"""The Agreement API source against the emulator: full and incremental passes,
throttling, failures that do not stop a pass, names, roles, and the merge of
snapshots with email (unmodified boto3 over loopback HTTP)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from agreement_emulator import Emulator
from tenacity import wait_none

from mailsync.aws.agreement_api import AgreementApi, ApiCaller
from mailsync.aws.agreements_source import AgreementsSource
from mailsync.config import Settings, from_dict
from mailsync.crm.outbox import Outbox
from mailsync.crm.sqlite_store import SqliteStore
from mailsync.crm.sync import CrmSync
from mailsync.event import Channel, Kind, Trust
from mailsync.parsers.files import parse_path
from mailsync.statedb import open_db

ROOT = Path(__file__).resolve().parent.parent
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def agmt(i: int) -> str:
    return f"agmt-{i:025d}"


def when(hours: float) -> str:
    return (BASE + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_settings(tmp: Path, emulator: Emulator, **extra: object) -> Settings:
    return from_dict(
        {
            "state": {"path": str(tmp / "state.sqlite3")},
            "crm": {"backend": "sqlite", "sqlite": {"path": str(tmp / "crm.sqlite3")}},
            "source": {"agreements": {"endpoint_url": emulator.url, **extra}},
        }
    )


@pytest.fixture
def state(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = open_db(tmp_path / "state.sqlite3")
    yield conn
    conn.close()


def source(
    settings: Settings, conn: sqlite3.Connection, *, attempts: int = 4
) -> AgreementsSource:
    assert settings.agreements is not None
    api = AgreementApi(
        endpoint_url=settings.agreements.endpoint_url,
        caller=ApiCaller(attempts=attempts, wait=wait_none()),
    )
    return AgreementsSource(settings.agreements, conn, api=api)


def one_pass(src: AgreementsSource, conn: sqlite3.Connection) -> object:
    return src.run_pass(Outbox(conn), threading.Event())


def crm_agreements(settings: Settings, conn: sqlite3.Connection) -> dict[str, dict]:
    sync = CrmSync(settings, conn)
    try:
        sync.flush()
    finally:
        sync.close()
    store = SqliteStore(settings.crm.sqlite_path)
    try:
        rows = store.fetch_all("AWS_Agreement__c")
        assert store.fetch_all("AWS_Marketplace_Event__c") == []  # state, not events
    finally:
        store.close()
    return {r["Agreement_ID__c"]: r for r in rows}


def test_full_then_unchanged_then_one_change(
    agreement_api: Emulator, tmp_path: Path, state: sqlite3.Connection
) -> None:
    for i in range(120):
        agreement_api.put(agmt(i), updated=when(i), acceptor=f"{i + 1:012d}")
    settings = make_settings(tmp_path, agreement_api)
    src = source(settings, state)

    first = one_pass(src, state)
    assert agreement_api.calls == {"SearchAgreements": 3, "DescribeAgreement": 120}
    assert (first.synced, first.failed) == (120, 0)
    assert src.cursor() == when(119)
    events = [e for _, e in Outbox(state).pending()]
    assert len(events) == 120
    assert {e.channel for e in events} == {Channel.API}
    assert {e.trust for e in events} == {Trust.VERIFIED}
    assert events[0].source_id == f"{agmt(0)}@{when(0)}"
    records = crm_agreements(settings, state)
    assert len(records) == 120
    assert records[agmt(7)]["Status__c"] == "Active"
    assert records[agmt(7)]["Customer_AWS_Account_ID__c"] == "000000000008"
    assert records[agmt(7)]["Purchase_Amount__c"] == 48000.0
    assert records[agmt(7)]["Last_Event_Kind__c"] == "agreement.snapshot"

    agreement_api.reset_calls()
    second = one_pass(src, state)
    assert agreement_api.calls == {"SearchAgreements": 1}  # no DescribeAgreement
    assert second.synced == 0
    # The overlap re-lists the last agreement; its marker is unchanged.
    filters = agreement_api.log[0][1]["filters"]
    assert {
        "name": "AfterLastUpdateTime",
        "values": [when(119 - 300 / 3600)],
    } in filters

    agreement_api.reset_calls()
    agreement_api.put(agmt(3), updated=when(200), status="CANCELLED")
    third = one_pass(src, state)
    assert agreement_api.calls == {"SearchAgreements": 1, "DescribeAgreement": 1}
    assert third.synced == 1
    assert src.cursor() == when(200)
    assert crm_agreements(settings, state)[agmt(3)]["Status__c"] == "Cancelled"


def test_since_limits_the_first_pass(
    agreement_api: Emulator, tmp_path: Path, state: sqlite3.Connection
) -> None:
    agreement_api.put(agmt(1), updated="2025-12-31T23:59:00Z")
    agreement_api.put(agmt(2), updated="2026-01-01T00:00:00Z")
    src = source(make_settings(tmp_path, agreement_api, since="2026-01-01"), state)
    one_pass(src, state)
    assert [e.agreement_id for _, e in Outbox(state).pending()] == [agmt(2)]


def test_throttling_mid_pass_is_retried(
    agreement_api: Emulator, tmp_path: Path, state: sqlite3.Connection
) -> None:
    for i in range(5):
        agreement_api.put(agmt(i), updated=when(i))
    agreement_api.faults.throttle["DescribeAgreement"] = 2
    agreement_api.faults.throttle["SearchAgreements"] = 1
    src = source(make_settings(tmp_path, agreement_api), state)
    result = one_pass(src, state)
    assert (result.synced, result.failed) == (5, 0)
    assert agreement_api.calls == {"SearchAgreements": 2, "DescribeAgreement": 7}
    assert src.api.caller.counts["describe_agreement"] == 7


def test_one_failing_agreement_does_not_stop_the_pass(
    agreement_api: Emulator, tmp_path: Path, state: sqlite3.Connection
) -> None:
    for i in range(6):
        agreement_api.put(agmt(i), updated=when(i))
    agreement_api.faults.throttle_agreements.add(agmt(2))
    agreement_api.faults.missing.add(agmt(4))
    src = source(make_settings(tmp_path, agreement_api), state, attempts=3)
    result = one_pass(src, state)
    assert (result.synced, result.failed) == (4, 2)
    assert any("ThrottlingException" in e for e in result.errors)
    assert any("ResourceNotFoundException" in e for e in result.errors)
    # The cursor stays before the oldest failure, so both are listed again.
    assert src.cursor() == when(2 - 1 / 3600)

    agreement_api.faults.throttle_agreements.clear()
    agreement_api.faults.missing.clear()
    agreement_api.reset_calls()
    again = one_pass(src, state)
    assert (again.synced, again.failed) == (2, 0)
    assert agreement_api.calls["DescribeAgreement"] == 2
    assert src.cursor() == when(5)
    ids = sorted(e.agreement_id for _, e in Outbox(state).pending())
    assert ids == [agmt(i) for i in range(6)]


def test_listing_denied_keeps_the_cursor(
    agreement_api: Emulator, tmp_path: Path, state: sqlite3.Connection
) -> None:
    agreement_api.put(agmt(1), updated=when(1))
    src = source(make_settings(tmp_path, agreement_api), state)
    one_pass(src, state)
    agreement_api.faults.denied.add("SearchAgreements")
    agreement_api.put(agmt(2), updated=when(2))
    result = one_pass(src, state)
    assert result.failed == 1
    assert "AccessDeniedException" in result.errors[0]
    assert src.cursor() == when(1)
    assert src.check()[0].ok is False


def test_terms_fill_amount_and_currency(
    agreement_api: Emulator, tmp_path: Path, state: sqlite3.Connection
) -> None:
    schedule = {
        "paymentScheduleTerm": {
            "type": "PaymentScheduleTerm",
            "currencyCode": "EUR",
            "schedule": [
                {"chargeDate": 1767312000, "chargeAmount": "1000.25"},
                {"chargeDate": 1798848000, "chargeAmount": "2000.25"},
            ],
        }
    }
    agreement_api.put(
        agmt(1), updated=when(1), amount=None, currency=None, terms=[schedule]
    )
    agreement_api.put(agmt(2), updated=when(2), amount="0", currency="USD", end=None)
    src = source(make_settings(tmp_path, agreement_api), state)
    one_pass(src, state)
    assert agreement_api.calls["GetAgreementTerms"] == 1  # only where it adds
    events = {e.agreement_id: e for _, e in Outbox(state).pending()}
    first = events[agmt(1)].purchase_amount
    assert first is not None and (str(first.amount), first.currency) == (
        "3000.50",
        "EUR",
    )
    assert events[agmt(2)].end_date is None  # pay-as-you-go: no end


def test_channel_partner_role_and_catalog_names(
    agreement_api: Emulator, tmp_path: Path, state: sqlite3.Connection
) -> None:
    agreement_api.entities = {
        "offer-7j3k9m2n5b8vc": "Acme annual (EU)",
        "prod-7hq2kx3m9pz4d": "Acme Analytics",
    }
    agreement_api.put(agmt(1), updated=when(1), proposer="444455556666")
    agreement_api.put(agmt(2), updated=when(2), proposer="444455556666")
    settings = make_settings(
        tmp_path, agreement_api, role="channel_partner", names=True
    )
    src = source(settings, state)
    one_pass(src, state)
    assert agreement_api.calls["DescribeEntity"] == 2  # cached for the second
    event = Outbox(state).pending()[0][1]
    assert event.channel_partner_account_id == "444455556666"
    assert event.isv_account_id is None
    assert event.recipient_role == "channel_partner"
    assert (event.offer_name, event.product_name) == (
        "Acme annual (EU)",
        "Acme Analytics",
    )


def test_stale_active_snapshot_after_cancelled_email_stays_cancelled(
    agreement_api: Emulator, tmp_path: Path, state: sqlite3.Connection
) -> None:
    email = parse_path(ROOT / "examples/inbox/08-wingtip-agreement-cancelled.eml")
    assert email.kind is Kind.AGREEMENT_CANCELLED and email.agreement_id
    Outbox(state).submit(email)
    # AWS's index still says ACTIVE, even with a later lastUpdateTime.
    agreement_api.put(
        email.agreement_id,
        updated="2026-11-04T08:00:00Z",
        acceptor=str(email.customer_account_id),
        amount="12000.00",
    )
    settings = make_settings(tmp_path, agreement_api)
    one_pass(source(settings, state), state)
    record = crm_agreements_with_events(settings, state)[email.agreement_id]
    assert record["Status__c"] == "Cancelled"
    assert record["Purchase_Amount__c"] == 12000.0  # the snapshot's facts merge


def crm_agreements_with_events(
    settings: Settings, conn: sqlite3.Connection
) -> dict[str, dict]:
    sync = CrmSync(settings, conn)
    try:
        sync.flush()
    finally:
        sync.close()
    store = SqliteStore(settings.crm.sqlite_path)
    try:
        events = store.fetch_all("AWS_Marketplace_Event__c")
        assert [e["Channel__c"] for e in events] == ["email"]
        return {r["Agreement_ID__c"]: r for r in store.fetch_all("AWS_Agreement__c")}
    finally:
        store.close()
