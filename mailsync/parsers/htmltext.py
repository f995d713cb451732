"""HTML to plain text, keeping the label/value structure of notification mail.

Used when a message has no usable text/plain part (or its text/plain part
lacks the fields). Rules:

- block elements (`p`, `div`, `br`, `li`, headings...) end a line;
- a table row of an even number of cells becomes `Label: value` pairs (the
  colon is added only when the label cell lacks one); other rows keep their
  cells apart with a tab;
- nested layout tables (common in HTML mail) are flattened into the cell that
  holds them;
- `script`, `style`, `head` and `title` content and comments are dropped;
  character references are decoded.

A single regular-expression tokenizer is used rather than `html.parser`: it
is several times faster on mail-sized documents (see bench/parse.py) and
tolerates the same malformed markup, because unknown or unbalanced tags are
simply ignored.
"""

from __future__ import annotations

import html
import re

_BLOCK = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
        "table", "section", "article", "header", "footer", "hr", "blockquote",
        "pre", "dt", "dd", "dl", "center", "tbody", "thead",
    }
)  # fmt: skip
_SKIP_RE = re.compile(
    r"<(script|style|head|title)\b[^>]*>.*?</\1\s*>|<!--.*?-->|<![^>]*>|<\?[^>]*>",
    re.I | re.S,
)
_WS_RE = re.compile(r"\s+")
_TOKEN_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)\b[^>]*>|([^<]+|<)")


class _Row:
    __slots__ = ("cell", "cells")

    def __init__(self) -> None:
        self.cells: list[str] = []
        self.cell: list[str] | None = None


def _render_row(row: _Row) -> str:
    if row.cell is not None:
        row.cells.append("".join(row.cell))
    # A cell holding a line break (a block or a nested table) is layout, not
    # a label or a value, so only flat cells pair up.
    flat = not any("\n" in c for c in row.cells)
    filled = [c.strip() for c in row.cells if c.strip()]
    if flat and filled and len(filled) % 2 == 0:
        # Label/value cells side by side: one or more pairs per row.
        pairs = []
        for label, value in zip(filled[::2], filled[1::2], strict=True):
            sep = " " if label.endswith((":", "：")) else ": "
            pairs.append(" ".join(label.split()) + sep + " ".join(value.split()))
        return "\n" + "   ".join(pairs) + "\n"
    return "\n" + "\t".join(filled) + "\n"


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body; never raises on malformed markup."""
    out: list[str] = []
    rows: list[_Row] = []
    tables: list[int] = []  # len(rows) when each open table started

    def sink() -> list[str]:
        # Text goes to the innermost open table cell, else to the output.
        for row in reversed(rows):
            if row.cell is not None:
                return row.cell
        return out

    for match in _TOKEN_RE.finditer(_SKIP_RE.sub(" ", markup)):
        text = match.group(3)
        if text is not None:
            # HTML collapses source whitespace (and &nbsp; reads as a space).
            sink().append(_WS_RE.sub(" ", html.unescape(text)))
            continue
        closing, tag = match.group(1), match.group(2).lower()
        if tag in ("td", "th"):
            if not rows:
                if closing:
                    continue
                rows.append(_Row())
            row = rows[-1]
            if row.cell is not None:
                row.cells.append("".join(row.cell))
            row.cell = None if closing else []
        elif tag == "tr":
            if closing:
                if rows:
                    rendered = _render_row(rows.pop())
                    sink().append(rendered)
            else:
                # <tr> ends an unclosed row of the same table.
                depth = tables[-1] if tables else 0
                while len(rows) > depth:
                    rendered = _render_row(rows.pop())
                    sink().append(rendered)
                rows.append(_Row())
        elif tag == "table":
            if not closing:
                tables.append(len(rows))
                sink().append("\n")
                continue
            # Rows left open by sloppy markup end with their table.
            depth = tables.pop() if tables else 0
            while len(rows) > depth:
                rendered = _render_row(rows.pop())
                sink().append(rendered)
            sink().append("\n")
        elif tag in _BLOCK:
            sink().append("\n")
    while rows:
        rendered = _render_row(rows.pop())
        sink().append(rendered)
    lines = (line.strip() for line in "".join(out).splitlines())
    return "\n".join(line for line in lines if line)
