"""Email and SQS deliveries of the same agreement, in either order, leave the
same CRM records (SQLite backend), with one business-event row."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from moto_server import MotoServer

from mailsync import config
from mailsync.aws.sqs import SqsSource
from mailsync.crm.outbox import Outbox
from mailsync.crm.sync import CrmSync
from mailsync.ledger import Ledger
from mailsync.pipeline import Pipeline
from mailsync.statedb import open_db

FIXTURE = Path(__file__).parent / "fixtures/email/offer.accepted/cppo_isv_multipart_qp"


def created_event(expected: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "7b9e2c14-5d3a-4f6e-8a1b-2c3d4e5f6a7b",
        "detail-type": "Purchase Agreement Created - Manufacturer",
        "source": "aws.agreement-marketplace",
        "account": "123456789012",
        "time": "2030-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "requestId": "c1f0a9e8-7d6c-4b5a-9f8e-7d6c5b4a3f2e",
            "catalog": "AWSMarketplace",
            "agreement": {
                "id": expected["agreement_id"],
                "intent": "NEW",
                "status": "ACTIVE",
            },
            "acceptor": {"accountId": expected["customer_account_id"]},
            "proposer": {"accountId": "123456789012"},
            "offer": {"id": expected["offer_id"] or "offer-b2xk7m4q9d1zs"},
        },
    }


def records(
    moto: MotoServer, tmp: Path, order: tuple[str, ...]
) -> dict[str, list[dict[str, Any]]]:
    tmp.mkdir()
    settings = config.from_dict(
        {
            "state": {"path": str(tmp / "state.sqlite3")},
            "security": {"require_dkim": False},
            "crm": {"backend": "sqlite", "sqlite": {"path": str(tmp / "crm.sqlite3")}},
        }
    )
    conn = open_db(settings.state.path)
    ledger, outbox = Ledger(conn), Outbox(conn)
    raw = FIXTURE.with_suffix(".eml").read_bytes()
    expected = json.loads(FIXTURE.with_suffix(".expected.json").read_text())
    sqs = moto.client("sqs")
    queue = moto.queue()
    source = SqsSource(
        config.SqsSettings(queue_url=queue, endpoint_url=moto.url, wait_time_seconds=0),
        ledger=ledger,
    )
    for step in order:
        if step == "email":
            out = Pipeline(settings, ledger).handle(
                raw, outbox, source="maildir:x", key=f"k{len(step)}", kind="email"
            )
            assert out.outcome == "synced", out.reason
        else:
            sqs.send_message(
                QueueUrl=queue, MessageBody=json.dumps(created_event(expected))
            )
            assert source.run_pass(outbox, threading.Event()).fetched == 1
        CrmSync(settings, conn).flush()
    sync = CrmSync(settings, conn)
    out = {
        obj: sorted(
            (
                {
                    k: v
                    for k, v in r.items()
                    # Record Ids (and lookups holding them) differ per store.
                    if k not in ("Last_Event_At__c", "Id", "Account__c")
                }
                for r in sync.backend.fetch_all(obj)
            ),
            key=lambda r: json.dumps(r, sort_keys=True, default=str),
        )
        for obj in ("Account", "AWS_Agreement__c", "AWS_Marketplace_Event__c")
    }
    conn.close()
    return out


def test_mixed_order_same_records(moto: MotoServer, tmp_path: Path) -> None:
    a = records(moto, tmp_path / "a", ("email", "sqs", "email", "sqs"))
    b = records(moto, tmp_path / "b", ("sqs", "email"))
    assert len(a["AWS_Agreement__c"]) == 1
    assert len(a["Account"]) == 1
    # One business event ("agreement created"), whichever channel said it.
    assert len(a["AWS_Marketplace_Event__c"]) == 1
    assert a["AWS_Agreement__c"] == b["AWS_Agreement__c"]
    assert a["Account"] == b["Account"]
