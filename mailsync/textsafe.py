"""Text from strangers, made safe for a terminal, a log, a CSV file or a CRM.

Subjects, Message-IDs, customer identifiers and names come from whoever can
send mail or write to a queue. Printed raw, an ESC (``\\x1b``) or a C1 CSI
(``\\x9b``) sequence in them sets the terminal title, clears the screen or
hides text; a bidi override (U+202E) reorders what the reader sees; journald
stores a line with control characters as an unreadable blob.

- `escape(text)` is the one function every human-readable output and the
  text log formatter use: each C0 control, DEL, C1 control, bidi control and
  line/paragraph separator becomes a visible ``\\xNN`` / ``\\uNNNN``; newline
  and tab are kept only where the caller says they are layout.
- `dumps(value)` is JSON for people (non-ASCII letters kept) with those
  characters ``\\u``-escaped, so the JSON is still valid and still safe.
- `csv_cell(text)` neutralizes spreadsheet formulas (OWASP "CSV Injection"):
  a cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR that is not a
  number gets a leading ``'``.
  https://owasp.org/www-community/attacks/CSV_Injection
- `clean(text)` is for values on their way to a CRM field: controls removed
  (tab, CR, LF and the other breaking spaces become one space).
- `SafeWriter` wraps a text stream so that whatever a command prints passes
  through `escape` (newlines and tabs kept); the CLI wraps stdout with it.

Each is a single `str.translate` pass or a fixed-width check: linear in its
input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, TextIO

#: Code points that change what a terminal shows: C0, DEL, C1, the bidi
#: embedding/override/isolate controls and marks, LINE and PARAGRAPH SEPARATOR.
_CONTROL = [
    *range(0x00, 0x20),
    0x7F,
    *range(0x80, 0xA0),
    *(0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)),
    *(0x2028, 0x2029),
]


def _visible(cp: int) -> str:
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


_ESCAPE = {cp: _visible(cp) for cp in _CONTROL}
_ESCAPE_LAYOUT = {cp: v for cp, v in _ESCAPE.items() if cp not in (0x09, 0x0A)}
_JSON_ESCAPE = {cp: f"\\u{cp:04x}" for cp in _CONTROL if cp >= 0x7F}
#: For CRM values: breaking whitespace becomes a space, every other control
#: goes away.
_CLEAN: dict[int, str | None] = dict.fromkeys(_CONTROL)
_CLEAN.update(dict.fromkeys((0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029), " "))

#: A spreadsheet evaluates a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def escape(text: object, *, layout: bool = False) -> str:
    """`text` (anything, via `str`) with every control character visible.

    ``layout=True`` keeps newline and tab (multi-line output the caller laid
    out); by default they are escaped too (one value on one line).
    """
    return str(text).translate(_ESCAPE_LAYOUT if layout else _ESCAPE)


def clean(text: str) -> str:
    """`text` for a CRM field: no control characters (see module docstring)."""
    return text.translate(_CLEAN)


def dumps(value: Any, **kwargs: Any) -> str:
    """`json.dumps` keeping non-ASCII letters, with DEL, C1 and bidi controls
    ``\\u``-escaped (C0 is always escaped by JSON itself)."""
    return json.dumps(value, ensure_ascii=False, **kwargs).translate(_JSON_ESCAPE)


def csv_cell(text: str) -> str:
    """One CSV cell: a leading ``'`` when a spreadsheet would run it as a
    formula (starts with ``= + - @``, tab or CR and is not a number)."""
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


class SafeWriter:
    """A text stream whose writes pass through `escape(..., layout=True)`."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(escape(text, layout=True))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
