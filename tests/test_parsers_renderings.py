"""Every fixture case re-rendered in random other layouts parses to the same facts.

The golden fixtures pin one rendering per case. Here each declared case (facts
in `tests/fixtures/email/_cases.py`) is rendered again with a random layout,
transfer encoding, charset, line ending, date and money style, label order,
pairs per line, sender and forward style (seeded, so failures reproduce), and
the parse must equal the expected JSON computed from the facts.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from mailsync.parsers import parse_email

FIXTURES = Path(__file__).parent / "fixtures"
sys.path[:0] = [str(FIXTURES), str(FIXTURES / "email")]

import make_email_fixtures as gen  # noqa: E402
from _cases import all_cases  # noqa: E402

SENDERS = [
    "AWS Marketplace <no-reply@marketplace.aws>",
    "AWS Marketplace <marketplace@aws.com>",
    "AWS Partner Central <partner-central@aws.com>",
    "AWS Notifications <notifications@aws.com>",
]
VARIANTS = 6


def _encodable(case: Any, charset: str) -> bool:
    try:
        gen.plain_body(case).encode(charset)
    except UnicodeEncodeError:
        return False
    return True


def _variant(case: Any, rng: random.Random) -> Any:
    layout = rng.choice(["plain", "html_table", "html_bold", "html_th", "alt", "new"])
    currencies = {
        v[1]
        for k, v in case.facts.items()
        if k in ("purchase_amount", "wholesale_price", "margin")
    }
    money = ["code", "suffix", "nogroup"] + (["sym"] if currencies <= {"USD"} else [])
    labels = case.labels[:]
    rng.shuffle(labels)
    variant = dataclasses.replace(
        case,
        layout=layout,
        labels=labels,
        cte=rng.choice(["8bit", "quoted-printable", "base64"]),
        crlf=rng.random() < 0.3,
        date_style=rng.choice(["mdy", "iso", "long", "mon"]),
        money_style=rng.choice(money),
        sender=rng.choice(SENDERS),
        pairs_per_line=rng.choice([1, 1, 2, 3]),
        forward=(
            rng.choice([None, None, "gmail", "outlook", "apple", "quoted"])
            if layout in ("plain", "new")
            else None
        ),
    )
    charset = rng.choice(["utf-8", "iso-8859-1", "windows-1252"])
    return dataclasses.replace(
        variant, charset=charset if _encodable(variant, charset) else "utf-8"
    )


CASES = [(case, n) for case in all_cases() for n in range(VARIANTS)]


@pytest.mark.parametrize(
    ("case", "n"), CASES, ids=[f"{c.kind}/{c.name}#{n}" for c, n in CASES]
)
def test_rerendered_case_parses_to_its_facts(case: Any, n: int) -> None:
    variant = _variant(case, random.Random(f"{case.kind}/{case.name}/{n}"))
    raw, occurred = gen.build(variant)
    expected = gen.expected(variant, occurred)
    actual = parse_email(raw).to_json()
    assert actual == expected, (
        f"layout={variant.layout} cte={variant.cte} charset={variant.charset} "
        f"date={variant.date_style} money={variant.money_style} "
        f"forward={variant.forward} pairs={variant.pairs_per_line}"
    )
