"""SQS admission judges the object that is parsed: wrapped envelopes and
events, SNS-carried EventBridge events, deep JSON, stale and unreachable-
certificate envelopes, against moto's SQS server and signed test envelopes;
the same checks in `quarantine retry` and `replay`."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import write_config
from moto_server import (
    CERT_URL,
    SUB_TOPIC,
    MotoServer,
    SigningAuthority,
    notification,
    subscribe_success,
)
from test_sqs_source import Env, eventbridge

from mailsync import ledger as L
from mailsync.cli import main
from mailsync.errors import TransientError
from mailsync.event import Channel, Kind, Trust
from mailsync.ledger import Ledger
from mailsync.pipeline import sha256_hex
from mailsync.security.sns_verify import SnsVerifier
from mailsync.statedb import open_db

FOREIGN_TOPIC = "arn:aws:sns:us-east-1:666666666666:aws-mp-subscription-notification-x"

Wrap = Callable[[dict[str, Any]], dict[str, Any]]

#: The wrapper shapes the JSON parser takes off: boto3 ReceiveMessage, Lambda
#: SQS record, Lambda batch of one SQS record, Lambda SNS record, and nested.
WRAPPERS: dict[str, Wrap] = {
    "Body": lambda o: {"MessageId": "m", "Body": json.dumps(o)},
    "body": lambda o: {"messageId": "m", "body": json.dumps(o)},
    "Body-object": lambda o: {"Body": o},
    "Records-body": lambda o: {"Records": [{"body": json.dumps(o)}]},
    "Records-Sns": lambda o: {"Records": [{"EventSource": "aws:sns", "Sns": o}]},
    "nested": lambda o: {"Body": json.dumps({"Records": [{"body": json.dumps(o)}]})},
}
SQS_WRAPPERS = {k: v for k, v in WRAPPERS.items() if k != "Records-Sns"}


@pytest.fixture
def state(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = open_db(tmp_path / "state.sqlite3")
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def ca() -> SigningAuthority:
    return SigningAuthority(not_before=datetime.now(UTC) - timedelta(days=400))


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=list(WRAPPERS))
def test_wrapped_unsigned_foreign_envelope_is_rejected(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority, wrap: Wrap
) -> None:
    env = Env(moto, state, ca)
    env.send(wrap(notification(subscribe_success("Mallory"), topic=FOREIGN_TOPIC)))
    result = env.run()
    assert (result.rejected, result.synced) == (1, 0)
    assert env.events() == []
    [(outcome, reason, _)] = env.quarantine()
    assert outcome == "rejected"
    assert reason == "unsupported SNS SignatureVersion ''"  # no signature at all
    assert env.left() == 0


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=list(WRAPPERS))
def test_wrapped_tampered_envelope_is_rejected(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority, wrap: Wrap
) -> None:
    env = Env(moto, state, ca)
    signed = ca.sign(notification(subscribe_success()))
    signed["Message"] = json.dumps(subscribe_success("Mallory"))
    env.send(wrap(signed))
    result = env.run()
    assert (result.rejected, result.synced) == (1, 0)
    assert "signature does not match" in env.quarantine()[0][1]


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=list(WRAPPERS))
def test_wrapped_signed_envelope_still_syncs_verified(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority, wrap: Wrap
) -> None:
    env = Env(moto, state, ca)
    signed = ca.sign(notification(subscribe_success()))
    env.send(wrap(signed))
    result = env.run()
    assert (result.rejected, result.synced) == (0, 1)
    [event] = env.events()
    assert (event.kind, event.trust) == (Kind.SUBSCRIPTION_SUCCEEDED, Trust.VERIFIED)
    assert event.source_id == signed["MessageId"]


@pytest.mark.parametrize("wrap", SQS_WRAPPERS.values(), ids=list(SQS_WRAPPERS))
def test_wrapped_eventbridge_event_from_a_foreign_account_is_rejected(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority, wrap: Wrap
) -> None:
    env = Env(moto, state, ca, eventbridge_accounts=("123456789012",))
    env.send(wrap(eventbridge(account="999999999999")))
    env.send(wrap(eventbridge(source="evil.source")))
    env.send(wrap(eventbridge()))  # the genuine control
    result = env.run()
    assert (result.rejected, result.synced) == (2, 1)
    [event] = env.events()
    assert (event.channel, event.trust) == (Channel.EVENTBRIDGE, Trust.UNVERIFIED)
    reasons = sorted(r for _, r, _ in env.quarantine())
    assert "'999999999999' is not in [source.sqs] eventbridge_accounts" in reasons[0]
    assert "'evil.source' is not in [source.sqs] eventbridge_sources" in reasons[1]


@pytest.mark.parametrize("wrap", SQS_WRAPPERS.values(), ids=list(SQS_WRAPPERS))
def test_wrapped_bare_message_on_a_non_raw_queue_is_rejected(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority, wrap: Wrap
) -> None:
    env = Env(moto, state, ca)
    env.send(wrap(subscribe_success("Mallory")))
    result = env.run()
    assert (result.rejected, result.synced) == (1, 0)
    assert "raw_delivery" in env.quarantine()[0][1]


def test_eventbridge_event_inside_an_sns_notification_meets_the_event_policy(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca, verify_signatures=False)
    env.send(notification(eventbridge(account="999999999999")))
    env.send(notification(eventbridge()))
    result = env.run()
    assert (result.rejected, result.synced) == (0, 2)  # no account list set
    env = Env(
        moto, state, ca, verify_signatures=False, eventbridge_accounts=("123456789012",)
    )
    env.send(notification(eventbridge(account="999999999999")))
    env.send(notification(eventbridge()))
    result = env.run()
    assert (result.rejected, result.synced) == (1, 1)
    assert "eventbridge_accounts" in env.quarantine()[0][1]


def test_deep_json_is_rejected_once_with_a_clear_reason(
    moto: MotoServer,
    state: sqlite3.Connection,
    ca: SigningAuthority,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = Env(moto, state, ca, max_receives=3)
    env.send("[" * 50_000)
    env.send({"Body": json.dumps({"Body": "{" * 50_000})})
    result = env.run()
    assert (result.fetched, result.rejected, result.failed) == (2, 2, 0)
    reasons = [r for _, r, _ in env.quarantine()]  # at the first receive
    assert len(reasons) == 2
    assert all("JSON nested deeper than 64 levels" in r for r in reasons), reasons
    assert env.left() == 0
    # deep JSON inside the Message of an (unverified) envelope
    env = Env(moto, state, ca, verify_signatures=False)
    inner = notification({"action": "subscribe-success"})
    inner["Message"] = "[" * 50_000
    key = env.send(inner)
    result = env.run()
    assert (result.fetched, result.synced) == (1, 0)
    reason = str(env.ledger.outcomes("sqs")[key][1])
    assert reason.startswith("SNS Message is not JSON (JSON nested deeper than 64")
    assert "RecursionError" not in caplog.text
    assert "Traceback" not in caplog.text


def test_stale_signed_envelope_is_rejected(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca)
    old = datetime.now(UTC) - timedelta(days=45)
    env.send(ca.sign(notification(subscribe_success("A"), timestamp=old)))
    env.send(ca.sign(notification(subscribe_success("B"))))
    result = env.run()
    assert (result.rejected, result.synced) == (1, 1)
    assert [e.customer_identifier for e in env.events()] == ["B"]
    reason = env.quarantine()[0][1]
    assert "max_message_age_days = 30" in reason and "stale" in reason
    env = Env(moto, state, ca, max_message_age_days=60)
    env.send(ca.sign(notification(subscribe_success("C"), timestamp=old)))
    assert env.run().synced == 1


class FailingFetch:
    """A certificate host that is unreachable, counting the attempts."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, url: str) -> bytes:
        self.calls += 1
        raise TransientError("SNS signing certificate download failed: refused")


