"""`mailsync records` over the embedded SQLite CRM: json, csv, table, errors."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from mailsync.cli import main
from mailsync.config import load
from mailsync.crm.outbox import Outbox
from mailsync.crm.sync import CrmSync
from mailsync.event import Event, Kind, Money
from mailsync.statedb import open_db

BUYER = "111122223333"
LONG_NAME = "Acme Interplanetary Logistics and Widget Manufacturing Holdings"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mailsync.toml"
    path.write_text(
        f'[state]\npath = "{tmp_path / "state.sqlite3"}"\n'
        f'[crm]\nbackend = "sqlite"\n[crm.sqlite]\npath = "{tmp_path / "crm.db"}"\n'
    )
    settings = load(path)
    conn = open_db(settings.state.path)
    Outbox(conn).submit(
        Event(
            kind=Kind.OFFER_ACCEPTED,
            source_id="m1@example",
            occurred_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
            agreement_id="agmt-1",
            offer_id="offer-1",
            customer_account_id=BUYER,
            customer_name=LONG_NAME,
            purchase_amount=Money(Decimal("48000"), "USD"),
        )
    )
    sync = CrmSync(settings, conn)
    assert sync.flush().records == 4
    sync.close()
    conn.close()
    return path


def test_json_is_one_array_with_object_and_contract_fields(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["records", "--config", str(config), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["object"] for r in rows] == [
        "Account",
        "AWS_Agreement__c",
        "AWS_Offer__c",
        "AWS_Marketplace_Event__c",
    ]
    account, agreement, offer, event = rows
    assert account["AWS_Account_ID__c"] == BUYER and account["Name"] == LONG_NAME
    assert agreement["Status__c"] == "Active"
    assert agreement["Purchase_Amount__c"] == "48000.00"  # as `parse` writes money
    assert agreement["Currency__c"] == "USD"
    assert agreement["Account__c"] == account["Id"]
    assert agreement["End_Date__c"] is None  # every field present
    assert offer["Status__c"] == "Accepted"
    assert event["Event_Key__c"] == "agreement:agmt-1:created"


def test_csv_single_object_has_header(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["records", "AWS_Agreement__c", "--config", str(config), "--format", "csv"]
    assert main(args) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1
    assert rows[0]["Agreement_ID__c"] == "agmt-1"
    assert rows[0]["Purchase_Amount__c"] == "48000.00"
    assert "object" not in rows[0]


def test_csv_all_objects_has_object_column(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["records", "--config", str(config), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["object"] for r in rows] == [
        "Account",
        "AWS_Agreement__c",
        "AWS_Offer__c",
        "AWS_Marketplace_Event__c",
    ]
    assert rows[0]["Name"] == LONG_NAME


def test_table_is_fixed_width_and_truncates(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["records", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "AWS_Agreement__c (1)" in out
    assert "AWS_Subscription__c (0)" in out
    assert LONG_NAME not in out
    assert LONG_NAME[:31] + "…" in out
    lines = out.splitlines()
    header = lines.index("Account (1)") + 1
    assert lines[header].split() == ["AWS_Account_ID__c", "Name"]
    assert lines[header + 2].startswith(BUYER + " " * 7)  # padded to the header


def test_unknown_object_lists_valid_ones(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["records", "Agreement", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "unknown OBJECT 'Agreement'" in err
    assert "AWS_Agreement__c" in err and "Traceback" not in err
