"""The Seller Data Feeds source against moto's S3 server: deliveries day by
day (month files growing), the golden records in the SQLite store and the
Salesforce emulator, unchanged passes, `check`, and kill -9 mid-read."""

from __future__ import annotations

import csv
import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, mailsync_env, run_mailsync, write_config
from moto_server import MotoServer
from sdds_helpers import (
    CASES,
    assert_expected,
    deliveries,
    files,
    flush,
    records,
)
from sfemu import Emulator
from sfemu.testing import emulator, sf_secrets

from mailsync.aws.sdds_source import SddsSource
from mailsync.config import Settings, from_dict, load
from mailsync.crm.outbox import Outbox
from mailsync.statedb import open_db

__all__ = ["emulator", "sf_secrets"]
BUCKET = "seller-feeds-test"
PREFIX = "mp/"
OBJECTS = ("AWS_Invoice__c", "AWS_Agreement__c", "Account")


def sdds_table(moto: MotoServer) -> str:
    return (
        f'[source.sdds]\nbucket = "{BUCKET}"\nprefix = "{PREFIX}"\n'
        f'region = "us-east-1"\nendpoint_url = "{moto.url}"\npoll_interval = 5\n'
    )


def upload(moto: MotoServer, content: dict[str, bytes]) -> None:
    s3 = moto.client("s3")
    for key, data in content.items():
        s3.put_object(Bucket=BUCKET, Key=PREFIX + key, Body=data)


def one_pass(s: Settings) -> tuple[int, int]:
    """(files read, CRM records written) of one source pass and flush."""
    source = SddsSource(s)
    conn = open_db(s.state.path)
    try:
        result = source.run_pass(Outbox(conn), threading.Event())
    finally:
        conn.close()
    return result.fetched, flush(s)


def everything(s: Settings) -> dict[str, dict[str, dict[str, Any]]]:
    return {o: records(s, o) for o in OBJECTS}


@pytest.fixture
def bucket(moto: MotoServer) -> MotoServer:
    moto.client("s3").create_bucket(Bucket=BUCKET)
    return moto


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_deliveries_day_by_day_through_s3(
    case: Path, bucket: MotoServer, tmp_path: Path
) -> None:
    s = load(write_config(tmp_path, sdds_table(bucket)))
    steps = deliveries(case)
    previous: dict[str, bytes] = {}
    for content in steps:
        upload(bucket, content)
        read, _ = one_pass(s)
        # only new or grown files are read
        assert read == sum(1 for k, v in content.items() if previous.get(k) != v)
        previous = dict(content)
    assert_expected(case, everything(s))
    # nothing new in the bucket: nothing read, nothing written
    assert one_pass(s) == (0, 0)

    # one read of the final bucket, into a fresh state, gives the same records
    (tmp_path / "fresh").mkdir()
    fresh = load(write_config(tmp_path / "fresh", sdds_table(bucket)))
    assert one_pass(fresh)[0] == len(files(case))
    assert _same(everything(fresh), everything(s))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    strip = {"Id", "Account__c", "Agreement__c"}
    return {
        o: {k: {f: v for f, v in r.items() if f not in strip} for k, r in a[o].items()}
        for o in a
    } == {
        o: {k: {f: v for f, v in r.items() if f not in strip} for k, r in b[o].items()}
        for o in b
    }


