"""`mailsync replay` end to end through the real parsers, outbox and SQLite CRM."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mailsync.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "eventbridge"
CREATED = FIXTURES / "created_proposer_direct.json"
ENDED = FIXTURES / "ended_cancelled.json"


def write_config(tmp: Path) -> Path:
    path = tmp / "mailsync.toml"
    path.write_text(
        f'[state]\npath = "{tmp / "state.sqlite3"}"\n'
        f"[security]\nrequire_dkim = false\n"
        f'[crm]\nbackend = "sqlite"\n[crm.sqlite]\npath = "{tmp / "crm.sqlite3"}"\n'
    )
    return path


def agreements(tmp: Path) -> list[tuple[str, str]]:
    crm = sqlite3.connect(tmp / "crm.sqlite3")
    rows = crm.execute(
        'SELECT "Agreement_ID__c", "Status__c" FROM "AWS_Agreement__c" ORDER BY 1'
    ).fetchall()
    crm.close()
    return [(str(a), str(s)) for a, s in rows]


def expected(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        path.with_name(path.stem + ".expected.json").read_text()
    )
    return data


@pytest.fixture
def fixtures_present() -> None:
    if not (CREATED.exists() and ENDED.exists()):
        pytest.skip("EventBridge fixtures not present")


@pytest.mark.usefixtures("fixtures_present")
def test_dry_run_prints_writes_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    code = main(["replay", "--config", str(config), "--dry-run", str(CREATED)])
    out = capsys.readouterr().out
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    agreement_id = expected(CREATED)["agreement_id"]
    objects = [line["object"] for line in lines]
    assert "AWS_Agreement__c" in objects and "AWS_Marketplace_Event__c" in objects
    (agmt,) = [line for line in lines if line["object"] == "AWS_Agreement__c"]
    assert agmt["external_id"] == agreement_id
    assert agmt["fields"]["Status__c"] == "Active"
    events = [line for line in lines if line["object"] == "AWS_Marketplace_Event__c"]
    assert events[0]["external_id"] == f"agreement:{agreement_id}:created"
    assert not (tmp_path / "state.sqlite3").exists()
    assert not (tmp_path / "crm.sqlite3").exists()


@pytest.mark.usefixtures("fixtures_present")
def test_replay_writes_and_a_second_replay_is_a_no_op(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "1-created.json").write_bytes(CREATED.read_bytes())
    (folder / "2-ended.json").write_bytes(ENDED.read_bytes())
    assert main(["replay", "--config", str(config), str(folder)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("replayed 2 inputs (2 new)")
    ids = {expected(CREATED)["agreement_id"], expected(ENDED)["agreement_id"]}
    got = dict(agreements(tmp_path))
    assert set(got) == ids
    if len(ids) == 1:
        assert set(got.values()) == {"Cancelled"}
    assert main(["replay", "--config", str(config), str(folder)]) == 0
    again = capsys.readouterr()
    assert again.out.startswith("replayed 2 inputs (0 new): 0 CRM records written")
    assert "already seen" in again.err
    assert dict(agreements(tmp_path)) == got
    # dry run after the fact: the same inputs would write nothing
    assert main(["replay", "--config", str(config), "--dry-run", str(folder)]) == 0
    assert capsys.readouterr().out == ""


def test_unrecognized_input_is_reported_not_synced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    junk = tmp_path / "newsletter.json"
    junk.write_text('{"hello": "world"}')
    assert main(["replay", "--config", str(config), str(junk)]) == 0
    captured = capsys.readouterr()
    assert f"{junk}: unrecognized" in captured.err
    assert captured.out.startswith("replayed 0 inputs (0 new): 0 CRM records")


def test_missing_path_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    code = main(["replay", "--config", str(config), str(tmp_path / "nope.eml")])
    assert code == 2
    assert "nope.eml: no such file" in capsys.readouterr().err


def test_dry_run_writes_money_as_two_decimal_strings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    offer = FIXTURES.parent / "email/offer.accepted/isv_public_plain_no_end_date.eml"
    config = write_config(tmp_path)
    assert main(["replay", "--config", str(config), "--dry-run", str(offer)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (agmt,) = [line for line in lines if line["object"] == "AWS_Agreement__c"]
    assert (agmt["fields"]["Purchase_Amount__c"], agmt["fields"]["Currency__c"]) == (
        "48000.00",
        "USD",
    )
