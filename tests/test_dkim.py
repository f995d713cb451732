"""DKIM and sender policy (mailsync.security.email_trust) with real signatures.

Messages are signed here with dkimpy and a locally generated RSA key; the
public key is served through an injected DNS function, so no network is used.
"""

from __future__ import annotations

import base64
import dataclasses
import socket
from collections.abc import Callable
from datetime import UTC, datetime

import dkim
import dns.exception
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailsync.config import SecuritySettings, from_dict
from mailsync.errors import TransientError
from mailsync.event import Event, Kind, Trust
from mailsync.security import dkim_check
from mailsync.security.email_trust import check_email

BODY = (
    b"Customer accepted an AWS Marketplace offer\r\n"
    b"\r\n"
    b"Offer ID: offer-abcdefghijklm\r\n"
    b"Agreement ID: agmt-abcdefghijklmnopqrstuvwxy\r\n"
    b"Customer AWS account ID: 123456789012\r\n"
)

EVENT = Event(
    kind=Kind.OFFER_ACCEPTED,
    source_id="m1@marketplace.aws",
    occurred_at=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
    offer_id="offer-abcdefghijklm",
    agreement_id="agmt-abcdefghijklmnopqrstuvwxy",
    customer_account_id="123456789012",
    customer_account_ids=("123456789012",),
    agreement_status="ACTIVE",
)

SIGNED_HEADERS = [
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
]


class Keys:
    """One RSA key published under several (selector, domain) names."""

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        self.txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki)
        self.lookups: list[bytes] = []

    def dnsfunc(self, name: bytes, timeout: float = 5) -> bytes | None:
        """Serve the key for any `<sel>._domainkey.<domain>.` except `nokey`."""
        self.lookups.append(name)
        if name.startswith(b"nokey."):
            return None
        return self.txt

    def sign(self, msg: bytes, domain: str, selector: str = "sel1") -> bytes:
        header: bytes = dkim.sign(
            msg,
            selector.encode(),
            domain.encode(),
            self.private_pem,
            include_headers=SIGNED_HEADERS,
        )
        return header + msg


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def message(
    sender: str = "no-reply@marketplace.aws",
    subject: str = "Customer accepted an AWS Marketplace offer",
    body: bytes = BODY,
    extra: bytes = b"",
) -> bytes:
    return (
        f"From: AWS Marketplace <{sender}>\r\n"
        "To: seller@example.com\r\n"
        f"Subject: {subject}\r\n"
        "Date: Sat, 01 Mar 2025 12:00:00 +0000\r\n"
        "Message-ID: <m1@marketplace.aws>\r\n".encode()
        + extra
        + b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"\r\n" + body
    )


def forwarded_message(forwarder: str = "ops@example.com") -> bytes:
    quoted = (
        b"FYI\r\n\r\n---------- Forwarded message ---------\r\n"
        b"From: AWS Marketplace <no-reply@marketplace.aws>\r\n"
        b"Date: Sat, 1 Mar 2025 at 12:00\r\n"
        b"Subject: Customer accepted an AWS Marketplace offer\r\n"
        b"To: seller@example.com\r\n\r\n" + BODY
    )
    return message(
        sender=forwarder,
        subject="Fwd: Customer accepted an AWS Marketplace offer",
        body=quoted,
    )


DEFAULTS = SecuritySettings()


def check(
    raw: bytes,
    keys: Keys,
    settings: SecuritySettings = DEFAULTS,
    event: Event = EVENT,
) -> Event:
    return check_email(raw, event, settings, dnsfunc=keys.dnsfunc)


def test_passing_signature_is_verified(keys: Keys) -> None:
    out = check(keys.sign(message(), "marketplace.aws"), keys)
    assert out.trust is Trust.VERIFIED
    assert out.reason is None
    assert out == EVENT.replace(trust=Trust.VERIFIED)
    assert keys.lookups[-1] == b"sel1._domainkey.marketplace.aws."


def test_crlf_to_lf_copy_still_verifies(keys: Keys) -> None:
    signed = keys.sign(message(), "marketplace.aws").replace(b"\r\n", b"\n")
    assert check(signed, keys).trust is Trust.VERIFIED


def test_tampered_body_is_rejected(keys: Keys) -> None:
    signed = keys.sign(message(), "marketplace.aws")
    tampered = signed.replace(b"123456789012", b"999999999999")
    out = check(tampered, keys)
    assert out.trust is Trust.REJECTED
    assert out.reason == "DKIM fails: body hash mismatch (d=marketplace.aws, s=sel1)"


def test_tampered_signed_header_is_rejected(keys: Keys) -> None:
    signed = keys.sign(message(), "marketplace.aws")
    tampered = signed.replace(b"Subject: Customer", b"Subject: Kustomer")
    out = check(tampered, keys)
    assert out.trust is Trust.REJECTED
    assert out.reason is not None
    assert out.reason.startswith("DKIM fails: ")
    assert "d=marketplace.aws" in out.reason


def test_missing_signature_is_rejected(keys: Keys) -> None:
    out = check(message(), keys)
    assert out.trust is Trust.REJECTED
    assert out.reason == "DKIM signature missing"


