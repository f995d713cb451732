"""Email parse throughput: full `parse_email` vs a bare mail-parser parse.

Builds a corpus of >= 5,000 varied seller emails in memory from the committed
golden fixtures (every email kind and rendering: plain, HTML tables, bold
labels, multipart, quoted-printable, base64, CRLF, latin-1/cp1252, new-sender
layout, forwards, negatives) and the example inbox, giving each copy fresh
Message-ID, agreement/offer/product and account IDs. Then, on the same bytes
and in the same run, it times:

- baseline: `mailparser.parse_from_bytes` + reading subject, sender, date,
  Message-ID, text/plain and text/html (the MIME work every parse needs);
- full: `mailsync.parsers.parse_email` (MIME + classify + extract + normalize).

Prints both rates (events/s, best of several rounds) and the ratio
full/baseline; the goal is >= 0.8 (extraction adds at most a quarter). A
third figure is DKIM-inclusive: the email entrance the daemon's parse worker
runs (`email_gate.evaluate_email`: one reading, parse, and the trust check
with a real RSA signature verified on the same bytes; the key is served from
memory, as the worker's DNS cache would), on signed copies of the mails. Two
runs: the fixture bytes as stored (about 1 KB, no transport headers) and the
same mails as delivered, with the Received/DKIM/SES headers a real
notification carries in front (MIME cost grows with them, extraction does not).

Usage: .venv/bin/python bench/parse.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import base64
import random
import re
import string
import sys
import time
from collections import Counter
from pathlib import Path

import mailparser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailsync.config import SecuritySettings  # noqa: E402
from mailsync.parsers import parse_email  # noqa: E402
from mailsync.security.email_gate import evaluate_email  # noqa: E402

_ID_RES = [
    (re.compile(rb"agmt-[a-z0-9]{25}"), b"agmt-", 25),
    (re.compile(rb"offer-[a-z0-9]{13}"), b"offer-", 13),
    (re.compile(rb"prod-[a-z0-9]{13}"), b"prod-", 13),
]
_ACCOUNT = re.compile(rb"(?<![\d-])\d{12}(?![\d-])")
_MSGID = re.compile(rb"^(Message-ID: <)[^>]+>", re.I | re.M)
_ALNUM = string.ascii_lowercase + string.digits
#: full/baseline: classify + extract may add at most a quarter to MIME parsing
GOAL = 0.8


def templates() -> list[bytes]:
    paths = sorted((ROOT / "tests" / "fixtures" / "email").rglob("*.eml"))
    paths += sorted((ROOT / "tests" / "fixtures" / "negative").glob("*.eml"))
    paths += sorted((ROOT / "examples" / "inbox").glob("*.eml"))
    return [p.read_bytes() for p in paths]


def corpus(count: int, seed: int = 1) -> list[bytes]:
    """`count` emails: the templates round-robin, each with fresh IDs."""
    rng = random.Random(seed)
    bases = templates()
    out = []
    for n in range(count):
        raw = bases[n % len(bases)]
        for pattern, prefix, length in _ID_RES:
            new = prefix + "".join(rng.choices(_ALNUM, k=length)).encode()
            raw = pattern.sub(new, raw)
        account = str(rng.randrange(10**12)).zfill(12).encode()
        raw = _ACCOUNT.sub(account, raw, count=1)
        raw = _MSGID.sub(rb"\g<1>bench-" + str(n).encode() + b"@example.net>", raw)
        out.append(raw)
    return out


def _transport_headers(n: int) -> bytes:
    """Headers a delivered notification carries (Amazon SES relays, two DKIM
    signatures, authentication results), as in runtime.md's measurements."""
    sig = base64.b64encode(random.Random(n).randbytes(256)).decode()
    lines = [
        f"Received: from a{n}-12.smtp-out.amazonses.com "
        f"(a{n}-12.smtp-out.amazonses.com [54.240.8.{n % 250}]) "
        f"by mx.example-isv.com with ESMTPS id {n:08x}; "
        "Tue, 03 Mar 2026 14:07:12 +0000",
    ]
    for hop in range(4):
        lines.append(
            f"Received: from mta{hop}.internal.example-isv.com "
            f"(10.0.{hop}.{n % 250}) by relay{hop}.example-isv.com "
            f"with LMTP id {n:06x}{hop}; "
            "Tue, 03 Mar 2026 14:07:13 +0000"
        )
    for domain in ("amazonses.com", "marketplace.aws"):
        lines.append(
            f"DKIM-Signature: v=1; a=rsa-sha256; q=dns/txt; c=relaxed/simple;\n"
            f"\ts=224i4yxa5dv7c2xz3womw6peuasteono; d={domain}; t=1772546831;\n"
            "\th=From:To:Subject:MIME-Version:Content-Type:Message-ID:Date:Feedback-ID;\n"
            f"\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\n\tb={sig[:76]}\n\t{sig[76:]}"
        )
    lines += [
        "Authentication-Results: mx.example-isv.com; dkim=pass header.d=amazonses.com; "
        "spf=pass smtp.mailfrom=amazonses.com; dmarc=pass header.from=marketplace.aws",
        f"Feedback-ID: 1.us-east-1.{n:010d}=:AmazonSES",
        "X-SES-Outgoing: 2026.03.03-54.240.8.12",
        "List-Unsubscribe: <https://aws.amazon.com/marketplace/management/notifications>",
    ]
    return ("\n".join(lines) + "\n").encode()