def test_certificate_download_failure_counts_against_max_receives(
    moto: MotoServer, state: sqlite3.Connection, ca: SigningAuthority
) -> None:
    env = Env(moto, state, ca, max_receives=2, visibility_timeout=1)
    fetch = FailingFetch()
    env.source.verifier = SnsVerifier(fetch=fetch)
    forged = notification(subscribe_success("Mallory"))
    forged.update(SignatureVersion="1", Signature="AAAA", SigningCertURL=CERT_URL)
    key = env.send(forged)
    result = env.run()
    assert (result.failed, result.unrecognized) == (1, 0)
    assert "receive 1 of 2" in str(env.ledger.outcomes("sqs")[key][1])
    threading.Event().wait(1.2)  # the visibility timeout runs out
    result = env.run()
    assert (result.failed, result.unrecognized) == (0, 1)
    [(outcome, reason, raw)] = env.quarantine()
    assert outcome == "unrecognized"
    assert "download failed" in reason and "after 2 receives" in reason
    assert json.loads(raw)["MessageId"] == forged["MessageId"]
    assert fetch.calls == 1  # the second receive hit the negative cache
    assert env.left() == 0
    assert env.events() == []


def test_failed_certificate_url_is_remembered_for_a_while(
    ca: SigningAuthority,
) -> None:
    now = [1000.0]
    fetch = FailingFetch()
    verifier = SnsVerifier(fetch=fetch, failure_ttl=300, clock=lambda: now[0])
    envelope = ca.sign(notification(subscribe_success()))
    for _ in range(50):
        with pytest.raises(TransientError, match="download failed"):
            verifier.verify(envelope)
    assert fetch.calls == 1
    now[0] += 301
    with pytest.raises(TransientError):
        verifier.verify(envelope)
    assert fetch.calls == 2
    verifier.fetch = ca.fetch
    now[0] += 301
    verifier.verify(envelope)  # the host is back: verified