def test_authentication_results_header_alone_is_not_trusted(keys: Keys) -> None:
    raw = message(
        extra=b"Authentication-Results: mx.example.com; dkim=pass "
        b"header.d=marketplace.aws; spf=pass; dmarc=pass\r\n"
    )
    out = check(raw, keys)
    assert out.trust is Trust.REJECTED
    assert out.reason == "DKIM signature missing"
    relaxed = dataclasses.replace(DEFAULTS, require_dkim=False)
    assert check(raw, keys, relaxed).trust is Trust.UNVERIFIED


def test_signature_from_evil_domain_is_rejected(keys: Keys) -> None:
    keys.lookups.clear()
    out = check(keys.sign(message(), "evil.example"), keys)
    assert out.trust is Trust.REJECTED
    assert out.reason == (
        "DKIM signature missing for marketplace.aws: d=evil.example is not an "
        "allowed sender domain"
    )
    # An unaligned signature is not even looked up.
    assert keys.lookups == []


def test_sender_outside_allowed_domains_is_rejected(keys: Keys) -> None:
    raw = keys.sign(message(sender="no-reply@evil.example"), "evil.example")
    out = check(raw, keys)
    assert out.trust is Trust.REJECTED
    assert out.reason == (
        "sender evil.example is not an allowed sender domain "
        "([security] allowed_sender_domains)"
    )


def test_lookalike_domain_is_not_a_subdomain(keys: Keys) -> None:
    raw = keys.sign(message(sender="no-reply@evilmarketplace.aws"), "marketplace.aws")
    out = check(raw, keys)
    assert out.trust is Trust.REJECTED
    assert out.reason is not None
    assert out.reason.startswith("sender evilmarketplace.aws is not an allowed")


def test_from_and_d_misaligned_is_rejected(keys: Keys) -> None:
    # Both domains are allowed, but aws.com does not vouch for marketplace.aws.
    out = check(keys.sign(message(), "aws.com"), keys)
    assert out.trust is Trust.REJECTED
    assert out.reason == (
        "DKIM signature missing for marketplace.aws: d=aws.com is not aligned "
        "with the sender domain marketplace.aws"
    )


@pytest.mark.parametrize(
    ("sender", "domain"),
    [
        ("marketplace@aws.com", "aws.com"),
        ("partner-central@aws.com", "email.aws.com"),
        ("notifications@mail.aws.com", "aws.com"),
        ("no-reply@marketplace.aws", "eu.marketplace.aws"),
    ],
)
def test_subdomain_alignment_verifies(keys: Keys, sender: str, domain: str) -> None:
    out = check(keys.sign(message(sender=sender), domain), keys)
    assert out.trust is Trust.VERIFIED


def test_one_good_signature_among_others_verifies(keys: Keys) -> None:
    # Real AWS mail carries an amazonses.com signature next to its own.
    raw = keys.sign(keys.sign(message(), "marketplace.aws"), "amazonses.com")
    assert check(raw, keys).trust is Trust.VERIFIED


def test_key_not_published_is_rejected(keys: Keys) -> None:
    out = check(keys.sign(message(), "marketplace.aws", selector="nokey"), keys)
    assert out.trust is Trust.REJECTED
    assert out.reason == (
        "DKIM fails: no public key published in DNS (d=marketplace.aws, s=nokey)"
    )


def test_two_from_headers_are_rejected(keys: Keys) -> None:
    signed = keys.sign(message(), "marketplace.aws")
    raw = b"From: <no-reply@evil.example>\r\n" + signed
    out = check(raw, keys)
    assert out.trust is Trust.REJECTED
    assert out.reason == "message has 2 From headers (RFC 5322 allows one)"


def test_require_dkim_false_reports_verified_or_unverified(keys: Keys) -> None:
    relaxed = dataclasses.replace(DEFAULTS, require_dkim=False)
    good = keys.sign(message(), "marketplace.aws")
    assert check(good, keys, relaxed).trust is Trust.VERIFIED
    tampered = good.replace(b"123456789012", b"999999999999")
    out = check(tampered, keys, relaxed)
    assert (out.trust, out.reason) == (Trust.UNVERIFIED, None)
    assert check(message(), keys, relaxed).trust is Trust.UNVERIFIED
    # The sender allow-list still applies.
    evil = check(message(sender="a@evil.example"), keys, relaxed)
    assert evil.trust is Trust.REJECTED


def test_unrecognized_events_pass_through_untouched(keys: Keys) -> None:
    event = Event.unrecognized("newsletter")
    out = check(message(sender="news@evil.example"), keys, event=event)
    assert out is event


def test_forwarded_rejected_by_default(keys: Keys) -> None:
    raw = keys.sign(forwarded_message(), "example.com")
    out = check(raw, keys)
    assert out.trust is Trust.REJECTED
    assert out.reason is not None
    assert out.reason.startswith(
        "inline-forwarded message: forwarded by ops@example.com, the original's "
        "DKIM signature cannot be checked"
    )


ACCEPT_FWD = dataclasses.replace(
    DEFAULTS, forwarded="accept_unverified", internal_forwarders=("example.com",)
)


