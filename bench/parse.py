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
full/baseline; the goal is >= 0.8 (extraction adds at most a quarter).

Usage: .venv/bin/python bench/parse.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
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

from mailsync.parsers import parse_email  # noqa: E402

_ID_RES = [
    (re.compile(rb"agmt-[a-z0-9]{25}"), b"agmt-", 25),
    (re.compile(rb"offer-[a-z0-9]{13}"), b"offer-", 13),
    (re.compile(rb"prod-[a-z0-9]{13}"), b"prod-", 13),
]
_ACCOUNT = re.compile(rb"(?<![\d-])\d{12}(?![\d-])")
_MSGID = re.compile(rb"^(Message-ID: <)[^>]+>", re.I | re.M)
_ALNUM = string.ascii_lowercase + string.digits


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


def baseline(raw: bytes) -> int:
    mail = mailparser.parse_from_bytes(raw)
    seen = (mail.subject, mail.from_, mail.date, mail.message_id)
    text = "".join(mail.text_plain) + "".join(mail.text_html)
    return len(text) + len(seen)


def full(raw: bytes) -> int:
    return len(parse_email(raw).kind)


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
    mails = corpus(args.count)
    kinds = Counter(parse_email(raw).kind.value for raw in mails)
    size = sum(map(len, mails)) / len(mails)
    print(f"corpus: {len(mails)} emails, {len(kinds)} kinds, mean {size:,.0f} bytes")
    print("  " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    # Interleave the two measurements so machine noise hits both alike.
    base_rates, full_rates = [], []
    for _ in range(args.rounds):
        base_rates.append(rate(baseline, mails, 1))
        full_rates.append(rate(full, mails, 1))
    base, fast = max(base_rates), max(full_rates)
    print(f"baseline mail-parser parse + reads: {base:,.0f} emails/s")
    print(f"full parse_email (classify+extract): {fast:,.0f} events/s")
    print(f"ratio full/baseline: {fast / base:.2f} (goal >= 0.80)")


if __name__ == "__main__":
    main()
