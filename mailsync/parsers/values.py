"""Value normalizers for email fields: IDs, account IDs, dates and money.

Every function takes the raw text found after a label and returns the
normalized value, or `None` when the value is not clearly there or does not
have its documented shape. None of them guesses: an ambiguous value is `None`.

ID shapes follow the AWS Marketplace documentation (seller guide, email
notifications and EventBridge pages; see reference section 7): agreement IDs
`agmt-` + 20-32 lowercase alphanumerics, offers `offer-` + 10-32, products
`prod-` + 10-32, resale authorizations `resaleauthz-` + 10-32, accounts 12
digits (leading zeros kept; the console also shows them as `1234-5678-9012`).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from mailsync.event import Money

_EDGE_L = r"(?<![A-Za-z0-9_-])"
_EDGE_R = r"(?![A-Za-z0-9_-])"
AGREEMENT_ID_RE = re.compile(_EDGE_L + r"agmt-[a-z0-9]{20,32}" + _EDGE_R)
OFFER_ID_RE = re.compile(_EDGE_L + r"offer-[a-z0-9]{10,32}" + _EDGE_R)
PRODUCT_ID_RE = re.compile(_EDGE_L + r"prod-[a-z0-9]{10,32}" + _EDGE_R)
RESALE_ID_RE = re.compile(_EDGE_L + r"resaleauthz-[a-z0-9]{10,32}" + _EDGE_R)
_ACCOUNT_RE = re.compile(
    r"(?<![\d-])(\d{12}|\d{4}-\d{4}-\d{4}|\d{4} \d{4} \d{4})(?![\d-])"
)
_ARN_RE = re.compile(r"(?<![\w-])arn:aws[a-z-]*:[A-Za-z0-9-]*:[a-z0-9-]*:\d{0,12}:\S+")
_OPAQUE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")
_EMPTY = frozenset({"", "-", "--", "n/a", "na", "none", "null", "not applicable", "—"})


def clean_text(value: str) -> str | None:
    """A free-text value (names, durations): trimmed, whitespace collapsed."""
    text = " ".join(value.split()).strip(" \t\"'*_")
    if text.lower().rstrip(".") in _EMPTY:
        return None
    return text or None


def _one(pattern: re.Pattern[str], value: str) -> str | None:
    if pattern.fullmatch(value):
        return value  # the value is one ID, as it mostly is: findall agrees
    found = set(pattern.findall(value))
    # Two different IDs after one label is not a value we can trust.
    return found.pop() if len(found) == 1 else None


def agreement_id(value: str) -> str | None:
    return _one(AGREEMENT_ID_RE, value)


def offer_id(value: str) -> str | None:
    return _one(OFFER_ID_RE, value)


def product_id(value: str) -> str | None:
    return _one(PRODUCT_ID_RE, value)


def resale_authorization_id(value: str) -> str | None:
    return _one(RESALE_ID_RE, value)


def account_ids(value: str) -> list[str]:
    """Every 12-digit AWS account ID in `value`, in order, without repeats."""
    if len(value) == 12 and value.isdecimal():
        return [value]  # one bare ID, as it mostly is (`isdecimal` is `\\d`)
    out: list[str] = []
    for raw in _ACCOUNT_RE.findall(value):
        account = raw.replace("-", "").replace(" ", "")
        if account not in out:
            out.append(account)
    return out


def account_id(value: str) -> str | None:
    """Exactly one account ID, else None."""
    found = account_ids(value)
    return found[0] if len(found) == 1 else None


def resource_arn(value: str) -> str | None:
    match = _ARN_RE.search(value)
    return match.group(0).rstrip(".,;)") if match else None


def opaque_id(value: str) -> str | None:
    """An identifier of undocumented format (Opportunity ID): one token or None."""
    text = value.strip(" *_").rstrip(".,;")
    if text.lower() in _EMPTY:
        return None
    return text if _OPAQUE_RE.fullmatch(text) else None


# --- dates -------------------------------------------------------------------

_MONTHS = {
    name: index
    for index, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_MON = r"(?P<mon>[A-Za-z]{3,9})\.?"
_DATE_PATTERNS = (
    # Year first: ISO 2026-03-03 (optionally with a time), 2026/03/03.
    re.compile(r"(?<!\d)(?P<y>\d{4})([-/.])(?P<m>\d{1,2})\2(?P<d>\d{1,2})(?!\d)"),
    # Documented MM-DD-YYYY (AWS uses US order; slashes read the same way).
    re.compile(r"(?<!\d)(?P<m>\d{1,2})([-/])(?P<d>\d{1,2})\2(?P<y>\d{4})(?!\d)"),
    # MMM-D-YYYY, the documented "no end" sentinel JAN-1-9999 uses it.
    re.compile(r"(?<![A-Za-z])" + _MON + r"-(?P<d>\d{1,2})-(?P<y>\d{4})(?!\d)"),
    # January 1, 2026 / Jan 1 2026
    re.compile(
        r"(?<![A-Za-z])"
        + _MON
        + r"\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>\d{4})(?!\d)"
    ),
    # 1 January 2026 / 1-Jan-2026
    re.compile(
        r"(?<!\d)(?P<d>\d{1,2})(?:st|nd|rd|th)?[\s-]+"
        + _MON
        + r"[\s-]+(?P<y>\d{4})(?!\d)"
    ),
)

_MDY_FAST = re.compile(r"\s*(\d{2})-(\d{2})-(\d{4})\s*")

#: Marker returned by `parse_date` for "no end date" (year 9999).
NO_END = date(9999, 12, 31)


def parse_date(value: str) -> date | None:
    """A calendar date in any documented/observed rendering, else None.

    Year 9999 (AWS's `JAN-1-9999` for metered agreements) returns `NO_END`;
    callers map it to `None` for the contract.
    """
    fast = _MDY_FAST.fullmatch(value)
    if fast is not None:  # the documented MM-DD-YYYY, by far the most common
        month, day, year = map(int, fast.groups())
        if year == 9999:
            return NO_END
        try:
            return date(year, month, day)
        except ValueError:
            return None
    for pattern in _DATE_PATTERNS:
        match = pattern.search(value)
        if match is None:
            continue
        groups = match.groupdict()
        named = _MONTHS.get(groups["mon"].lower()) if "mon" in groups else None
        if "mon" in groups and named is None:
            continue
        number = named if named is not None else int(groups["m"])
        year = int(groups["y"])
        if year == 9999:
            return NO_END
        try:
            return date(year, number, int(groups["d"]))
        except ValueError:
            return None
    return None


# --- money -------------------------------------------------------------------

_SYMBOLS = {
    "$": "USD",
    "US$": "USD",
    "USD$": "USD",
    "€": "EUR",
    "£": "GBP",
    "JP¥": "JPY",
}
_NUM = r"\d[\d,.' \u202f]*\d|\d"
_MONEY_PATTERNS = (
    re.compile(r"(?<![A-Za-z])(?P<cur>[A-Z]{3})\s*\$?\s*(?P<num>" + _NUM + r")"),
    re.compile(r"(?P<sym>US\$|USD\$|JP¥|[$€£])\s*(?P<num>" + _NUM + r")"),
    re.compile(
        r"(?P<num>" + _NUM + r")\s*(?:(?P<cur>[A-Z]{3})(?![A-Za-z])|(?P<sym>[€£]))"
    ),
)
_PLAIN = re.compile(r"\d+(?:\.\d+)?")
# The common renderings, in one step: a currency code and a plain or
# comma-grouped amount with at most two decimals, separated by one space.
_FAST_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"
_MONEY_FAST = re.compile(
    r"(?P<cur1>[A-Z]{3}) (?P<num1>" + _FAST_NUM + r")"
    r"|(?P<num2>" + _FAST_NUM + r") (?P<cur2>[A-Z]{3})"
)
_EN_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SPACE_GROUPED = re.compile(r"\d{1,3}(?:[ \u202f']\d{3})+(?:\.\d+)?")
# 1.234,56: dots group thousands and a comma then 1-2 digits ends it. This is
# the only comma-decimal form accepted, because only it cannot be misread.
_EU_GROUPED = re.compile(r"\d{1,3}(?:\.\d{3})+,\d{1,2}")


def parse_amount(text: str) -> Decimal | None:
    """A decimal amount from its written form; None when ambiguous (`48,00`)."""
    text = text.strip()
    if _PLAIN.fullmatch(text):
        digits = text
    elif _EN_GROUPED.fullmatch(text):
        digits = text.replace(",", "")
    elif _SPACE_GROUPED.fullmatch(text):
        digits = text.replace(" ", "").replace("\u202f", "").replace("'", "")
    elif _EU_GROUPED.fullmatch(text):
        digits = text.replace(".", "").replace(",", ".")
    else:
        return None
    try:
        return Decimal(digits)
    except InvalidOperation:
        return None


def parse_money(value: str, default_currency: str | None = None) -> Money | None:
    """`USD 48,000.00`, `$48,000.00`, `48000.00 USD`, `€1.234,00`... else None.

    An amount without a currency uses `default_currency` (a separate
    "Currency code" line) when given; two different amounts give None.
    """
    fast = _MONEY_FAST.fullmatch(value)
    if fast is not None:
        # "USD 48,000.00" / "48000.00 USD": the patterns below find exactly
        # this one amount in such a value, so skip them.
        number, currency = fast.group("num1", "cur1")
        if number is None:
            number, currency = fast.group("num2", "cur2")
        return _money(Decimal(number.replace(",", "")), currency)
    found: set[tuple[Decimal, str]] = set()
    for pattern in _MONEY_PATTERNS:
        for match in pattern.finditer(value):
            groups = match.groupdict()
            currency = groups.get("cur") or _SYMBOLS.get(groups.get("sym") or "")
            amount = parse_amount(groups["num"].rstrip(" .,'"))
            if currency and amount is not None:
                found.add((amount, currency))
        if found:
            break
    if not found and default_currency:
        amount = parse_amount(value.strip().rstrip("."))
        if amount is not None:
            found.add((amount, default_currency))
    if len(found) != 1:
        return None
    return _money(*found.pop())


_CENT = Decimal("0.01")


def _money(amount: Decimal, currency: str) -> Money | None:
    try:
        # Cents, as the contract serializes them; an amount too large for
        # Decimal's 28-digit context raises InvalidOperation (an ArithmeticError).
        return Money(amount.quantize(_CENT, ROUND_HALF_UP), currency)
    except (ValueError, ArithmeticError):
        return None


def currency_code(value: str) -> str | None:
    match = re.fullmatch(r"\s*([A-Z]{3})\b.*", value)
    return match.group(1) if match else None
