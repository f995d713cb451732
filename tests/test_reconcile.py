"""`mailsync reconcile` end to end: the CLI against the Agreement API emulator
and the SQLite CRM filled from real email fixtures."""

from __future__ import annotations

import json
from pathlib import Path

from agreement_emulator import Emulator
from conftest import ROOT, mailsync_env, run_mailsync, write_config

from mailsync.config import load
from mailsync.crm.outbox import Outbox
from mailsync.crm.sqlite_store import SqliteStore
from mailsync.crm.sync import CrmSync
from mailsync.event import Event, Kind
from mailsync.parsers.files import parse_path
from mailsync.statedb import open_db

INBOX = ROOT / "examples/inbox"
NW_OLD = "agmt-nw3k8d0v7q2m5xw9b1c4n6r8t"  # 02: accepted, 48000 USD
NW_NEW = "agmt-nw5z2x8c1v4b7n0m3q6w9e2r5"  # 07: the replacement, 72000 USD
CONTOSO = "agmt-co9p1m4x7c2v5b8n0q3w6e9r2"  # 04: CPPO, proposed by the partner
WINGTIP = "agmt-wt7y2u9i4o1p6a3s8d5f0g2h4"  # 08: cancelled
PAYG = "agmt-payg00000000000000000001"
EURO = "agmt-eur000000000000000000001"
NW = "314159265358"


def config(tmp: Path, emulator: Emulator) -> Path:
    return write_config(tmp, f'[source.agreements]\nendpoint_url = "{emulator.url}"\n')


def fill_crm(path: Path, *events: Event) -> None:
    settings = load(path)
    conn = open_db(settings.state.path)
    try:
        for event in events:
            Outbox(conn).submit(event)
        sync = CrmSync(settings, conn)
        assert sync.flush().pending == 0
        sync.close()
    finally:
        conn.close()


def agreements(path: Path) -> dict[str, dict]:
    store = SqliteStore(load(path).crm.sqlite_path)
    try:
        return {r["Agreement_ID__c"]: r for r in store.fetch_all("AWS_Agreement__c")}
    finally:
        store.close()


def aws_scenario(emulator: Emulator) -> None:
    emulator.put(
        NW_OLD,
        updated="2026-11-01T00:00:05Z",
        acceptor=NW,
        status="REPLACED",
        accepted="2026-09-14T10:00:00Z",
        start="2026-09-14T00:00:00Z",
        end="2027-09-13T23:59:59Z",
    )
    emulator.put(
        NW_NEW,
        updated="2026-10-20T09:00:00Z",
        acceptor=NW,
        offer="offer-nw9u2p4g7r1ad",
        accepted="2026-10-20T09:00:00Z",
        start="2026-11-01T00:00:00Z",
        end="2027-10-31T23:59:59Z",
        amount="72000.00",
        initial=NW_OLD,
    )
    emulator.put(PAYG, updated="2026-08-01T00:00:00Z", end=None, amount="0")
    emulator.put(EURO, updated="2026-08-02T00:00:00Z", amount="9999.90", currency="EUR")


