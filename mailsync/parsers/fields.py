"""Label/value extraction from the text of a notification email.

AWS documents each email's field *labels* (seller guide, "Email
notifications"), not its layout, so extraction is lenient about layout and
leaves value checking to `values`:

- labels match case- and whitespace-insensitively (tabs, non-breaking spaces);
- the value follows a colon on the same line, or sits on the next non-empty
  line when the label stands alone (with or without its colon);
- several `Label: value` pairs may share a line (`Product name: X   Product
  ID: prod-...`); a pair starts at the line start or after whitespace, `|`,
  `,` or `;`;
- bullets (`*`, `-`, `•`) and table pipes before a label are ignored.

`extract(text)` returns every value seen per canonical key, in order, so the
caller can tell "one value" from "conflicting values".
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: label text (lower case, single spaces) -> canonical key
LABELS: Mapping[str, str] = {
    "customer company name": "customer_name",
    "company name": "customer_name",
    "customer name": "customer_name",
    "customer aws account id": "customer_accounts",
    "customer aws account ids": "customer_accounts",
    "customer account id": "customer_accounts",
    "customer account ids": "customer_accounts",
    "buyer aws account id": "customer_accounts",
    "subscribing aws account id": "customer_accounts",
    "product name": "product_name",
    "product title": "product_name",
    "product id": "product_id",
    "offer name": "offer_name",
    "offer title": "offer_name",
    "offer id": "offer_id",
    "agreement id": "agreement_id",
    "new agreement id": "new_agreement_id",
    "previous agreement id": "previous_agreement_id",
    "original agreement id": "previous_agreement_id",
    "replaced agreement id": "previous_agreement_id",
    "agreement start date": "start_date",
    "start date": "start_date",
    "service start date": "start_date",
    "agreement end date": "end_date",
    "end date": "end_date",
    "service end date": "end_date",
    "agreement acceptance date": "acceptance_date",
    "acceptance date": "acceptance_date",
    "offer published date": "offer_published_date",
    "offer publish date": "offer_published_date",
    "offer expiration date": "offer_expiration_date",
    "offer expiry date": "offer_expiration_date",
    "purchase amount": "purchase_amount",
    "total contract value": "purchase_amount",
    "new purchase amount": "new_purchase_amount",
    "wholesale price": "wholesale_price",
    "margin": "margin",
    "currency code": "currency",
    "currency": "currency",
    "isv": "isv_name",
    "isv name": "isv_name",
    "isv aws account id": "isv_account_id",
    "channel partner": "channel_partner_name",
    "channel partner name": "channel_partner_name",
    "channel partner aws account id": "channel_partner_account_id",
    "cp aws account id": "channel_partner_account_id",
    "opportunity id": "opportunity_id",
    "resale authorization id": "resale_authorization_id",
    "selling authorization id": "resale_authorization_id",
    "selling authorization duration": "duration",
    "resource arn": "resource_arn",
}

#: keys whose value may continue over following lines (lists of accounts)
_LIST_KEYS = frozenset({"customer_accounts"})


def _label_alternation() -> str:
    parts = []
    for label in sorted(LABELS, key=len, reverse=True):
        parts.append(r"\s+".join(re.escape(word) for word in label.split()))
    return "|".join(parts)


_ALT = _label_alternation()
# A label with its colon, anywhere a pair can start. "(s)" covers "ID(s)".
_PAIR_RE = re.compile(
    r"(?:^|(?<=[\s|,;]))(?P<label>" + _ALT + r")\s*(?:\(s\))?[*_]*\s*[:：]",
    re.IGNORECASE,
)
# A line holding only a label (value on the next line), colon optional.
_ALONE_RE = re.compile(r"(?P<label>" + _ALT + r")\s*(?:\(s\))?\s*[:：]?", re.IGNORECASE)
_ALONE_MAX = max(map(len, LABELS)) + 16
# "Label<TAB>value" / "Label    value": a plain-text table without colons.
_GAP_RE = re.compile(
    r"(?P<label>" + _ALT + r")(?:\(s\))?[*_]*(?: {2,}|\t+)(?P<value>\S.*)", re.I
)
_LEAD_RE = re.compile(r"^[\s>*•·|\-–]*")
_ACC = r"(?:\d{12}|\d{4}-\d{4}-\d{4})"
_ACCOUNT_LINE_RE = re.compile(
    r"\s*" + _ACC + r"(?:\s*(?:,|;|/|&|and)?\s*" + _ACC + r")*\s*[,;]?\s*"
)
# Zero-width and exotic spaces that HTML mail puts between label words.
_SPACES = str.maketrans(
    {"\u00a0": " ", "\u2007": " ", "\u202f": " ", "\u200b": "", "\ufeff": "", "\t": " "}
)


_TABLESS = dict(_SPACES)
del _TABLESS[ord("\t")]


def _key(label: str) -> str:
    return LABELS[" ".join(label.lower().split())]


def normalize_text(text: str) -> list[str]:
    """Lines of `text` with exotic spaces folded and leading bullets/quotes gone."""
    lines = []
    for line in text.translate(_TABLESS).splitlines():
        lines.append(_LEAD_RE.sub("", line).rstrip())
    return lines


def extract(text: str) -> dict[str, list[str]]:
    """Every labelled value in `text`: canonical key -> raw values in order."""
    lines = normalize_text(text)
    out: dict[str, list[str]] = {}
    count = len(lines)
    i = 0
    while i < count:
        line = lines[i]
        i += 1
        if not line:
            continue
        # Cheap tests first: most body lines are prose without a colon.
        alone = _ALONE_RE.fullmatch(line) if len(line) <= _ALONE_MAX else None
        if alone is not None:
            key = _key(alone.group("label"))
            value, i = _next_value(lines, i, key)
            if value is not None:
                out.setdefault(key, []).append(value)
            continue
        pairs = list(_PAIR_RE.finditer(line)) if ":" in line or "：" in line else []
        if not pairs:
            if "\t" not in line and "  " not in line:
                continue
            gap = _GAP_RE.match(line)
            if gap is not None:
                key = _key(gap.group("label"))
                out.setdefault(key, []).append(gap.group("value").strip())
            continue
        for n, match in enumerate(pairs):
            end = pairs[n + 1].start() if n + 1 < len(pairs) else len(line)
            # A tab inside a value is a column boundary (HTML layout cells).
            value = line[match.end() : end].strip(" \t|,;").split("\t")[0].strip()
            key = _key(match.group("label"))
            if not value and n + 1 == len(pairs):
                found, i = _next_value(lines, i, key)
                value = found or ""
            if value:
                if key in _LIST_KEYS:
                    while i < count and _ACCOUNT_LINE_RE.fullmatch(lines[i]):
                        value += " " + lines[i]
                        i += 1
                out.setdefault(key, []).append(value)
    return out


def _next_value(lines: list[str], i: int, key: str) -> tuple[str | None, int]:
    """The next non-empty line as a value, unless it is itself a label line."""
    count = len(lines)
    j = i
    while j < count and not lines[j]:
        j += 1
        if j - i > 2:  # a value is never far below its label
            return None, i
    if j >= count:
        return None, i
    line = lines[j]
    if _ALONE_RE.fullmatch(line) or _PAIR_RE.match(line):
        return None, i
    value = line
    j += 1
    while key in _LIST_KEYS and j < count and _ACCOUNT_LINE_RE.fullmatch(lines[j]):
        value += " " + lines[j]
        j += 1
    return value, j
