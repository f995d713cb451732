"""The Seller Data Feed CSV reader: streaming, header-driven, strict in values.

AWS documents the files as RFC 4180, UTF-8 without BOM, `,`-separated,
`"`-quoted, one header row (seller guide, "Data feed details"). The reader:

- finds columns by header name (case and surrounding blanks ignored, a BOM
  tolerated); unknown columns are ignored, a missing required column is a
  `FeedError` naming the file and the column; a header-only or empty file
  yields no rows;
- streams: one row at a time from a binary stream (an S3 body or a file), so
  memory does not grow with the file;
- is strict in values: an amount must be a plain decimal (`1500`, `-127.5`,
  `60000.000000`; no exponent, no thousands separator), a timestamp one of the
  two forms AWS uses (`2018-12-31T00:04:07Z`, `2024-12-24 11:31:47.0`) or a
  bare date; anything else is a `FeedError` naming file, line and column.
  Empty fields are `None` ("empty field = no value").

Each row comes out as a tuple in the order of `FeedSpec.columns`: text
(clamped to 255 characters, control characters replaced), timestamps
normalized to ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds), amounts as
decimal strings exactly as given (sign kept), flags as ``"1"``/``"0"``.
"""

from __future__ import annotations

import csv
import io
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from mailsync.errors import ParseError
from mailsync.textsafe import clean

MAX_TEXT = 255
#: A generous bound on one field (JSON term configurations are a few kB).
csv.field_size_limit(1 << 20)