def test_reconcile_lists_then_apply_fixes_then_clean(
    agreement_api: Emulator, tmp_path: Path
) -> None:
    cfg = config(tmp_path, agreement_api)
    fill_crm(
        cfg,
        *(
            parse_path(INBOX / name)
            for name in (
                "02-northwind-accepted-offer.eml",
                "04-contoso-accepted-cppo.eml",
                "07-northwind-agreement-replaced.eml",
            )
        ),
    )
    aws_scenario(agreement_api)
    env = mailsync_env()
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")

    before = run_mailsync("reconcile", "--config", str(cfg), env=env)
    assert before.returncode == 1, before.stderr
    lines = before.stdout.splitlines()
    assert lines[:-1] == [
        f"{EURO} missing",
        # The acceptance email names no offer; the API does.
        f"{NW_OLD} differs: Offer_ID__c crm=null aws=offer-7j3k9m2n5b8vc",
        f"{NW_OLD} differs: Status__c crm=Active aws=Replaced",
        f"{NW_NEW} differs: Acceptance_Date__c crm=null aws=2026-10-20",
        f"{PAYG} missing",
    ]
    assert lines[-1].startswith("reconcile: 4 agreements at AWS, 3 in the CRM;")
    assert "2 missing, 0 unknown, 3 differences; 1 not visible" in lines[-1]

    as_json = run_mailsync(
        "reconcile", "--format", "json", "--config", str(cfg), env=env
    )
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert rows[2] == {
        "agreement_id": NW_OLD,
        "difference": "differs",
        "field": "Status__c",
        "crm": "Active",
        "aws": "Replaced",
    }
    assert agreement_api.calls["DescribeAgreement"] == 8  # nothing stored yet

    applied = run_mailsync("reconcile", "--apply", "--config", str(cfg), env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stdout.splitlines()[0].startswith("reconcile: 4 agreements")
    records = agreements(cfg)
    assert records[NW_OLD]["Status__c"] == "Replaced"
    assert records[NW_NEW]["Acceptance_Date__c"] == "2026-10-20"
    assert records[NW_NEW]["Previous_Agreement_ID__c"] == NW_OLD
    assert records[PAYG]["End_Date__c"] is None
    assert records[PAYG]["Purchase_Amount__c"] == 0.0
    assert (records[EURO]["Purchase_Amount__c"], records[EURO]["Currency__c"]) == (
        9999.9,
        "EUR",
    )
    assert records[CONTOSO]["Status__c"] == "Active"  # not visible: untouched

    agreement_api.reset_calls()
    after = run_mailsync("reconcile", "--config", str(cfg), env=env)
    assert after.returncode == 0, after.stdout
    assert "0 missing, 0 unknown, 0 differences" in after.stdout
    # --apply stored the changed snapshots: no DescribeAgreement for them.
    assert agreement_api.calls == {"SearchAgreements": 1}


def test_unknown_and_stale_status_remain_after_apply(
    agreement_api: Emulator, tmp_path: Path
) -> None:
    cfg = config(tmp_path, agreement_api)
    cancelled = parse_path(INBOX / "08-wingtip-agreement-cancelled.eml")
    ghost = Event(
        kind=Kind.AGREEMENT_STARTED,
        source_id="ghost@example",
        agreement_id="agmt-gh0st000000000000000001",
        customer_account_id="999988887777",
    )
    fill_crm(cfg, cancelled, ghost)
    agreement_api.put(
        WINGTIP,
        updated="2026-11-05T00:00:00Z",
        acceptor="057721566490",
        offer="offer-pub3q8w1e6r4t",
        start="2026-02-01T00:00:00Z",
        status="ACTIVE",
    )
    env = mailsync_env()
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    result = run_mailsync("reconcile", "--apply", "--config", str(cfg), env=env)
    assert result.returncode == 1
    assert result.stdout.splitlines()[:-1] == [
        "agmt-gh0st000000000000000001 unknown",
        f"{WINGTIP} differs: Status__c crm=Cancelled aws=Active",
    ]
    record = agreements(cfg)[WINGTIP]
    assert record["Status__c"] == "Cancelled"  # the rank rule holds
    assert record["Purchase_Amount__c"] == 48000.0  # the snapshot's facts merged


def test_reconcile_needs_the_source_table(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    result = run_mailsync("reconcile", "--config", str(cfg))
    assert result.returncode == 2
    assert "[source.agreements] is not configured" in result.stderr
    bad = run_mailsync("reconcile", "--since", "2026-13-01", "--config", str(cfg))
    assert bad.returncode == 2


def test_check_reaches_the_agreement_api(
    agreement_api: Emulator, tmp_path: Path
) -> None:
    cfg = config(tmp_path, agreement_api)
    env = mailsync_env()
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    ok = run_mailsync("check", "--config", str(cfg), env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "source agreements" in ok.stdout
    agreement_api.faults.denied.add("SearchAgreements")
    denied = run_mailsync("check", "--config", str(cfg), env=env)
    assert denied.returncode == 1
    line = next(x for x in denied.stdout.splitlines() if "source agreements" in x)
    assert "AccessDeniedException" in line
