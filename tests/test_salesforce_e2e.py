"""Events -> Outbox -> CrmSync.flush -> the Salesforce emulator, compared with
the embedded SQLite store fed the same inputs (contract section 4: the merge
rules are the same for every backend)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sfemu import Emulator
from sfemu.testing import emulator, sf_secrets

from mailsync.config import Settings, from_dict
from mailsync.crm import mapping as m
from mailsync.crm.backend import CrmBackend
from mailsync.crm.outbox import Outbox
from mailsync.crm.salesforce import open_salesforce
from mailsync.crm.sqlite_store import SqliteStore
from mailsync.crm.sync import CrmSync
from mailsync.event import Channel, Event, Kind, Money
from mailsync.statedb import open_db

__all__ = ["emulator", "sf_secrets"]
BUYER, OTHER = "111122223333", "444455556666"


def at(hour: int, day: int = 1) -> datetime:
    return datetime(2024, 5, day, hour, 0, tzinfo=UTC)


def ev(kind: Kind, hour: int, channel: Channel = Channel.EMAIL, **kw: Any) -> Event:
    kw.setdefault("source_id", f"{kind}-{hour}-{kw.get('agreement_id')}@example")
    return Event(kind=kind, occurred_at=at(hour), channel=channel, **kw)


def scenario() -> list[Event]:
    accepted = ev(
        Kind.OFFER_ACCEPTED,
        9,
        agreement_id="agmt-1",
        offer_id="offer-1",
        offer_name="Pro plan",
        customer_account_id=BUYER,
        customer_account_ids=(BUYER,),
        customer_name="Acme Corp",
        purchase_amount=Money(Decimal("48000.00"), "USD"),
        acceptance_date=date(2024, 5, 1),
    )
    return [
        accepted,
        accepted,  # the same delivery twice
        ev(  # the same business event through EventBridge
            Kind.AGREEMENT_CREATED,
            9,
            Channel.EVENTBRIDGE,
            source_id="eb-1",
            agreement_id="agmt-1",
            offer_id="offer-1",
            customer_account_id=BUYER,
            customer_account_ids=(BUYER,),
            agreement_status="ACTIVE",
            start_date=date(2024, 5, 2),
            end_date=date(2025, 5, 1),
        ),
        ev(
            Kind.AGREEMENT_CANCELLED,
            14,
            agreement_id="agmt-1",
            customer_account_id=BUYER,
        ),
        ev(  # out of order: older than the cancellation, must not revive it
            Kind.AGREEMENT_STARTED,
            11,
            agreement_id="agmt-1",
            customer_account_id=BUYER,
            start_date=date(2024, 5, 2),
        ),
        ev(  # replacement chain: agmt-2 replaces agmt-1
            Kind.AGREEMENT_CREATED,
            15,
            Channel.EVENTBRIDGE,
            source_id="eb-2",
            agreement_id="agmt-2",
            previous_agreement_id="agmt-1",
            offer_id="offer-2",
            customer_account_id=BUYER,
            customer_account_ids=(BUYER,),
            agreement_status="ACTIVE",
        ),
        ev(  # an Account someone else named already
            Kind.OFFER_ACCEPTED,
            10,
            agreement_id="agmt-3",
            offer_id="offer-3",
            customer_account_id=OTHER,
            customer_account_ids=(OTHER,),
            customer_name="Parsed Name",
        ),
        ev(
            Kind.OFFER_PUBLISHED,
            8,
            offer_id="offer-3",
            offer_name="Enterprise",
            customer_account_ids=(OTHER,),
        ),
    ]


def settings(tmp: Path, backend: str, emu: Emulator | None = None) -> Settings:
    crm: dict[str, Any] = {
        "backend": backend,
        "sqlite": {"path": str(tmp / "crm.sqlite3")},
    }
    if emu is not None:
        crm["salesforce"] = {
            "username": emu.username,
            "endpoint_url": emu.url,
            "password_env": "MAILSYNC_TEST_SF_PASSWORD",
            "security_token_env": "MAILSYNC_TEST_SF_TOKEN",
        }
    return from_dict({"state": {"path": str(tmp / "state.sqlite3")}, "crm": crm})


def sync(tmp: Path, cfg: Settings, backend: CrmBackend, events: list[Event]) -> None:
    tmp.mkdir(exist_ok=True)
    conn = open_db(cfg.state.path)
    outbox = Outbox(conn)
    for event in events:
        outbox.submit(event)
    result = CrmSync(cfg, conn, backend=backend).flush()
    assert (result.pending, result.dead_lettered, result.paused_reason) == (0, 0, None)


def normalized(backend: CrmBackend, obj: str) -> dict[str, dict[str, Any]]:
    ext = m.EXTERNAL_ID[obj]
    rows = backend.fetch_all(obj)
    ids = (
        {r.get("Id"): r[m.EXTERNAL_ID[m.ACCOUNT]] for r in backend.fetch_all(m.ACCOUNT)}
        if obj == m.AGREEMENT
        else {}
    )
    out = {}
    for row in rows:
        rec = {}
        for k, v in row.items():
            if v is None or k in ("Id", "Account__c", "Account__r"):
                continue
            rec[k] = (
                round(float(v), 2)
                if isinstance(v, int | float) and not isinstance(v, bool)
                else v
            )
        if obj == m.AGREEMENT:
            ref = row.get("Account__r")
            rec["parent"] = (
                ref[m.EXTERNAL_ID[m.ACCOUNT]] if ref else ids.get(row.get("Account__c"))
            )
        out[str(row[ext])] = rec
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_salesforce_records_equal_sqlite_records(
    tmp_path: Path, emulator: Emulator, sf_secrets: None, seed: int
) -> None:
    events = scenario()
    random.Random(seed).shuffle(events)
    emulator.store.create(
        "Account", {"AWS_Account_ID__c": OTHER, "Name": "Their Own Name"}
    )
    sf_cfg = settings(tmp_path / "sf", "salesforce", emulator)
    sf = open_salesforce(sf_cfg.crm.salesforce)
    (tmp_path / "sf").mkdir()
    sync(tmp_path / "sf", sf_cfg, sf, events)
    lite_cfg = settings(tmp_path / "lite", "sqlite")
    lite = SqliteStore(lite_cfg.crm.sqlite_path)
    lite.upsert(
        m.ACCOUNT,
        "AWS_Account_ID__c",
        [{"AWS_Account_ID__c": OTHER, "Name": "Their Own Name"}],
    )
    sync(tmp_path / "lite", lite_cfg, lite, events)
    for obj in m.OBJECTS:
        assert normalized(sf, obj) == normalized(lite, obj), obj
    agreements = normalized(sf, m.AGREEMENT)
    assert agreements["agmt-1"]["Status__c"] == "Cancelled"
    assert agreements["agmt-2"]["Previous_Agreement_ID__c"] == "agmt-1"
    assert agreements["agmt-2"]["parent"] == BUYER
    names = {a["AWS_Account_ID__c"]: a["Name"] for a in emulator.records("Account")}
    assert names == {BUYER: "Acme Corp", OTHER: "Their Own Name"}
    keys = sorted(normalized(sf, m.EVENT))
    assert keys.count("agreement:agmt-1:created") == 1