class FeedError(ParseError):
    """A feed file cannot be used as it is (the message says where and why)."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "text"  #: text | ts | money | flag
    required: bool = True
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeedSpec:
    name: str  #: the logical feed: billing_event | agreements | account
    columns: tuple[Column, ...]

    def index(self, name: str) -> int:
        return next(i for i, c in enumerate(self.columns) if c.name == name)


_HISTORY = (
    Column("valid_from", "ts"),
    Column("update_date", "ts", required=False),
    Column("delete_date", "ts", required=False),
)

BILLING = FeedSpec(
    "billing_event",
    (
        Column("billing_event_id"),
        *_HISTORY,
        Column("action"),
        Column("transaction_type"),
        Column("amount", "money"),
        Column("currency"),
        Column("balance_impacting", "flag"),
        Column("agreement_id"),
        Column("invoice_id"),
        Column("invoice_date", "ts"),
        Column("payment_due_date", "ts"),
        Column("transaction_reference_id"),
        Column("disbursement_billing_event_id"),
        Column("from_account_id"),
        Column("product_id"),
        Column("broker_id"),
        # Read by AWS's report SQL, not in every documented column list.
        Column("buyer_transaction_reference_id", required=False),
        Column("buyer_invoice_id", required=False),
        Column("buyer_line_item_id", required=False),
        Column("buyer_invoice_date", "ts", required=False),
        Column("offer_id", required=False),
    ),
)

AGREEMENTS = FeedSpec(
    "agreements",
    (
        Column("agreement_id"),
        *_HISTORY,
        Column("status"),
        Column("acceptor_account_id"),
        Column("estimated_agreement_value", "money", required=False),
        Column("currency_code", required=False),
        Column("proposer_account_id", required=False),
        Column("offer_id", required=False),
        Column("start_time", "ts", required=False),
        Column("end_time", "ts", required=False),
        # The doc's example header spells it `acceptancet_time`.
        Column("acceptance_time", "ts", required=False, aliases=("acceptancet_time",)),
        Column("preceding_agreement_id", required=False),
    ),
)

ACCOUNT = FeedSpec(
    "account",
    (
        Column("account_id"),
        *_HISTORY,
        Column("aws_account_id"),
    ),
)

SPECS = {s.name: s for s in (BILLING, AGREEMENTS, ACCOUNT)}

_TS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?)?"
    r"(?:Z|[+-]00:?00)?"
)
_MONEY = re.compile(r"[+-]?\d{1,30}(?:\.\d{1,12})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class _Bad(ValueError):
    pass


def _timestamp(value: str) -> str:
    m = _TS.fullmatch(value)
    if m is None:
        raise _Bad("a timestamp (2018-12-31T00:04:07Z or 2024-12-24 11:31:47.0)")
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    try:
        at = datetime(y, mo, d, h, mi, s)
    except ValueError:
        raise _Bad("a valid date and time") from None
    del at
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z"


def _money(value: str) -> str:
    if _MONEY.fullmatch(value) is None:
        raise _Bad("a decimal amount such as 1500, -127.5 or 60000.000000")
    return value[1:] if value[0] == "+" else value


def _flag(value: str) -> str:
    low = value.lower()
    if low in ("1", "true"):
        return "1"
    if low in ("0", "false"):
        return "0"
    raise _Bad("0 or 1")


def _text(value: str) -> str:
    if not value.isprintable():
        # C0/C1, line separators and bidi overrides (U+202E can reverse how
        # a name reads in the CRM): the one cleaning rule CRM values get.
        value = clean(_CONTROL.sub(" ", value))
    return value[:MAX_TEXT]


_CONVERT: dict[str, Callable[[str], str]] = {
    "text": _text,
    "ts": _timestamp,
    "money": _money,
    "flag": _flag,
}


class _Memo(dict[str, str]):
    """Converted values of one typed column by their raw text (feeds repeat
    the same dates, flags and amounts); a miss converts, or raises the
    `FeedError` naming file, line and column."""

    def __init__(
        self, conv: Callable[[str], str], name: str, file: str, reader: Any
    ) -> None:
        super().__init__()
        self.conv, self.name, self.file, self.reader = conv, name, file, reader

    def __missing__(self, raw: str) -> str:
        try:
            got = self.conv(raw.strip())
        except _Bad as err:
            raise FeedError(
                f"{self.file}: line {self.reader.line_num}: column {self.name!r}: "
                f"{_text(raw)[:40]!r} is not {err}"
            ) from None
        if len(self) > 50_000:
            self.clear()
        self[raw] = got
        return got


def _header(names: list[str], spec: FeedSpec, file: str) -> list[int]:
    found = {n.strip().lstrip("\ufeff").strip().lower(): i for i, n in enumerate(names)}
    out: list[int] = []
    for col in spec.columns:
        idx = next((found[n] for n in (col.name, *col.aliases) if n in found), -1)
        if idx < 0 and col.required:
            raise FeedError(
                f"{file}: required column {col.name!r} is missing from the header "
                f"of this {spec.name} feed file (is it the right feed folder?)"
            )
        out.append(idx)
    return out


def read(
    stream: IO[bytes], spec: FeedSpec, file: str
) -> Iterator[tuple[str | None, ...]]:
    """Rows of one feed file, converted (see the module docstring).

    Raises `FeedError` (with file, line and column) for a malformed file; the
    rows yielded before it stay valid, but a caller that must not use part of
    a file reads it inside a transaction it rolls back.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="", errors="strict")
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return
        idx = _header(header, spec, file)
        width = len(header)
        # Absent optional columns read the "" appended to every row.
        getter = operator.itemgetter(*[i if i >= 0 else width for i in idx])
        typed = [
            (pos, _Memo(_CONVERT[c.kind], c.name, file, reader))
            for pos, c in enumerate(spec.columns)
            if c.kind != "text"
        ]
        needed = max(idx) + 1
        for row in reader:
            if len(row) != width:
                if len(row) < needed:
                    if not row or row == [""]:
                        continue  # a blank line
                    raise FeedError(
                        f"{file}: line {reader.line_num}: {len(row)} fields, the "
                        f"header names {width}"
                    )
                del row[width:]
            row.append("")
            vals = getter(row)
            joined = "".join(vals)
            if not joined.isprintable() or (
                len(joined) > MAX_TEXT and max(map(len, vals)) > MAX_TEXT
            ):
                vals = tuple(_text(v) for v in vals)
            out: list[str | None] = [v or None for v in vals]
            for pos, memo in typed:
                v = out[pos]
                if v is not None:
                    out[pos] = memo[v]
            yield tuple(out)
    except csv.Error as err:
        raise FeedError(
            f"{file}: line {reader.line_num}: not valid CSV ({err})"
        ) from None
    except UnicodeDecodeError:
        raise FeedError(
            f"{file}: near line {reader.line_num}: not UTF-8 text"
        ) from None
    finally:
        text.detach()