def delivered(mails: list[bytes]) -> list[bytes]:
    """`mails` as they arrive: with transport headers in front."""
    return [_transport_headers(n) + raw for n, raw in enumerate(mails)]


def baseline(raw: bytes) -> int:
    mail = mailparser.parse_from_bytes(raw)
    seen = (mail.subject, mail.from_, mail.date, mail.message_id)
    text = "".join(mail.text_plain) + "".join(mail.text_html)
    return len(text) + len(seen)


def full(raw: bytes) -> int:
    return len(parse_email(raw).kind)


class _Signer:
    """A test key, and the DNS function that serves it (no network)."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        self.txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki)

    def dnsfunc(self, name: bytes, timeout: float = 5) -> bytes | None:
        return self.txt

    def sign(self, raw: bytes) -> bytes:
        import dkim

        domain = b"marketplace.aws"
        found = re.search(rb"^From:.*@([\w.-]+)", raw, re.M | re.I)
        if found is not None:
            domain = found.group(1).lower()
        headers = [b"from", b"to", b"subject", b"date", b"message-id"]
        headers += [b"mime-version", b"content-type"]
        header: bytes = dkim.sign(
            raw, b"bench", domain, self.pem, include_headers=headers
        )
        return header + raw


def rate(func: object, mails: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for raw in mails:
            func(raw)  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return len(mails) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bodies = corpus(args.count)
    kinds = Counter(parse_email(raw).kind.value for raw in bodies)
    print(f"corpus: {len(bodies)} emails, {len(kinds)} kinds")
    print("  " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    for label, mails in (
        ("as stored in fixtures (no transport headers)", bodies),
        ("as delivered (Received, DKIM, SES headers)", delivered(bodies)),
    ):
        size = sum(map(len, mails)) / len(mails)
        print(f"\n{label}: mean {size:,.0f} bytes")
        # Interleave the two measurements so machine noise hits both alike.
        base_rates, full_rates = [], []
        for _ in range(args.rounds):
            base_rates.append(rate(baseline, mails, 1))
            full_rates.append(rate(full, mails, 1))
        base, fast = max(base_rates), max(full_rates)
        ratio = fast / base
        verdict = "met" if ratio >= GOAL else "NOT met"
        print(f"  baseline mail-parser parse + reads: {base:,.0f} emails/s")
        print(f"  full parse_email (classify+extract): {fast:,.0f} events/s")
        print(f"  ratio full/baseline: {ratio:.2f} (goal >= {GOAL:.2f}: {verdict})")
    signer = _Signer()
    signed = [signer.sign(raw) for raw in bodies[: max(1, len(bodies) // 4)]]
    domains = ("marketplace.aws", "aws.com", "example.com", "example.net")
    settings = SecuritySettings(allowed_sender_domains=domains, parse_timeout_seconds=0)

    def trusted(raw: bytes) -> int:
        return len(evaluate_email(raw, settings, signer.dnsfunc).trust)

    verified = sum(
        evaluate_email(r, settings, signer.dnsfunc).trust.value == "verified"
        for r in signed
    )
    base_rates, dkim_rates = [], []
    for _ in range(args.rounds):
        base_rates.append(rate(baseline, signed, 1))
        dkim_rates.append(rate(trusted, signed, 1))
    base, with_dkim = max(base_rates), max(dkim_rates)
    print(f"\nDKIM-inclusive, {len(signed)} signed copies ({verified} verified):")
    print(f"  baseline mail-parser parse + reads: {base:,.0f} emails/s")
    print(f"  evaluate_email (parse + DKIM + policy): {with_dkim:,.0f} events/s")
    print(f"  ratio with DKIM/baseline: {with_dkim / base:.2f}")


if __name__ == "__main__":
    main()
