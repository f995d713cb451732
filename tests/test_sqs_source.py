"""The SQS source against moto's SQS/SNS server on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto_server import (
    PRODUCT_CODE,
    MotoServer,
    SigningAuthority,
    notification,
    subscribe_success,
)

from mailsync.aws.sqs import SqsSource, queue_counts
from mailsync.config import SecuritySettings, SqsSettings
from mailsync.crm.outbox import Outbox
from mailsync.errors import StateError
from mailsync.event import Channel, Event, Kind, Trust
from mailsync.ledger import Ledger
from mailsync.security.sns_verify import SnsVerifier
from mailsync.statedb import open_db

AGREEMENT = "agmt-9p1m4x7c2v5b8n0q3w6e9r2t5"


def eventbridge(
    event_id: str | None = None,
    request_id: str | None = None,
    *,
    source: str = "aws.agreement-marketplace",
    account: str = "123456789012",
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "Purchase Agreement Created - Proposer",
        "source": source,
        "account": account,
        "time": "2026-04-15T17:22:41Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:aws-marketplace::aws:agreement:{AGREEMENT}"],
        "detail": {
            "requestId": request_id or str(uuid.uuid4()),
            "catalog": "AWSMarketplace",
            "agreement": {
                "id": AGREEMENT,
                "intent": "NEW",
                "status": "ACTIVE",
                "acceptanceTime": "2026-04-15T17:22:30Z",
                "startTime": "2026-05-01T00:00:00Z",
                "endTime": "2029-04-30T23:59:59Z",
            },
            "acceptor": {"accountId": "309876543210"},
            "proposer": {"accountId": "123456789012"},
            "offer": {"id": "offer-b2xk7m4q9d1zs"},
        },
    }


@pytest.fixture
def state(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = open_db(tmp_path / "state.sqlite3")
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def ca() -> SigningAuthority:
    return SigningAuthority()


class Env:
    """A queue, its source and the state it writes."""

    def __init__(
        self,
        moto: MotoServer,
        state: sqlite3.Connection,
        ca: SigningAuthority,
        **settings: Any,
    ) -> None:
        self.moto = moto
        self.sqs = moto.client("sqs")
        self.queue_url = settings.pop("queue_url", None) or moto.queue()
        self.settings = SqsSettings(
            queue_url=self.queue_url,
            endpoint_url=moto.url,
            wait_time_seconds=0,
            **settings,
        )
        self.ledger = Ledger(state)
        self.outbox = Outbox(state)
        self.source = SqsSource(
            self.settings,
            ledger=self.ledger,
            verifier=SnsVerifier(topic_arns=self.settings.topic_arns, fetch=ca.fetch),
        )

    def send(self, body: Any) -> str:
        text = body if isinstance(body, str) else json.dumps(body)
        return str(
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=text)[
                "MessageId"
            ]
        )

    def run(self, sink: Any = None) -> Any:
        return self.source.run_pass(sink or self.outbox, threading.Event())

    def events(self) -> list[Event]:
        return [e for _, e in self.outbox.pending()]

    def left(self) -> int:
        return (
            queue_counts(self.settings)["waiting"]
            + queue_counts(self.settings)["in_flight"]
        )

    def quarantine(self) -> list[tuple[str, str, bytes]]:
        rows = self.ledger.conn.execute(
            "SELECT outcome, reason, raw FROM quarantine WHERE source='sqs' ORDER BY id"
        ).fetchall()
        return [(str(o), str(r), bytes(raw)) for o, r, raw in rows]


def test_raw_delivery_through_sns(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca, raw_delivery=True)
    topic = moto.topic_to_queue(env.queue_url, raw=True)
    moto.client("sns").publish(TopicArn=topic, Message=json.dumps(subscribe_success()))
    result = env.run()
    assert (result.fetched, result.synced) == (1, 1)
    [event] = env.events()
    assert event.kind is Kind.SUBSCRIPTION_SUCCEEDED
    assert event.trust is Trust.UNVERIFIED
    assert event.source_id is None
    assert event.customer_identifier == "QbT3kZx9LmA"
    assert event.product_code == PRODUCT_CODE
    # A bare message has no timestamp: the queue's SentTimestamp stands in.
    assert event.occurred_at is not None
    assert env.left() == 0


def test_raw_message_on_non_raw_queue_is_rejected(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca)
    env.send(subscribe_success())
    result = env.run()
    assert (result.rejected, result.synced) == (1, 0)
    assert env.events() == []
    [(outcome, reason, raw)] = env.quarantine()
    assert outcome == "rejected"
    assert "raw_delivery" in reason
    assert json.loads(raw)["action"] == "subscribe-success"
    assert env.left() == 0


def test_non_raw_moto_delivery_without_verification(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca, verify_signatures=False)
    topic = moto.topic_to_queue(env.queue_url, raw=False)
    sent = moto.client("sns").publish(
        TopicArn=topic, Message=json.dumps(subscribe_success())
    )
    env.run()
    [event] = env.events()
    assert event.channel is Channel.SNS
    assert event.source_id == sent["MessageId"]
    assert event.trust is Trust.UNVERIFIED
    assert env.left() == 0


def test_moto_fake_signature_is_rejected(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    topic_name = f"aws-mp-subscription-notification-{PRODUCT_CODE}"
    env = Env(moto, state, ca, topic_arns=(f"arn:aws:sns:us-east-1:*:{topic_name}",))
    topic = moto.topic_to_queue(env.queue_url, raw=False, name=topic_name)
    moto.client("sns").publish(TopicArn=topic, Message=json.dumps(subscribe_success()))
    result = env.run()
    assert (result.rejected, result.synced) == (1, 0)
    assert env.events() == []
    [(outcome, reason, _)] = env.quarantine()
    assert outcome == "rejected"
    assert "SNS" in reason


def test_signed_envelope_is_verified(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca)
    signed = ca.sign(notification(subscribe_success()), "2")
    env.send(signed)
    env.run()
    [event] = env.events()
    assert event.trust is Trust.VERIFIED
    assert event.source_id == signed["MessageId"]


@pytest.mark.parametrize(
    "change",
    [
        {"Message": json.dumps(subscribe_success("Mallory"))},
        {"TopicArn": "arn:aws:sns:us-east-1:123456789012:other"},
    ],
)
def test_tampered_or_foreign_envelope_is_rejected(
    moto: MotoServer,
    state: sqlite3.Connection,
    ca: SigningAuthority,
    change: dict[str, str],
) -> None:
    env = Env(moto, state, ca)
    env.send({**ca.sign(notification(subscribe_success())), **change})
    result = env.run()
    assert result.rejected == 1
    assert env.events() == []
    assert env.left() == 0


def test_redeliveries_are_deduplicated(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca)
    signed = ca.sign(notification(subscribe_success()))
    first = eventbridge("e-1", "r-1")
    env.send(signed)
    env.send(signed)  # SNS retried: same MessageId
    env.send(first)
    env.send(first)  # same EventBridge id
    env.send(eventbridge("e-2", "r-1"))  # new id, same detail.requestId
    result = env.run()
    assert (result.fetched, result.synced, result.duplicates) == (5, 2, 3)
    kinds = sorted(str(e.kind) for e in env.events())
    assert kinds == ["agreement.created", "subscription.succeeded"]
    assert env.left() == 0


def test_eventbridge_policy(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(
        moto,
        state,
        ca,
        eventbridge_sources=("aws.agreement-marketplace",),
        eventbridge_accounts=("123456789012",),
    )
    env.send(eventbridge(source="aws.marketplacecatalog"))
    env.send(eventbridge(account="999999999999"))
    env.send(eventbridge())
    result = env.run()
    assert (result.rejected, result.synced) == (2, 1)
    [event] = env.events()
    assert event.agreement_id == AGREEMENT
    assert event.trust is Trust.UNVERIFIED
    reasons = sorted(r for _, r, _ in env.quarantine())
    assert "eventbridge_accounts" in reasons[0]
    assert "eventbridge_sources" in reasons[1]


def test_subscription_confirmation_recorded_not_confirmed(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca)
    confirmation = ca.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": "2336412f37fb687f5d51e6e2425ba1f0example",
            "TopicArn": notification({})["TopicArn"],
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
            "Timestamp": notification({})["Timestamp"],
        }
    )
    env.send(confirmation)
    result = env.run()
    assert result.synced == 0
    assert env.events() == []
    [(outcome, reason, raw)] = env.quarantine()
    assert outcome == "unrecognized"
    assert "aws-mp-subscription-notification" in reason
    assert "sns.us-east-1.amazonaws.com" in reason
    assert json.loads(raw)["Token"] == confirmation["Token"]
    assert env.left() == 0


def test_poison_message_quarantined_after_max_receives(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca, max_receives=3, visibility_timeout=1)
    key = env.send("this is { not json")
    for receive in (1, 2):
        if receive > 1:
            threading.Event().wait(1.2)  # let the visibility timeout run out
        result = env.run()
        assert (result.failed, result.unrecognized) == (1, 0)
        assert env.ledger.outcomes("sqs")[key][0] == "failed"
        assert f"receive {receive} of 3" in str(env.ledger.outcomes("sqs")[key][1])
        assert env.quarantine() == []
    threading.Event().wait(1.2)
    result = env.run()
    assert (result.failed, result.unrecognized) == (0, 1)
    [(outcome, reason, raw)] = env.quarantine()
    assert outcome == "unrecognized"
    assert "after 3 receives" in reason
    assert raw == b"this is { not json"
    assert env.left() == 0


class BrokenStore:
    def submit(self, event: Event) -> bool:
        raise StateError("disk full")


def test_message_kept_when_event_not_durable(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca, visibility_timeout=0)
    env.send(eventbridge())
    with pytest.raises(StateError):
        env.run(BrokenStore())
    assert env.left() == 1
    # Once the store works again, the same message is synced and deleted.
    assert env.run().synced == 1
    assert env.left() == 0


class SlowSink:
    """Holds each submit until the test has looked at the queue."""

    def __init__(self, outbox: Outbox, env: Env) -> None:
        self.outbox, self.env = outbox, env
        self.seen_by_others: list[int] = []

    def submit(self, event: Event) -> bool:
        other = self.env.moto.client("sqs")
        stop = threading.Event()
        # Poll as another consumer for 3 visibility timeouts (1 s each).
        for _ in range(6):
            got = other.receive_message(QueueUrl=self.env.queue_url, WaitTimeSeconds=0)
            self.seen_by_others.append(len(got.get("Messages", [])))
            stop.wait(0.5)
        return self.outbox.submit(event)


def test_visibility_extended_while_batch_is_slow(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca, visibility_timeout=1)
    env.send(eventbridge())
    sink = SlowSink(env.outbox, env)
    result = env.run(sink)
    assert result.synced == 1
    assert sink.seen_by_others == [0] * 6
    assert env.left() == 0


def test_check_and_counts(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca)
    env.send(eventbridge())
    env.send(eventbridge())
    [line] = env.source.check()
    assert line.ok
    assert "2 waiting" in line.detail
    assert queue_counts(env.settings) == {"waiting": 2, "in_flight": 0}
    missing = Env(moto, state, ca, queue_url=env.queue_url + "-gone")
    [bad] = missing.source.check()
    assert not bad.ok
    assert "GetQueueAttributes" in bad.detail


def test_wait_for_input_keeps_messages_for_the_pass(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca)
    env.send(eventbridge())
    env.source.wait_for_input(1, threading.Event())
    assert queue_counts(env.settings)["in_flight"] == 1
    assert env.run().synced == 1
    assert env.left() == 0


def test_certificate_dir_from_security_settings(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority, tmp_path: Path
) -> None:
    signed = ca.sign(notification(subscribe_success()))
    (tmp_path / signed["SigningCertURL"].rsplit("/", 1)[1]).write_bytes(ca.pem)
    env = Env(moto, state, ca)
    env.source = SqsSource(
        env.settings,
        ledger=env.ledger,
        security=SecuritySettings(sns_certificate_dir=str(tmp_path)),
    )
    env.send(signed)
    env.run()
    [event] = env.events()
    assert event.trust is Trust.VERIFIED
