"""The SQS source through the command line: run --once, status, parse."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from moto_server import (
    CERT_URL,
    MotoServer,
    SigningAuthority,
    notification,
    subscribe_success,
)
from test_sqs_source import AGREEMENT, eventbridge

from mailsync.cli import main

FIXTURES = Path(__file__).parent / "fixtures"


def write_config(tmp_path: Path, moto: MotoServer, queue_url: str) -> Path:
    cfg = tmp_path / "mailsync.toml"
    cfg.write_text(
        f"""
[state]
path = "{tmp_path / "state.sqlite3"}"

[source.sqs]
queue_url = "{queue_url}"
endpoint_url = "{moto.url}"
wait_time_seconds = 0
verify_signatures = false

[crm]
backend = "sqlite"

[crm.sqlite]
path = "{tmp_path / "crm.sqlite3"}"
""",
        encoding="utf-8",
    )
    return cfg


def test_run_once_then_status(
    moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = moto.queue("marketplace-events")
    sqs = moto.client("sqs")
    event = eventbridge()
    for body in (event, event, "garbage"):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(body))
    cfg = write_config(tmp_path, moto, queue)
    main(["run", "--once", "--config", str(cfg)])
    out = capsys.readouterr()
    assert "synced 1 (1 duplicates)" in out.err
    assert (
        main(["records", "AWS_Agreement__c", "--format", "json", "--config", str(cfg)])
        == 0
    )
    records = json.loads(capsys.readouterr().out)
    assert [r["Agreement_ID__c"] for r in records] == [AGREEMENT]
    assert main(["status", "--config", str(cfg)]) == 0
    status = capsys.readouterr().out
    assert "sqs:marketplace-events" in status
    # The unparseable body waits for its next receive (not yet poison).
    assert "queue in flight: 1" in status
    assert "failed, will retry: 1" in status


def test_check_reaches_queue(
    moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = moto.queue("marketplace-events")
    cfg = write_config(tmp_path, moto, queue)
    main(["check", "--config", str(cfg)])
    lines = [line for line in capsys.readouterr().out.splitlines() if "sqs" in line]
    assert any("queue reachable: 0 waiting" in line for line in lines), lines


def test_parse_verifies_with_local_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = SigningAuthority()
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / CERT_URL.rsplit("/", 1)[1]).write_bytes(ca.pem)
    cfg = tmp_path / "mailsync.toml"
    cfg.write_text(f'[security]\nsns_certificate_dir = "{certs}"\n', encoding="utf-8")
    signed = ca.sign(notification(subscribe_success(), message_id=str(uuid.uuid4())))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(signed), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**signed, "Message": signed["Message"] + " "}))
    wrapped = tmp_path / "sqs.json"
    wrapped.write_text(json.dumps({"MessageId": "x", "Body": json.dumps(signed)}))

    assert main(["parse", "--config", str(cfg), str(good), str(bad), str(wrapped)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["trust"] for o in out] == ["verified", "rejected", "verified"]
    assert "signature" in out[1]["reason"]
    assert out[0]["kind"] == "subscription.succeeded"

    # No config at all: no check possible, so unverified (never a download).
    assert main(["parse", "--config", str(tmp_path / "none.toml"), str(good)]) == 2
    capsys.readouterr()
    assert main(["parse", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["trust"] == "unverified"
    assert main(["parse", "--require-trust", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["trust"] == "rejected"


def test_unmapped_eventbridge_type_is_unrecognized_on_first_receive(
    moto: MotoServer, tmp_path: Path
) -> None:
    """A well-formed event of a detail-type mailsync does not map (which the
    README's EventBridge rule forwards) is final at once: quarantined and
    deleted on its first receive, no WARNING, exit 0."""
    from conftest import mailsync_env, run_mailsync

    queue = moto.queue("marketplace-events")
    body = (FIXTURES / "eventbridge/negative_change_set_succeeded.json").read_text()
    moto.client("sqs").send_message(QueueUrl=queue, MessageBody=body)
    cfg = write_config(tmp_path, moto, queue)
    env = mailsync_env()
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    done = run_mailsync("run", "--once", "--config", str(cfg), env=env)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr
    assert "unrecognized 1, rejected 0, failed 0" in done.stderr
    counts = moto.client("sqs").get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ],
    )["Attributes"]
    assert counts == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }
    listed = run_mailsync(
        "quarantine", "list", "--format", "json", "--config", str(cfg)
    )
    [entry] = json.loads(listed.stdout)["quarantine"]
    assert entry["outcome"] == "unrecognized"
    assert "'Change Set Succeeded' is not mapped to a kind" in entry["reason"]


def test_parse_honours_configured_topic_arns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A correctly signed message from a topic in `[source.sqs] topic_arns` is
    verified by `parse --config` exactly as the daemon accepts it."""
    topic = "arn:aws:sns:us-east-1:111122223333:my-marketplace-relay"
    ca = SigningAuthority()
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / CERT_URL.rsplit("/", 1)[1]).write_bytes(ca.pem)
    signed = tmp_path / "relay.json"
    signed.write_text(
        json.dumps(ca.sign(notification(subscribe_success(), topic=topic)))
    )
    base = f'[security]\nsns_certificate_dir = "{certs}"\n'
    plain = tmp_path / "plain.toml"
    plain.write_text(base)
    with_topic = tmp_path / "topics.toml"
    with_topic.write_text(
        base + f'[source.sqs]\nqueue_url = "https://sqs.example/q"\n'
        f'topic_arns = ["{topic}"]\n'
    )
    assert main(["parse", "--config", str(plain), str(signed)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["trust"] == "rejected" and "topic" in row["reason"]
    assert main(["--config", str(with_topic), "parse", str(signed)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["trust"], row["kind"]) == ("verified", "subscription.succeeded")
