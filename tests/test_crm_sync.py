"""The outbox flusher on the embedded SQLite CRM: batches, refusals, outages,
Account names, and the order-independence property of the merge rules."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsync.config import Settings, from_dict
from mailsync.crm import mapping as m
from mailsync.crm.backend import WriteResult
from mailsync.crm.outbox import Outbox
from mailsync.crm.sqlite_store import SqliteStore
from mailsync.crm.sync import CrmSync
from mailsync.errors import CrmPausedError
from mailsync.event import Channel, Event, Kind, Money
from mailsync.sources.base import CheckLine
from mailsync.statedb import open_db

BUYER = "111122223333"
OTHER = "222233334444"


def at(hour: int) -> datetime:
    return datetime(2024, 5, 1, hour, 0, tzinfo=UTC)


def make_settings(tmp: Path) -> Settings:
    return from_dict(
        {
            "state": {"path": str(tmp / "state.sqlite3")},
            "crm": {"backend": "sqlite", "sqlite": {"path": str(tmp / "crm.sqlite3")}},
        }
    )


def realistic_events() -> list[Event]:
    """Email, EventBridge and SNS deliveries about the same agreements."""
    usd = Money(Decimal("48000.00"), "USD")
    return [
        Event(
            kind=Kind.OFFER_PUBLISHED,
            source_id="pub@aws",
            occurred_at=at(8),
            offer_id="offer-1",
            offer_name="Acme annual",
            customer_account_ids=(BUYER, OTHER),
            offer_expiration_date=date(2024, 6, 1),
        ),
        Event(
            kind=Kind.OFFER_RELEASED,
            channel=Channel.EVENTBRIDGE,
            source_id="eb-rel",
            occurred_at=at(8),
            offer_id="offer-1",
            product_id="prod-1",
        ),
        Event(
            kind=Kind.OFFER_ACCEPTED,
            source_id="acc@aws",
            occurred_at=at(10),
            agreement_id="agmt-1",
            offer_id="offer-1",
            customer_account_id=BUYER,
            agreement_status="ACTIVE",
            purchase_amount=usd,
            end_date=date(2025, 4, 30),
        ),
        Event(
            kind=Kind.AGREEMENT_CREATED,
            channel=Channel.EVENTBRIDGE,
            source_id="eb-created",
            occurred_at=at(10),
            agreement_id="agmt-1",
            offer_id="offer-1",
            customer_account_id=BUYER,
            customer_name="Acme",
            agreement_status="ACTIVE",
            start_date=date(2024, 5, 1),
        ),
        Event(
            kind=Kind.AGREEMENT_STARTED,
            source_id="start@aws",
            occurred_at=at(11),
            agreement_id="agmt-1",
            customer_account_id=BUYER,
        ),
        Event(
            kind=Kind.AGREEMENT_CANCELLED,
            source_id="cancel@aws",
            occurred_at=at(15),
            agreement_id="agmt-1",
            customer_account_id=BUYER,
            agreement_status="CANCELLED",
        ),
        Event(
            kind=Kind.AGREEMENT_ENDED,
            channel=Channel.EVENTBRIDGE,
            source_id="eb-end",
            occurred_at=at(15),
            agreement_id="agmt-1",
            agreement_status="CANCELLED",
        ),
        Event(
            kind=Kind.AGREEMENT_CREATED,
            channel=Channel.EVENTBRIDGE,
            source_id="eb-new",
            occurred_at=at(16),
            agreement_id="agmt-2",
            previous_agreement_id="agmt-1",
            customer_account_id=OTHER,
            agreement_status="ACTIVE",
        ),
        Event(
            kind=Kind.SUBSCRIPTION_SUCCEEDED,
            channel=Channel.SNS,
            source_id="sns-1",
            occurred_at=at(9),
            product_code="code1",
            customer_identifier="cust1",
        ),
        Event(
            kind=Kind.SUBSCRIPTION_UNSUBSCRIBED,
            channel=Channel.SNS,
            source_id="sns-2",
            occurred_at=at(12),
            product_code="code1",
            customer_identifier="cust1",
        ),
        Event(
            kind=Kind.SUBSCRIPTION_SUCCEEDED,
            channel=Channel.SNS,
            source_id="sns-3",
            occurred_at=at(13),
            product_code="code1",
            customer_identifier="cust1",
            customer_account_id=OTHER,
        ),
    ]


def records(store: SqliteStore) -> dict[str, list[dict[str, Any]]]:
    """Every record, the generated Ids replaced by what they point at."""
    ids = {r["Id"]: r["AWS_Account_ID__c"] for r in store.fetch_all(m.ACCOUNT)}
    out = {}
    for obj in m.OBJECTS:
        rows = []
        for r in store.fetch_all(obj):
            r = dict(r)
            r.pop("Id")
            if "Account__c" in r:
                r["Account__c"] = ids.get(r["Account__c"])
            rows.append(r)
        out[obj] = sorted(rows, key=lambda r: str(r[m.EXTERNAL_ID[obj]]))
    return out


def run_batches(tmp: Path, batches: Sequence[Sequence[Event]]) -> dict[str, Any]:
    s = make_settings(tmp)
    conn = open_db(s.state.path)
    sync = CrmSync(s, conn)
    outbox = Outbox(conn)
    for batch in batches:
        for event in batch:
            outbox.submit(event)
        result = sync.flush()
        assert result.pending == 0 and result.paused_reason is None
    store = SqliteStore(s.crm.sqlite_path)
    out = records(store)
    store.close()
    sync.close()
    conn.close()
    return out


def test_flush_writes_the_expected_records(tmp_path: Path) -> None:
    got = run_batches(tmp_path, [realistic_events()])
    accounts = {r["AWS_Account_ID__c"]: r["Name"] for r in got[m.ACCOUNT]}
    assert accounts == {BUYER: "Acme", OTHER: f"AWS account {OTHER}"}
    agmt1, agmt2 = got[m.AGREEMENT]
    assert agmt1["Agreement_ID__c"] == "agmt-1"
    assert agmt1["Status__c"] == "Cancelled"
    assert agmt1["Account__c"] == BUYER
    assert agmt1["Purchase_Amount__c"] == 48000.0
    assert agmt1["Currency__c"] == "USD"
    assert agmt1["Start_Date__c"] == "2024-05-01"
    assert agmt1["Last_Event_Kind__c"] in ("agreement.cancelled", "agreement.ended")
    assert agmt2["Previous_Agreement_ID__c"] == "agmt-1"
    assert agmt2["Status__c"] == "Active"
    (offer,) = got[m.OFFER]
    assert offer["Status__c"] == "Accepted"
    assert offer["Customer_AWS_Account_IDs__c"] == f"{BUYER},{OTHER}"
    assert offer["Product_ID__c"] == "prod-1"
    (subscription,) = got[m.SUBSCRIPTION]
    assert subscription["Subscription_Key__c"] == "code1:cust1"
    assert subscription["Status__c"] == "Subscribed"
    assert subscription["Customer_AWS_Account_ID__c"] == OTHER
    keys = [r["Event_Key__c"] for r in got[m.EVENT]]
    assert keys == [
        "agreement:agmt-1:created",
        "agreement:agmt-1:ended",
        "agreement:agmt-1:started",
        "agreement:agmt-2:created",
        "offer:offer-1:published",
        "sns:sns-1",
        "sns:sns-2",
        "sns:sns-3",
    ]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_order_batching_or_repeat_leaves_the_same_records(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    events = realistic_events()
    expected = run_batches(tmp_path_factory.mktemp("ref"), [events])
    shuffled = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(events) - 1), max_size=4)))
    batches = [
        shuffled[i:j] for i, j in zip([0, *cuts], [*cuts, len(events)], strict=True)
    ]
    # the same inputs again, as other deliveries (new transport IDs)
    again = [e.replace(source_id=f"again-{e.source_id}") for e in shuffled]
    got = run_batches(tmp_path_factory.mktemp("run"), [*batches, again])
    again_keys = {f"email:again-{e.source_id}" for e in events}
    got[m.EVENT] = [r for r in got[m.EVENT] if r["Event_Key__c"] not in again_keys]
    for obj in (m.ACCOUNT, m.AGREEMENT, m.OFFER, m.SUBSCRIPTION):
        assert got[obj] == expected[obj]
    assert {r["Event_Key__c"] for r in got[m.EVENT]} >= {
        r["Event_Key__c"] for r in expected[m.EVENT]
    }


def test_second_flush_writes_nothing(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    conn = open_db(s.state.path)
    sync = CrmSync(s, conn)
    for event in realistic_events():
        Outbox(conn).submit(event)
    first = sync.flush()
    assert first.written == 11 and first.records == 14  # 2 + 2 + 1 + 1 + 8 event rows
    Outbox(conn).submit(realistic_events()[4].replace(source_id="other@aws"))
    second = sync.flush()
    # the same business event again: no new row, no other record rewritten
    # (its row may take the other delivery's ID: ties break by content digest)
    assert second.written == 1
    assert {(obj, r.get("Event_Key__c")) for obj, r in second.writes} <= {
        (m.EVENT, "agreement:agmt-1:started")
    }
    store = SqliteStore(s.crm.sqlite_path)
    assert len(store.fetch_all(m.EVENT)) == 8


def _crm(s: Settings) -> sqlite3.Connection:
    SqliteStore(s.crm.sqlite_path).close()  # create the tables
    return sqlite3.connect(s.crm.sqlite_path, isolation_level=None)


def test_refused_record_is_dead_lettered_and_retried(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    crm = _crm(s)
    # a validation rule, the SQLite counterpart of a Salesforce one
    crm.execute(
        'CREATE TRIGGER no_cancel BEFORE UPDATE OF "Status__c" ON "AWS_Agreement__c" '
        "WHEN NEW.Status__c = 'Cancelled' BEGIN SELECT RAISE(ABORT, "
        "'FIELD_CUSTOM_VALIDATION_EXCEPTION: cancellations need approval'); END"
    )
    conn = open_db(s.state.path)
    sync = CrmSync(s, conn)
    events = realistic_events()
    for event in events[:5]:
        Outbox(conn).submit(event)
    assert sync.flush().dead_lettered == 0
    Outbox(conn).submit(events[5])
    result = sync.flush()
    assert result.dead_lettered == 1 and result.pending == 0
    status = sync.status()
    assert status["dead_letters"]["count"] == 1
    (letter,) = status["dead_letters"]["latest"]
    assert letter["object"] == m.AGREEMENT and letter["external_id"] == "agmt-1"
    assert letter["error_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert letter["message"] == "cancellations need approval"
    row = crm.execute(
        'SELECT "Status__c" FROM "AWS_Agreement__c" WHERE "Agreement_ID__c" = ?',
        ("agmt-1",),
    ).fetchone()
    assert row == ("Active",)
    # the rest of the batch landed
    assert crm.execute(
        'SELECT count(*) FROM "AWS_Marketplace_Event__c"'
    ).fetchone() == (4,)
    crm.execute("DROP TRIGGER no_cancel")
    assert sync.retry_dead_letters() == 1
    retried = sync.flush()
    assert retried.records == 1 and retried.dead_lettered == 0
    assert sync.status()["dead_letters"]["count"] == 0
    row = crm.execute(
        'SELECT "Status__c" FROM "AWS_Agreement__c" WHERE "Agreement_ID__c" = ?',
        ("agmt-1",),
    ).fetchone()
    assert row == ("Cancelled",)


def test_locked_crm_keeps_events_pending(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    crm = _crm(s)
    conn = open_db(s.state.path)
    sync = CrmSync(s, conn, SqliteStore(s.crm.sqlite_path, busy_timeout=0.05))
    for event in realistic_events():
        Outbox(conn).submit(event)
    crm.execute("BEGIN EXCLUSIVE")
    result = sync.flush()
    assert result.written == 0 and result.pending == 11
    assert result.paused_reason is not None and "locked" in result.paused_reason
    assert "locked" in (sync.status()["last_error"] or "")
    crm.execute("ROLLBACK")
    result = sync.flush()
    assert result.written == 11 and result.pending == 0
    assert crm.execute('SELECT count(*) FROM "AWS_Agreement__c"').fetchone() == (2,)


def test_existing_account_name_is_kept_and_placeholder_replaced(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    crm = _crm(s)
    crm.execute(
        'INSERT INTO "Account" ("Id", "AWS_Account_ID__c", "Name") '
        "VALUES ('001X', ?, 'Acme Holdings (sales)')",
        (BUYER,),
    )
    conn = open_db(s.state.path)
    sync = CrmSync(s, conn)
    outbox = Outbox(conn)
    outbox.submit(
        Event(
            kind=Kind.AGREEMENT_STARTED,
            source_id="a",
            occurred_at=at(9),
            agreement_id="agmt-1",
            customer_account_id=BUYER,
            customer_name="Acme",
        )
    )
    outbox.submit(
        Event(
            kind=Kind.AGREEMENT_STARTED,
            source_id="b",
            occurred_at=at(9),
            agreement_id="agmt-2",
            customer_account_id=OTHER,
        )
    )
    sync.flush()
    names = dict(crm.execute('SELECT "AWS_Account_ID__c", "Name" FROM "Account"'))
    assert names == {BUYER: "Acme Holdings (sales)", OTHER: f"AWS account {OTHER}"}
    outbox.submit(
        Event(
            kind=Kind.AGREEMENT_STARTED,
            source_id="c",
            occurred_at=at(10),
            agreement_id="agmt-2",
            customer_account_id=OTHER,
            customer_name="Beta",
        )
    )
    sync.flush()
    names = dict(crm.execute('SELECT "AWS_Account_ID__c", "Name" FROM "Account"'))
    assert names == {BUYER: "Acme Holdings (sales)", OTHER: "Beta"}
    # a user renames it: mailsync never touches that Name again
    crm.execute('UPDATE "Account" SET "Name" = \'Beta GmbH\' WHERE "Id" != \'001X\'')
    outbox.submit(
        Event(
            kind=Kind.AGREEMENT_STARTED,
            source_id="d",
            occurred_at=at(11),
            agreement_id="agmt-2",
            customer_account_id=OTHER,
            customer_name="B2",
        )
    )
    sync.flush()
    names = dict(crm.execute('SELECT "AWS_Account_ID__c", "Name" FROM "Account"'))
    assert names[OTHER] == "Beta GmbH"


class CountingCrm:
    """A CRM that counts calls (the API budget) and can run out of API calls,
    over the real SQLite store."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.name = "counting"
        self.calls = 0
        self.limit_reached = False

    def existing_account_names(self, account_ids: Sequence[str]) -> dict[str, str]:
        self.calls += 1
        return self.store.existing_account_names(account_ids)

    def upsert(
        self, obj: str, external_id_field: str, records: Sequence[Mapping[str, Any]]
    ) -> list[WriteResult]:
        if self.limit_reached:
            raise CrmPausedError("REQUEST_LIMIT_EXCEEDED: daily API limit reached")
        self.calls += 1
        return self.store.upsert(obj, external_id_field, records)

    def fetch_all(self, obj: str) -> list[dict[str, Any]]:
        return self.store.fetch_all(obj)

    def check(self) -> list[CheckLine]:
        return self.store.check()

    def usage(self) -> dict[str, Any] | None:
        return {"used": self.calls, "max": 15000}

    def close(self) -> None:
        self.store.close()