# -- quarantine retry and replay --------------------------------------------------


def sqs_table(**extra: str) -> str:
    lines = ["[source.sqs]", 'queue_url = "http://127.0.0.1:9/000000000000/q"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def security_table(cert_dir: Path) -> str:
    return f'sns_certificate_dir = "{cert_dir}"\n'


def crm_rows(tmp: Path) -> int:
    path = tmp / "crm.sqlite3"
    if not path.exists():
        return 0
    crm = sqlite3.connect(path)
    tables = [
        str(t)
        for (t,) in crm.execute("SELECT name FROM sqlite_master WHERE type='table'")
    ]
    total = sum(
        int(crm.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables
    )
    crm.close()
    return total


def config_with(tmp: Path, ca: SigningAuthority, **sqs: str) -> Path:
    certs = tmp / "certs"
    certs.mkdir(exist_ok=True)
    (certs / CERT_URL.rsplit("/", 1)[1]).write_bytes(ca.pem)
    cfg = write_config(tmp, sqs_table(**sqs))
    text = cfg.read_text().replace(
        "[security]\n", f"[security]\n{security_table(certs)}", 1
    )
    cfg.write_text(text)
    return cfg


def test_quarantine_retry_checks_the_wrapped_envelope(
    tmp_path: Path, ca: SigningAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config_with(tmp_path, ca)
    foreign = ca.sign(notification(subscribe_success("Mallory"), topic=FOREIGN_TOPIC))
    forged = json.dumps({"Body": json.dumps(foreign)}).encode()
    genuine = json.dumps(
        {"Body": json.dumps(ca.sign(notification(subscribe_success())))}
    ).encode()
    conn = open_db(tmp_path / "state.sqlite3")
    for key, body in (("m-forged", forged), ("m-genuine", genuine)):
        Ledger(conn).record(
            "sqs",
            key,
            key,
            sha256_hex(body),
            L.REJECTED,
            "earlier",
            raw=body,
            input_kind="json",
        )
    conn.close()
    assert main(["quarantine", "retry", "--all", "--config", str(cfg)]) in (0, 1)
    out = capsys.readouterr().out
    forged_line, genuine_line = out.splitlines()[:2]
    assert "rejected -> rejected" in forged_line and FOREIGN_TOPIC in forged_line
    assert genuine_line.endswith("rejected -> synced")
    conn = open_db(tmp_path / "state.sqlite3")
    assert Ledger(conn).finished("sqs", "m-forged") == "rejected"
    assert Ledger(conn).finished("sqs", "m-genuine") == "synced"
    conn.close()


def replay_inputs(tmp: Path, ca: SigningAuthority) -> dict[str, Any]:
    genuine = ca.sign(notification(subscribe_success("Genuine")))
    tampered = ca.sign(notification(subscribe_success("T")))
    tampered["Message"] = json.dumps(subscribe_success("Tampered"))
    old = datetime.now(UTC) - timedelta(days=90)
    return {
        "1-unsigned.json": notification(subscribe_success("Unsigned")),
        "2-tampered.json": tampered,
        "3-foreign.json": ca.sign(
            notification(subscribe_success("F"), topic=FOREIGN_TOPIC)
        ),
        "4-wrapped-foreign.json": {
            "Body": json.dumps(
                ca.sign(notification(subscribe_success("W"), topic=FOREIGN_TOPIC))
            )
        },
        "5-foreign-account.json": eventbridge(account="999999999999"),
        "6-stale.json": ca.sign(notification(subscribe_success("S"), timestamp=old)),
        "7-bare.json": subscribe_success("Bare"),
        "8-genuine.json": genuine,
        "9-genuine-event.json": eventbridge(),
    }


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "replay"])
def test_replay_applies_the_live_sqs_checks(
    tmp_path: Path,
    ca: SigningAuthority,
    capsys: pytest.CaptureFixture[str],
    dry_run: bool,
) -> None:
    cfg = config_with(tmp_path, ca, eventbridge_accounts='["123456789012"]')
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name, obj in replay_inputs(tmp_path, ca).items():
        (folder / name).write_text(json.dumps(obj))
    args = ["replay", "--config", str(cfg), str(folder)]
    code = main([*args[:3], "--dry-run", *args[3:]] if dry_run else args)
    out, err = capsys.readouterr()
    assert code == 0, err
    rejected = {
        line.split(":", 1)[0].rsplit("/", 1)[-1]: line
        for line in err.splitlines()
        if ": rejected: " in line
    }
    assert sorted(rejected) == [
        f"{n}.json"
        for n in (
            "1-unsigned",
            "2-tampered",
            "3-foreign",
            "4-wrapped-foreign",
            "5-foreign-account",
            "6-stale",
            "7-bare",
        )
    ]
    assert "SignatureVersion" in rejected["1-unsigned.json"]
    assert "signature does not match" in rejected["2-tampered.json"]
    assert FOREIGN_TOPIC in rejected["3-foreign.json"]
    assert FOREIGN_TOPIC in rejected["4-wrapped-foreign.json"]
    assert "eventbridge_accounts" in rejected["5-foreign-account.json"]
    assert "stale" in rejected["6-stale.json"]
    assert "raw_delivery" in rejected["7-bare.json"]
    if dry_run:
        writes = [json.loads(line) for line in out.splitlines()]
        text = json.dumps(writes)
        assert "Genuine" in text
        for name in ("Unsigned", "Tampered", "Mallory", "Bare"):
            assert name not in text
        assert crm_rows(tmp_path) == 0
    else:
        assert "replayed 2 inputs (2 new)" in out
        crm = sqlite3.connect(tmp_path / "crm.sqlite3")
        dump = "\n".join(crm.iterdump())
        crm.close()
        assert "Genuine" in dump and "agmt-" in dump
        for name in ("Unsigned", "Tampered", "'F'", "'W'", "'S'", "Bare"):
            assert name not in dump


def test_replay_of_a_raw_message_follows_raw_delivery(
    tmp_path: Path, ca: SigningAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config_with(tmp_path, ca, raw_delivery="true")
    path = tmp_path / "bare.json"
    path.write_text(json.dumps(subscribe_success(str(uuid.uuid4()))))
    assert main(["replay", "--config", str(cfg), str(path)]) == 0
    assert "replayed 1 input (1 new)" in capsys.readouterr().out
    assert SUB_TOPIC  # the Marketplace topic the genuine inputs name


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ('{"a": [1, {"b": "[[[{{{"}]}', 3),  # brackets in strings do not count
        ('["\\"[[["]', 1),  # nor after an escaped quote
        ("[" * 1_000_000, 65),  # counting stops past the bound
        ('"' + '\\"' * 500_000, 0),  # an unclosed string of escapes: one scan
        (json.dumps({"Body": "[" * 1_000_000}), 1),
    ],
)
def test_depth_scan_is_exact_and_linear(text: str, depth: int) -> None:
    from mailsync.parsers.jsonload import json_depth

    assert json_depth(text) == depth


