"""Label/value extraction from the text of a notification email.

AWS documents each email's field *labels* (seller guide, "Email
notifications"), not its layout, so extraction is lenient about layout and
leaves value checking to `values`:

- labels match case- and whitespace-insensitively (tabs, non-breaking spaces);
- the value follows a colon on the same line, or sits on the next non-empty
  line when the label stands alone (with or without its colon);
- a line may also read `Label<TAB>value` or `Label   value` (two or more
  spaces): a plain-text table without colons;
- several `Label: value` pairs may share a line (`Product name: X   Product
  ID: prod-...`) when the line starts with a label;
- `Label | value` (pipe tables) and `Label - value` work like a colon;
- bullets (`*`, `-`, `•`), quote marks (`>`) and table pipes before a label
  are ignored, and so are `(s)` and `**` emphasis after it; a currency in
  brackets after it (`Wholesale price (USD):`) is put before its value.

`extract(text)` returns every value seen per canonical key, in order, so the
caller can tell "one value" from "conflicting values".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

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


def _alternation() -> str:
    """Every label as one regex: a trie of characters (labels sharing a
    prefix try it once; a branch is left on its first character), longest
    alternatives first, words joined by any spacing."""
    root: dict[str, Any] = {}
    for label in LABELS:
        node = root
        for char in " ".join(label.split()):
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alternatives = []
        for char, child in sorted(node.items(), key=lambda kv: kv[0]):
            if not char:
                continue
            head = r"[ \t]+" if char == " " else caseless(char)
            if [c for c in child if c]:
                tail = emit(child)
                if "" in child:
                    tail += "?"
            else:
                tail = ""
            alternatives.append(head + tail)
        if len(alternatives) == 1:
            return "(?:" + alternatives[0] + ")"
        return "(?:" + "|".join(alternatives) + ")"

    return emit(root)


#: what `re.IGNORECASE` lets an ASCII letter match (Unicode simple case
#: folding adds U+0130/U+0131 to i, U+212A KELVIN SIGN to k and U+017F LONG
#: S to s)
_FOLDS = {"i": "iIİı", "k": "kKK", "s": "sSſ"}


def caseless(literal: str) -> str:
    """A regex matching `literal` exactly as `re.IGNORECASE` would, written
    with character classes (`[pP][rR]...`) for a pattern compiled without
    the flag. The engine then skips a branch of an alternation on its first
    character without entering it, and a pattern that starts with a literal
    newline is searched for that character alone, not tried at every
    position; both matter for `_LABEL_LINE_RE`, run over every message."""
    out = []
    for char in literal:
        if char.isascii() and char.isalpha():
            lower = char.lower()
            out.append("[" + _FOLDS.get(lower, lower + lower.upper()) + "]")
        else:
            out.append(re.escape(char))
    return "".join(out)


# One pass over the whole text finds the lines that start with a label; the
# C regex engine skips prose lines, so cost grows with fields, not with text.
_LEAD = r"[ \t>*•·|\-–]*"
# "(s)" and emphasis may follow a label, and so may a currency in brackets
# ("Wholesale price (USD): 270,000.00"), which then applies to the value.
_TAIL = (
    r"[ \t]*(?:\(" + caseless("s") + r"\))?[*_]*[ \t]*(?:\((?P<unit>[A-Z]{3})\)[ \t]*)?"
)
# After a label: a colon, a table pipe or a spaced dash, then the value; or a
# tab / two spaces, then the value; or nothing (the value is on the next line).
_SEP = r"[:：]|[ \t]*\|(?=[ \t]*[^|\s])|[ \t]+[-–—=][ \t]+"
_AFTER = (
    r"(?:(?P<colon>" + _SEP + r")(?P<rest>[^\n]*)"
    r"|(?:\t|  )[ \t]*(?P<gap>[^\n]*\S)|[ \t]*$)"
)
# Labels match case-insensitively (see `caseless`). The pattern starts at
# the newline before a line, and is run over the text with a newline put in
# front, so the engine looks only at line starts.
_LABEL_LINE_RE = re.compile(
    r"\n" + _LEAD + r"(?P<label>" + _alternation() + r")" + _TAIL + _AFTER,
    re.MULTILINE,
)
# The same, at a known position (is the line below a label a label itself?).
_LABEL_AT_RE = re.compile(
    r"(?:" + _alternation() + r")" + _TAIL + r"(?:[:：]|\t|  |[ \t]*$)",
    re.MULTILINE,
)
# The next non-empty line below a label, at most two blank lines down.
_NEXT_RE = re.compile(r"[ \t]*\n(?:[ \t]*\n){0,2}" + _LEAD + r"(?P<value>[^\n]*\S)")
_ACC = r"(?:\d{12}|\d{4}-\d{4}-\d{4})"
# No two runs of spaces touch without something between them: one run of N
# spaces can be split between them in N ways, tried one after the other.
_ACCOUNT_LINES_RE = re.compile(
    r"(?:[ \t]*\n[ \t]*" + _ACC + r"(?:[ \t]*(?:(?:,|;|/|&|and)[ \t]*)?" + _ACC + r")*"
    r"[ \t]*(?:[,;][ \t]*)?(?=\n|$))+"
)
_COLON_RE = re.compile(r"[:：|]")
_MAX_WORDS = max(len(label.split()) for label in LABELS) + 1
#: last word of a label -> the word counts of labels ending with it, longest first
_LENGTHS: dict[str, list[int]] = {}
for _label in LABELS:
    _LENGTHS.setdefault(_label.split()[-1], []).append(len(_label.split()))
for _counts in _LENGTHS.values():
    _counts.sort(reverse=True)


def _tail_start(segment: str, n: int) -> int | None:
    """Where the last `n` words of `segment` start (None if it has fewer):
    what searching `\\S+(?:\\s+\\S+){n-1}\\s*$` finds, without trying
    every position."""
    parts = segment.rsplit(None, n)
    if len(parts) < n:
        return None
    if len(parts) == n:  # exactly n words: the first one
        return len(segment) - len(segment.lstrip())
    head = len(parts[0])  # the words before, then a run of whitespace
    return len(segment) - len(segment[head:].lstrip())


# Zero-width and exotic spaces that HTML mail puts between label words.
_SPACES = str.maketrans(
    {"\u00a0": " ", "\u2007": " ", "\u202f": " ", "\u200b": "", "\ufeff": "", "\r": ""}
)


_SPACE_CHARS = tuple(chr(code) for code in _SPACES)
#: label as written -> key (a bounded memo of `_lookup`)
_SEEN: dict[str, str] = {}


def _lookup(words: list[str]) -> str | None:
    """The key of the label spelled by `words`, tolerating "(s)" and emphasis."""
    label = " ".join(words).lower().strip("*_|,;")
    if label.endswith("(s)"):
        label = label[:-3].rstrip()
    return LABELS.get(label)


def is_label(text: str) -> bool:
    """Is `text` (a table cell, say) exactly one known label?"""
    # No label has a digit, and `_lookup` keeps digits: most value cells (IDs,
    # dates, amounts) are answered without it.
    if _DIGIT_RE.search(text) is not None:
        return False
    return _lookup(text.rstrip(" :：").split()) is not None


_DIGIT_RE = re.compile("[0-9]")
if any(char in "0123456789" for label in LABELS for char in label):
    raise AssertionError("is_label assumes that no label has a digit")


def _last_word(word: str) -> str:
    word = word.lower().rstrip("*_")
    return word[:-3] if word.endswith("(s)") else word


def _pairs(rest: str) -> list[tuple[str, int, int]]:
    """(key, label start, value start) for each further `Label:` in `rest`.

    A label is the longest run of words right before a colon that spells a
    known label; so "X   Product ID: prod-..." yields one at "Product".
    """
    found: list[tuple[str, int, int]] = []
    start = 0
    for colon in _COLON_RE.finditer(rest):
        segment = rest[start : colon.start()]
        start = colon.end()
        words = segment.rsplit(None, _MAX_WORDS)
        if len(words) > _MAX_WORDS:
            del words[0]  # the head of a long segment: never part of a label
        # Most colons (times, URLs, ARNs) end in a word no label ends with.
        if not words or (counts := _LENGTHS.get(_last_word(words[-1]))) is None:
            continue
        for n in counts:
            if n <= len(words) and (key := _lookup(words[-n:])) is not None:
                at = _tail_start(segment, n)
                if at is not None and (at == 0 or segment[at - 1].isspace()):
                    found.append((key, colon.start() - len(segment) + at, start))
                    break
    return found


def extract(text: str) -> dict[str, list[str]]:
    """Every labelled value in `text`: canonical key -> raw values in order."""
    # Every character `_SPACES` rewrites but "\r" is non-ASCII, and asking
    # `isascii()` is free, so mostly-ASCII mail skips the scans.
    if "\r" in text or (
        not text.isascii() and any(char in text for char in _SPACE_CHARS)
    ):
        text = text.translate(_SPACES)
    # `_LABEL_LINE_RE` starts at the newline before a line: one in front
    # lets it find the first line too. Positions below are in this text.
    text = "\n" + text
    out: dict[str, list[str]] = {}
    consumed = 0  # values taken from the line below a label are not labels
    # The loop body runs once per labelled line of every parsed message:
    # groups are read in one call and the common "Label: value" case is
    # handled inline (see bench/parse.py).
    for match in _LABEL_LINE_RE.finditer(text):
        # (The line starts after the newline the match starts at.)
        if consumed and match.start() + 1 < consumed:
            continue
        label, unit, gap, rest = match.group(_G_LABEL, _G_UNIT, _G_GAP, _G_REST)
        key = _SEEN.get(label)
        if key is None:
            key = _lookup(label.split())
            if key is None:  # pragma: no cover - the regex only matches labels
                continue
            if len(_SEEN) < 4096:  # spellings repeat from mail to mail
                _SEEN[label] = key
        unit = unit or ""  # "(USD)" after a money label
        if gap is not None:
            _add(out, key, _cell(gap), unit)
            continue
        rest = rest or ""
        if not (":" in rest or "：" in rest or "|" in rest):
            # The common "Label: value" line, inline.
            value = rest.strip() if "\t" not in rest else _cell(rest)
            if value:
                if key in _LIST_KEYS:
                    value, consumed = _more_accounts(text, match.end(), value, consumed)
                value = value.strip(" \t|,;")
                if value:
                    value = f"{unit} {value}" if unit else value
                    if (values := out.get(key)) is None:
                        out[key] = [value]
                    else:
                        values.append(value)
                continue
            pairs = []
        else:
            pairs = _pairs(rest)
            for n, (other, _, value_start) in enumerate(pairs):
                end = pairs[n + 1][1] if n + 1 < len(pairs) else len(rest)
                _add(out, other, _cell(rest[value_start:end]), "")
            value = _cell(rest[: pairs[0][1]] if pairs else rest)
        if pairs or value:
            if value and key in _LIST_KEYS:
                value, consumed = _more_accounts(text, match.end(), value, consumed)
            _add(out, key, value, unit)
            continue
        below = _NEXT_RE.match(text, match.end())
        if below is None or _LABEL_AT_RE.match(text, below.start("value")):
            continue
        value, consumed = below.group("value"), below.end()
        if key in _LIST_KEYS:
            value, consumed = _more_accounts(text, below.end(), value, consumed)
        _add(out, key, value, unit)
    return out


_G_LABEL, _G_UNIT, _G_GAP, _G_REST = (
    _LABEL_LINE_RE.groupindex[name] for name in ("label", "unit", "gap", "rest")
)


def _add(out: dict[str, list[str]], key: str, value: str, unit: str) -> None:
    value = value.strip(" \t|,;")
    if value:
        out.setdefault(key, []).append(f"{unit} {value}" if unit else value)


def _cell(value: str) -> str:
    """A value up to the first tab: a tab inside a value is a column boundary
    (HTML layout cells rendered side by side)."""
    if "\t" not in value:
        return value.strip()  # the same result, without the split
    return value.strip(" \t").split("\t")[0].strip()


def _more_accounts(text: str, pos: int, value: str, consumed: int) -> tuple[str, int]:
    """`value` plus the lines of bare account IDs right below `pos`."""
    more = _ACCOUNT_LINES_RE.match(text, pos)
    if more is None:
        return value, consumed
    return value + " " + " ".join(more.group().split()), more.end()