def test_backfill_api_budget(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    conn = open_db(s.state.path)
    crm = CountingCrm(SqliteStore(s.crm.sqlite_path))
    sync = CrmSync(s, conn, crm)
    outbox = Outbox(conn)
    for i in range(1000):
        agreement, buyer = f"agmt-{i // 4}", f"{100000000000 + i // 8}"
        outbox.submit(
            Event(
                kind=[
                    Kind.OFFER_ACCEPTED,
                    Kind.AGREEMENT_STARTED,
                    Kind.AGREEMENT_AMENDED,
                    Kind.AGREEMENT_CANCELLED,
                ][i % 4],
                source_id=f"m{i}",
                occurred_at=at(i % 4 + 1),
                agreement_id=agreement,
                offer_id=f"offer-{i // 4}",
                customer_account_id=buyer,
            )
        )
    result = sync.flush()
    assert result.written == 1000 and result.pending == 0
    # 1 Account query + Accounts, Agreements, Offers (2 calls each at 200)
    # + 1000 event rows (5 calls)
    assert crm.calls <= 15
    assert sync.status()["api_usage"] == {"used": crm.calls, "max": 15000}


def test_api_limit_pauses_flushing(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    conn = open_db(s.state.path)
    crm = CountingCrm(SqliteStore(s.crm.sqlite_path))
    crm.limit_reached = True
    sync = CrmSync(s, conn, crm)
    Outbox(conn).submit(realistic_events()[2])
    result = sync.flush()
    assert result.pending == 1
    assert result.paused_reason is not None
    assert result.paused_reason.startswith("REQUEST_LIMIT_EXCEEDED")
    status = sync.status()
    assert status["paused_until"] is not None
    assert status["paused_reason"] == "REQUEST_LIMIT_EXCEEDED: daily API limit reached"
    crm.limit_reached = False
    calls = crm.calls
    again = sync.flush()  # still paused: no CRM call at all
    assert again.pending == 1 and crm.calls == calls
    assert "paused until" in (again.paused_reason or "")


class CrashAfterWrite(CountingCrm):
    """Writes to the CRM, then dies before the state store commit."""

    def usage(self) -> dict[str, Any] | None:
        raise KeyboardInterrupt  # the process is killed mid-commit


def test_crash_between_crm_write_and_commit_replays_same_values(
    tmp_path: Path,
) -> None:
    s = make_settings(tmp_path)
    conn = open_db(s.state.path)
    events = realistic_events()
    for event in events:
        Outbox(conn).submit(event)
    with pytest.raises(KeyboardInterrupt):
        CrmSync(s, conn, CrashAfterWrite(SqliteStore(s.crm.sqlite_path))).flush()
    assert Outbox(conn).depth() == 11  # nothing was marked done
    store = SqliteStore(s.crm.sqlite_path)
    after_crash = records(store)
    result = CrmSync(s, conn, store).flush()
    assert result.written == 11 and result.pending == 0
    assert records(store) == after_crash
    assert after_crash == run_batches(tmp_path / "ref", [events])


def test_sqlite_store_from_an_older_model_gains_the_new_columns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crm.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        'CREATE TABLE "AWS_Agreement__c" ("Id" TEXT PRIMARY KEY,'
        ' "Agreement_ID__c" TEXT NOT NULL UNIQUE, "Status__c" TEXT)'
    )
    old.execute("INSERT INTO AWS_Agreement__c VALUES ('a01x', 'agmt-old', 'Active')")
    old.commit()
    old.close()
    store = SqliteStore(path)
    try:
        result = store.upsert(
            m.AGREEMENT,
            "Agreement_ID__c",
            [{"Agreement_ID__c": "agmt-old", "License_Status__c": "Provisioned"}],
        )
        assert result[0].ok
        (row,) = store.fetch_all(m.AGREEMENT)
        assert (row["Status__c"], row["License_Status__c"]) == ("Active", "Provisioned")
    finally:
        store.close()
