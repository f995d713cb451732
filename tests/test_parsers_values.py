"""Value normalizers: IDs, accounts, dates and money are strict about shape."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from mailsync.event import Money
from mailsync.parsers import values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("03-03-2026", date(2026, 3, 3)),
        ("3-3-2026", date(2026, 3, 3)),
        ("12/31/2026", date(2026, 12, 31)),
        ("2026-03-03", date(2026, 3, 3)),
        ("2026-03-03T14:07:11Z", date(2026, 3, 3)),
        ("MAR-3-2026", date(2026, 3, 3)),
        ("Mar-03-2026", date(2026, 3, 3)),
        ("January 1, 2026", date(2026, 1, 1)),
        ("Sept 9 2026", date(2026, 9, 9)),
        ("1 January 2026", date(2026, 1, 1)),
        ("03-03-2026 14:07 UTC", date(2026, 3, 3)),
        ("JAN-1-9999", values.NO_END),
        ("12-31-9999", values.NO_END),
    ],
)
def test_dates_in_every_rendering(text: str, expected: date) -> None:
    assert values.parse_date(text) == expected


@pytest.mark.parametrize(
    "text", ["13-40-2026", "03.03.2026", "soon", "", "Foo 3, 2026"]
)
def test_dates_that_are_not_clearly_dates_are_none(text: str) -> None:
    assert values.parse_date(text) is None


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("USD 48,000.00", "48000.00", "USD"),
        ("$48,000.00", "48000.00", "USD"),
        ("US$ 1,234.5", "1234.5", "USD"),
        ("48000.00 USD", "48000.00", "USD"),
        ("USD 48000", "48000", "USD"),
        ("JPY 1,200,000", "1200000", "JPY"),
        ("€1.234,00", "1234.00", "EUR"),
        ("1.234.567,89 EUR", "1234567.89", "EUR"),
        ("EUR 12 345.00", "12345.00", "EUR"),
        ("£99.99", "99.99", "GBP"),
        ("USD $270,000.00", "270000.00", "USD"),
    ],
)
def test_money_in_every_rendering(text: str, amount: str, currency: str) -> None:
    assert values.parse_money(text) == Money(Decimal(amount), currency)


@pytest.mark.parametrize(
    "text",
    [
        "USD 48,00",  # comma decimal or a typo: ambiguous
        "48,000.00",  # no currency
        "USD 10.00 or USD 12.00",  # two amounts
        "¥1,000",  # yen or yuan
        "USD 1,23,456.00",  # malformed grouping
        "free",
    ],
)
def test_ambiguous_money_is_none(text: str) -> None:
    assert values.parse_money(text) is None


def test_money_takes_a_separate_currency_code() -> None:
    assert values.parse_money("48,000.00", "USD") == Money(Decimal("48000.00"), "USD")
    assert Money(Decimal("48000"), "USD").to_json()["amount"] == "48000.00"


def test_ids_must_have_their_documented_shape() -> None:
    agmt = "agmt-3k8d0v7q2m5xw9b1c4n6r8t0y"
    assert values.agreement_id(f"{agmt} (view)") == agmt
    assert values.agreement_id("agmt-12345") is None  # too short
    assert values.agreement_id("agmt-3K8D0V7Q2M5XW9B1C4N6R8T0Y") is None  # upper case
    assert values.agreement_id(f"{agmt}, agmt-9p1m4x7c2v5b8n0q3w6e9r2t5") is None
    assert values.offer_id("offer-b2xk7m4q9d1zs.") == "offer-b2xk7m4q9d1zs"
    assert values.offer_id("offer-abc") is None
    assert values.product_id("prod-7hq2kx3m9pz4d") == "prod-7hq2kx3m9pz4d"
    assert values.product_id("xprod-7hq2kx3m9pz4d") is None
    assert values.resale_authorization_id("resaleauthz-yaxjqxiskysxa") == (
        "resaleauthz-yaxjqxiskysxa"
    )


def test_account_ids_keep_leading_zeros_and_accept_console_forms() -> None:
    assert values.account_id("004567890123") == "004567890123"
    assert values.account_id("0045-6789-0123") == "004567890123"
    assert values.account_id("0045 6789 0123") == "004567890123"
    assert values.account_id("12345678901") is None  # 11 digits
    assert values.account_id("1234567890123") is None  # 13 digits
    assert values.account_id("111111111111, 222222222222") is None
    assert values.account_ids("111111111111, 222222222222 and 111111111111") == [
        "111111111111",
        "222222222222",
    ]


def test_text_values_and_opaque_ids() -> None:
    assert (
        values.clean_text("  Société\u00a0Générale   Tech ") == "Société Générale Tech"
    )
    assert values.clean_text("N/A") is None
    assert values.opaque_id("O1234567") == "O1234567"
    assert values.opaque_id("n/a") is None
    assert values.opaque_id("two words") is None
    arn = "arn:aws:payments:us-east-1:123456789012:paymentinstrument:pi-0example"
    assert values.resource_arn(f"{arn}.") == arn
    assert values.resource_arn("not an arn") is None


def test_year_first_dates_with_slashes_or_dots() -> None:
    assert values.parse_date("2026/03/04") == date(2026, 3, 4)
    assert values.parse_date("2026.03.04") == date(2026, 3, 4)
    assert values.parse_date("2026-03/04") is None