def test_forwarded_accepted_unverified_from_signed_listed_forwarder(
    keys: Keys,
) -> None:
    raw = keys.sign(forwarded_message(), "example.com")
    out = check(raw, keys, ACCEPT_FWD)
    assert (out.trust, out.reason) == (Trust.UNVERIFIED, None)


def test_forwarded_from_unlisted_forwarder_is_rejected(keys: Keys) -> None:
    raw = keys.sign(forwarded_message("someone@other.example"), "other.example")
    out = check(raw, keys, ACCEPT_FWD)
    assert out.reason == (
        "inline-forwarded message: forwarder someone@other.example is not listed "
        "in [security] internal_forwarders"
    )
    assert out.trust is Trust.REJECTED


def test_forwarded_without_forwarder_signature(keys: Keys) -> None:
    raw = forwarded_message()
    out = check(raw, keys, ACCEPT_FWD)
    assert out.trust is Trust.REJECTED
    assert out.reason == (
        "inline-forwarded message: the forwarding message has no passing DKIM "
        "signature for example.com (DKIM signature missing)"
    )
    # Without require_dkim, the listing alone is enough.
    listed = dataclasses.replace(
        ACCEPT_FWD, require_dkim=False, internal_forwarders=("ops@example.com",)
    )
    assert check(raw, keys, listed).trust is Trust.UNVERIFIED


def test_forwarded_with_broken_forwarder_signature(keys: Keys) -> None:
    raw = keys.sign(forwarded_message(), "example.com").replace(b"FYI", b"FYl")
    out = check(raw, keys, ACCEPT_FWD)
    assert out.trust is Trust.REJECTED
    assert out.reason is not None
    assert out.reason.endswith("(DKIM fails: body hash mismatch)")


def test_dns_timeout_is_transient(keys: Keys) -> None:
    def timing_out(name: bytes, timeout: float = 5) -> bytes | None:
        raise TransientError(f"DKIM key look-up for {name!r} timed out")

    raw = keys.sign(message(), "marketplace.aws")
    with pytest.raises(TransientError, match="timed out"):
        check_email(raw, EVENT, DEFAULTS, dnsfunc=timing_out)


def test_dns_failure_of_one_signature_does_not_hide_a_pass(keys: Keys) -> None:
    def flaky(name: bytes, timeout: float = 5) -> bytes | None:
        if name.startswith(b"down."):
            raise TransientError("SERVFAIL")
        return keys.txt

    raw = keys.sign(keys.sign(message(), "marketplace.aws"), "marketplace.aws", "down")
    assert check_email(raw, EVENT, DEFAULTS, dnsfunc=flaky).trust is Trust.VERIFIED


def _resolver_raising(
    monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> Callable[[bytes], bytes | None]:
    def resolve(self: object, *args: object, **kwargs: object) -> object:
        raise exc

    # dnspython's own resolve(), not mailsync code: the network is not reachable.
    monkeypatch.setattr(dns.resolver.Resolver, "resolve", resolve)
    return dkim_check.resolver_dnsfunc(("127.0.0.1",), 0.5)


def test_resolver_dnsfunc_classifies_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    lookup = _resolver_raising(monkeypatch, dns.exception.Timeout())
    with pytest.raises(TransientError, match=r"timed out after 0\.5 s"):
        lookup(b"sel1._domainkey.marketplace.aws.")
    lookup = _resolver_raising(monkeypatch, dns.resolver.NoNameservers())
    with pytest.raises(TransientError, match="SERVFAIL"):
        lookup(b"sel1._domainkey.marketplace.aws.")
    lookup = _resolver_raising(monkeypatch, dns.resolver.NXDOMAIN())
    assert lookup(b"sel1._domainkey.marketplace.aws.") is None


def test_resolver_dnsfunc_against_a_silent_server() -> None:
    # A UDP socket on loopback that never answers: a real dnspython timeout.
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        port = sock.getsockname()[1]
        lookup = dkim_check.resolver_dnsfunc(("127.0.0.1",), 0.3, port=port)
        with pytest.raises(TransientError, match=r"timed out after 0\.3 s"):
            lookup(b"sel1._domainkey.marketplace.aws.")
        # And through the whole check: the message stays pending.
        with pytest.raises(TransientError):
            check_email(
                Keys().sign(message(), "marketplace.aws"),
                EVENT,
                dataclasses.replace(DEFAULTS, dns_timeout=0.3),
                dnsfunc=lookup,
            )
    finally:
        sock.close()


def test_config_keys_reach_the_settings() -> None:
    settings = from_dict(
        {
            "security": {
                "require_dkim": False,
                "allowed_sender_domains": ["marketplace.aws"],
                "dns_servers": ["192.0.2.53"],
                "dns_timeout": 2.5,
                "forwarded": "accept_unverified",
                "internal_forwarders": ["ops@example.com"],
            }
        }
    ).security
    assert settings.require_dkim is False
    assert settings.allowed_sender_domains == ("marketplace.aws",)
    assert settings.dns_timeout == 2.5
    assert settings.internal_forwarders == ("ops@example.com",)
