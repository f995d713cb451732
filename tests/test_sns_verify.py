"""SNS signature, certificate URL, certificate validity and topic checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto_server import (
    CERT_URL,
    SUB_TOPIC,
    SigningAuthority,
    notification,
    subscribe_success,
)

from mailsync.errors import RejectedError, TransientError
from mailsync.event import Trust
from mailsync.security.sns_verify import (
    CertificateUnavailableError,
    SnsVerifier,
    check_cert_url,
    string_to_sign,
    verifier_for_parse,
)


@pytest.fixture(scope="module")
def ca() -> SigningAuthority:
    return SigningAuthority()


def verifier(ca: SigningAuthority, **kw: Any) -> SnsVerifier:
    return SnsVerifier(fetch=ca.fetch, **kw)


@pytest.mark.parametrize("version", ["1", "2"])
def test_valid_signature_verifies(ca: SigningAuthority, version: str) -> None:
    env = ca.sign(notification(subscribe_success(), subject="hello"), version)
    v = verifier(ca)
    v.verify(env)
    assert v.verdict(env).trust is Trust.VERIFIED


def test_signature_v1_does_not_pass_as_v2(ca: SigningAuthority) -> None:
    env = ca.sign(notification(subscribe_success()), "1")
    env["SignatureVersion"] = "2"
    with pytest.raises(RejectedError, match="does not match"):
        verifier(ca).verify(env)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Message", json.dumps(subscribe_success("SomeoneElse"))),
        ("MessageId", "00000000-0000-0000-0000-000000000000"),
        ("Timestamp", (datetime.now(UTC) - timedelta(hours=1)).isoformat()),
        ("Subject", "added subject"),
    ],
)
def test_tampered_message_is_rejected(
    ca: SigningAuthority, field: str, value: str
) -> None:
    env = ca.sign(notification(subscribe_success()))
    env[field] = value
    verdict = verifier(ca).verdict(env)
    assert verdict.trust is Trust.REJECTED
    assert verdict.reason is not None


def test_unsigned_fields_may_change(ca: SigningAuthority) -> None:
    env = ca.sign(notification(subscribe_success()))
    env["UnsubscribeURL"] = "https://example.com/"
    assert verifier(ca).verdict(env).trust is Trust.VERIFIED


def test_string_to_sign_order_and_optional_subject() -> None:
    env = notification(
        {"a": 1}, message_id="m-1", timestamp=datetime(2026, 3, 3, tzinfo=UTC)
    )
    text = string_to_sign(env).decode()
    assert text == (
        'Message\n{"a": 1}\nMessageId\nm-1\nTimestamp\n2026-03-03T00:00:00.000Z\n'
        f"TopicArn\n{SUB_TOPIC}\nType\nNotification\n"
    )


def test_non_ascii_content_verifies(ca: SigningAuthority) -> None:
    message = subscribe_success(note="Zürich – 東京 ✓")
    env = ca.sign(notification(message, subject="Größe"), "2")
    # Round-trip through JSON with escapes, as in an SQS body.
    decoded = json.loads(json.dumps(env, ensure_ascii=True))
    assert verifier(ca).verdict(decoded).trust is Trust.VERIFIED


def test_wrong_topic_rejected_without_download(ca: SigningAuthority) -> None:
    fetched = len(ca.fetched)
    other = "arn:aws:sns:us-east-1:123456789012:my-own-topic"
    env = ca.sign(notification(subscribe_success(), topic=other))
    with pytest.raises(RejectedError, match="not an allowed topic"):
        verifier(ca).verify(env)
    assert len(ca.fetched) == fetched


def test_configured_topic_allowed(ca: SigningAuthority) -> None:
    other = "arn:aws:sns:us-east-1:123456789012:my-own-topic"
    env = ca.sign(notification(subscribe_success(), topic=other))
    assert verifier(ca, topic_arns=[other]).verdict(env).trust is Trust.VERIFIED
    # ...and configuring topics replaces the Marketplace defaults.
    mp = ca.sign(notification(subscribe_success()))
    assert verifier(ca, topic_arns=[other]).verdict(mp).trust is Trust.REJECTED


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-ab.pem",
            "https",
        ),
        ("https://sns.us-east-1.amazonaws.com.evil.example/x.pem", "not an SNS host"),
        ("https://evil.example/sns.us-east-1.amazonaws.com/x.pem", "not an SNS host"),
        (
            "https://s3.amazonaws.com/SimpleNotificationService-ab.pem",
            "not an SNS host",
        ),
        (
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-ab.txt",
            ".pem",
        ),
        ("https://sns.us-east-1.amazonaws.com/x.pem?redirect=1", ".pem"),
        ("https://sns.us-east-1.amazonaws.com:8443/x.pem", "port 443"),
        ("", "https"),
    ],
)
def test_bad_certificate_urls_rejected(
    ca: SigningAuthority, url: str, why: str
) -> None:
    env = ca.sign({**notification(subscribe_success()), "SigningCertURL": url})
    fetched = len(ca.fetched)
    with pytest.raises(RejectedError, match=why.replace(".", r"\.")):
        verifier(ca).verify(env)
    assert len(ca.fetched) == fetched, "a rejected URL must never be fetched"


def test_good_certificate_urls_accepted() -> None:
    check_cert_url(CERT_URL)
    check_cert_url(
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem"
    )


def test_lambda_spelling_of_cert_url(ca: SigningAuthority) -> None:
    env = ca.sign(notification(subscribe_success()))
    env["SigningCertUrl"] = env.pop("SigningCertURL")
    assert verifier(ca).verdict(env).trust is Trust.VERIFIED


def test_certificate_judged_at_message_time() -> None:
    now = datetime.now(UTC)
    # Expired yesterday: a message sent last week (held in SQS) still verifies,
    # one sent today does not.
    old = SigningAuthority(
        not_before=now - timedelta(days=60), not_after=now - timedelta(days=1)
    )
    week_ago = old.sign(
        notification(subscribe_success(), timestamp=now - timedelta(days=7))
    )
    today = old.sign(notification(subscribe_success(), timestamp=now))
    v = SnsVerifier(fetch=old.fetch)
    assert v.verdict(week_ago).trust is Trust.VERIFIED
    verdict = v.verdict(today)
    assert verdict.trust is Trust.REJECTED
    assert (
        verdict.reason is not None and "not valid at the message time" in verdict.reason
    )


def test_certificate_not_yet_valid_rejected() -> None:
    now = datetime.now(UTC)
    future = SigningAuthority(not_before=now + timedelta(days=1))
    env = future.sign(notification(subscribe_success(), timestamp=now))
    assert SnsVerifier(fetch=future.fetch).verdict(env).trust is Trust.REJECTED


def test_certificate_not_issued_to_sns_rejected() -> None:
    rogue = SigningAuthority(common_name="evil.example")
    env = rogue.sign(notification(subscribe_success()))
    with pytest.raises(RejectedError, match="not issued to an SNS host"):
        SnsVerifier(fetch=rogue.fetch).verify(env)


def test_certificate_cached_in_memory(ca: SigningAuthority) -> None:
    v = verifier(ca)
    before = len(ca.fetched)
    for _ in range(3):
        v.verify(ca.sign(notification(subscribe_success())))
    assert len(ca.fetched) == before + 1


def test_certificate_dir_consulted_before_download(
    ca: SigningAuthority, tmp_path: Path
) -> None:
    (tmp_path / CERT_URL.rsplit("/", 1)[1]).write_bytes(ca.pem)

    def no_network(url: str) -> bytes:
        raise AssertionError(f"downloaded {url}")

    v = SnsVerifier(certificate_dir=tmp_path, fetch=no_network)
    assert v.verdict(ca.sign(notification(subscribe_success()))).trust is Trust.VERIFIED


def test_parse_mode_never_downloads(ca: SigningAuthority, tmp_path: Path) -> None:
    env = ca.sign(notification(subscribe_success()))
    missing = verifier_for_parse(tmp_path).verdict(env)
    assert missing.trust is Trust.UNVERIFIED
    assert missing.reason is not None and "sns_certificate_dir" in missing.reason
    with pytest.raises(CertificateUnavailableError):
        verifier_for_parse(None).verify(env)
    (tmp_path / CERT_URL.rsplit("/", 1)[1]).write_bytes(ca.pem)
    assert verifier_for_parse(tmp_path).verdict(env).trust is Trust.VERIFIED
    env["Message"] += " "
    assert verifier_for_parse(tmp_path).verdict(env).trust is Trust.REJECTED


def test_download_failure_is_transient(ca: SigningAuthority) -> None:
    def down(url: str) -> bytes:
        raise TransientError("connection refused")

    env = ca.sign(notification(subscribe_success()))
    with pytest.raises(TransientError):
        SnsVerifier(fetch=down).verify(env)
    assert SnsVerifier(fetch=down).verdict(env).trust is Trust.UNVERIFIED


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"SignatureVersion": "3"}, "SignatureVersion"),
        ({"Signature": "not base64!!"}, "base64"),
        ({"Type": "Other"}, "Type"),
        ({"Timestamp": "yesterday"}, "ISO 8601"),
    ],
)
def test_malformed_envelopes_rejected(
    ca: SigningAuthority, change: dict[str, str], why: str
) -> None:
    env = {**ca.sign(notification(subscribe_success())), **change}
    with pytest.raises(RejectedError, match=why):
        verifier(ca).verify(env)


def test_subscription_confirmation_verifies(ca: SigningAuthority) -> None:
    env = ca.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "0a6f1d2e-9b7c-4e3a-8f5d-2c1b0a9e8d7f",
            "Token": "2336412f37fb687f5d51e6e2425ba1f0example",
            "TopicArn": SUB_TOPIC,
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        },
        "2",
    )
    assert verifier(ca).verdict(env).trust is Trust.VERIFIED
    env["Token"] = "other"
    assert verifier(ca).verdict(env).trust is Trust.REJECTED