def test_run_once_and_check_with_the_s3_source(
    bucket: MotoServer, tmp_path: Path
) -> None:
    case = CASES[0]
    upload(bucket, files(case))
    config = write_config(tmp_path, sdds_table(bucket))
    env = mailsync_env()
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    done = run_mailsync("run", "--once", "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    assert_expected(case, everything(load(config)))
    out = run_mailsync("check", "--config", str(config), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        "ok   source sdds billingeventfeed_v1: 3 files; newest delivery" in out.stdout
    )
    assert "ok   source sdds accountfeed_v1: 2 files" in out.stdout
    again = run_mailsync("run", "--once", "--config", str(config), env=env)
    assert again.returncode == 0
    assert "CRM written 0" in again.stderr
    # no event rows from the feeds
    with sqlite3.connect(tmp_path / "crm.sqlite3") as db:
        assert db.execute(
            'SELECT count(*) FROM "AWS_Marketplace_Event__c"'
        ).fetchone() == (0,)


def test_missing_column_is_a_clear_error_and_nothing_moves(
    bucket: MotoServer, tmp_path: Path
) -> None:
    content = files(CASES[0])
    key = "billingeventfeed_v1/year=2026/month=01/data.csv"
    content[key] = content[key].replace(b"transaction_type", b"txn_type", 1)
    upload(bucket, content)
    s = load(write_config(tmp_path, sdds_table(bucket)))
    with pytest.raises(Exception) as err:
        one_pass(s)
    assert f"{key}: required column 'transaction_type' is missing" in str(err.value)
    assert records(s, "AWS_Invoice__c") == {}
    conn = open_db(s.state.path)
    assert conn.execute("SELECT count(*) FROM sdds_files").fetchone() == (0,)
    conn.close()


def test_salesforce_emulator_gets_the_same_records(
    bucket: MotoServer, tmp_path: Path, emulator: Emulator, sf_secrets: None
) -> None:
    case = CASES[0]
    upload(bucket, files(case))
    s = from_dict(
        {
            "state": {"path": str(tmp_path / "state.sqlite3")},
            "source": {
                "sdds": {
                    "bucket": BUCKET,
                    "prefix": PREFIX,
                    "endpoint_url": bucket.url,
                }
            },
            "crm": {
                "backend": "salesforce",
                "salesforce": {
                    "username": emulator.username,
                    "endpoint_url": emulator.url,
                    "password_env": "MAILSYNC_TEST_SF_PASSWORD",
                    "security_token_env": "MAILSYNC_TEST_SF_TOKEN",
                },
            },
        }
    )
    read, written = one_pass(s)
    assert read == len(files(case)) and written > 0
    got = everything(s)
    for obj in ("AWS_Invoice__c", "AWS_Agreement__c"):
        for rec in got[obj].values():
            for f, v in list(rec.items()):
                if isinstance(v, int | float) and not isinstance(v, bool):
                    rec[f] = round(float(v), 2)
    assert_expected(case, got)
    invoices = emulator.records("AWS_Invoice__c")
    agreements = {
        a["Id"]: a["Agreement_ID__c"] for a in emulator.records("AWS_Agreement__c")
    }
    assert {agreements[i["Agreement__c"]] for i in invoices} == {
        "agmt-alpha",
        "agmt-bravo",
        "agmt-delta",
    }
    assert one_pass(s) == (0, 0)


# -- kill -9 mid-read -----------------------------------------------------------

BULK = 60_000


def _bulk(case: Path) -> dict[str, bytes]:
    """The golden bucket plus a large month of one-line invoices of
    `agmt-bulk` (10.00 each) and that agreement's revision."""
    content = files(case)
    base = content["billingeventfeed_v1/year=2026/month=01/data.csv"].decode()
    header = base.split("\n", 1)[0].split(",")
    out = io.StringIO()
    w = csv.DictWriter(out, header, lineterminator="\n")
    w.writeheader()
    for i in range(BULK):
        ts = "2026-01-20T00:00:00Z"
        w.writerow(
            {
                "billing_event_id": f"bulk-{i:07d}",
                "from_account_id": "acct-guid-buyer1",
                "to_account_id": "acct-guid-seller",
                "action": "INVOICED",
                "transaction_type": "SELLER_REV_SHARE",
                "amount": "10",
                "currency": "USD",
                "balance_impacting": "1",
                "invoice_date": ts,
                "payment_due_date": "2026-02-19T00:00:00Z",
                "invoice_id": f"binv-{i:07d}",
                "transaction_reference_id": f"BTR-{i:07d}",
                "buyer_transaction_reference_id": f"BTR-{i:07d}",
                "broker_id": "AWS_INC",
                "agreement_id": "agmt-bulk",
                "product_id": "prod-bulk",
                "valid_from": ts,
                "update_date": ts,
            }
        )
    content["billingeventfeed_v1/year=2026/month=04/data.csv"] = out.getvalue().encode()
    agr = content["agreementfeed_v1/year=2026/month=01/data.csv"].decode().split("\n")
    content["agreementfeed_v1/year=2026/month=04/data.csv"] = (
        agr[0] + "\nagmt-bulk,2026-01-19T00:00:00Z,,,,ACTIVE,,,acct-guid-seller,"
        "acct-guid-buyer1,offer-bulk,1,2026-01-19T00:00:00Z,,,NEW,,,\n"
    ).encode()
    return content


@pytest.mark.slow
def test_kill_9_mid_read_loses_and_duplicates_nothing(
    bucket: MotoServer, tmp_path: Path
) -> None:
    case = CASES[0]
    upload(bucket, _bulk(case))
    config = write_config(tmp_path, sdds_table(bucket))
    env = mailsync_env()
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    state = tmp_path / "state.sqlite3"
    killed = 0
    for delay in (0.8, 1.6, 2.4):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mailsync",
                "run",
                "--once",
                "--config",
                str(config),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
    assert killed, "the pass finished before any kill: make the bulk month larger"
    done = run_mailsync("run", "--once", "--config", str(config), env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    s = load(config)
    got = everything(s)
    bulk = {k: v for k, v in got["AWS_Invoice__c"].items() if k.startswith("binv-")}
    assert len(bulk) == BULK
    assert {v["Invoiced_Amount__c"] for v in bulk.values()} == {10.0}
    assert got["AWS_Agreement__c"]["agmt-bulk"]["Invoiced_To_Date__c"] == 10.0 * BULK
    for obj in ("AWS_Invoice__c", "AWS_Agreement__c"):
        for k in [k for k in got[obj] if "bulk" in k]:
            del got[obj][k]
    assert_expected(case, got)
    with sqlite3.connect(state) as db:
        (pending,) = db.execute(
            "SELECT count(*) FROM record_outbox WHERE flushed_at IS NULL"
        ).fetchone()
    assert pending == 0