API_FIXTURE = (
    Path(__file__).parent / "fixtures" / "api" / "with_summary_and_terms_eur.json"
)


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "sqs-wrapped"])
def test_agreement_api_response_on_the_queue_is_rejected(
    tmp_path: Path, ca: SigningAuthority, wrapped: bool
) -> None:
    # Only the Agreement API source speaks for the "api" channel: the same
    # JSON written to the queue is a forgery, never an unverified snapshot.
    from mailsync.aws.sqs_policy import admit_json
    from mailsync.config import load
    from mailsync.errors import RejectedError

    settings = load(config_with(tmp_path, ca))
    assert settings.sqs is not None
    body = API_FIXTURE.read_text()
    if wrapped:
        body = json.dumps({"Body": body})
    verifier = SnsVerifier(fetch=None)
    with pytest.raises(RejectedError, match="Agreement API response"):
        admit_json(body, settings.sqs, verifier)


def test_replay_of_a_saved_agreement_api_response_is_rejected(
    tmp_path: Path, ca: SigningAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config_with(tmp_path, ca)
    assert main(["replay", "--config", str(cfg), str(API_FIXTURE)]) == 0
    out, err = capsys.readouterr()
    assert "rejected: a saved Agreement API response is not trusted" in err
    assert "replayed 0 inputs" in out
    assert crm_rows(tmp_path) == 0


@pytest.mark.parametrize("lambda_record", [False, True], ids=["envelope", "Sns"])
def test_signed_envelope_with_eventbridge_keys_beside_it_is_rejected(
    moto: MotoServer,
    state: sqlite3.Connection,
    ca: SigningAuthority,
    lambda_record: bool,
) -> None:
    # A genuine signed envelope verifies its own signed keys only; unsigned
    # EventBridge keys written beside them must not be what gets parsed.
    env = Env(moto, state, ca, eventbridge_accounts=("123456789012",))
    signed = ca.sign(notification(subscribe_success()))
    forged = eventbridge(account="999999999999")
    hybrid = {"EventSource": "aws:sns", "Sns": signed} if lambda_record else signed
    env.send({**hybrid, **forged})
    env.send(signed)  # the genuine control
    result = env.run()
    assert (result.rejected, result.synced) == (1, 1)
    [event] = env.events()
    assert (event.kind, event.trust) == (Kind.SUBSCRIPTION_SUCCEEDED, Trust.VERIFIED)
    [(outcome, reason, _)] = env.quarantine()
    assert outcome == "rejected"
    assert "both an SNS envelope and an EventBridge event" in reason
