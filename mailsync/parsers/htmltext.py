"""HTML to plain text, keeping the label/value structure of notification mail.

Used when a message has no usable text/plain part (or its text/plain part
lacks the fields). Rules:

- source whitespace collapses to one space, as a browser renders it, and
  `&nbsp;` reads as a space;
- block elements (`p`, `div`, `br`, `li`, headings, tables...) and table rows
  end a line; a table cell starts and ends with a tab;
- a line of an even number of cells becomes `Label: value` pairs (the colon
  is added only when the label cell lacks one); other lines keep their cells
  apart with a tab, which label extraction treats as a column boundary;
- nested layout tables flatten naturally: each inner row is its own line;
- a row whose cells are all labels over a row of as many cells (a column
  table) becomes `Label: value` pairs;
- `script`, `style`, `head` and `title` content and comments are dropped.

A few whole-document substitutions are used rather than `html.parser`: they
are several times faster on mail-sized documents (see bench/parse.py) and
tolerate malformed markup, because unbalanced tags are simply dropped.
"""

from __future__ import annotations

import html
import re

from mailsync.parsers.fields import is_label

# A tag never spans a "<" (`[^<>]*`): each attempt then stops at the next
# "<", and a document of a million "<" costs linear time, not quadratic.
_OPEN_RE = re.compile(
    r"<(?:(script|style|head|title)\b[^<>]*>|(!--)|![^<>]*>|\?[^<>]*>)", re.I
)
_CLOSE_RE = {
    name: re.compile(r"</" + name + r"\s*>", re.I)
    for name in ("script", "style", "head", "title")
}
_CELL_END_RE = re.compile(r"</?t[dh]\b[^<>]*>", re.I)
# tr p div br li ul ol h1-h6 table section article header footer hr
# blockquote pre dt dd dl center tbody thead tfoot, written as a tree of
# shared prefixes: the regex engine tries a few branches per tag, not 25.
_LINE_RE = re.compile(
    r"</?(?:t(?:r|able|body|head|foot)|p(?:re)?|d(?:iv|t|d|l)|b(?:r|lockquote)"
    r"|li|ul|ol|h(?:[1-6]|r|eader)|section|article|footer|center)\b[^<>]*>",
    re.I,
)
_TAG_RE = re.compile(r"<[^<>]*>")


def _skip(markup: str) -> str:
    """`markup` without script/style/head/title content, comments,
    declarations and processing instructions (each replaced by a space).

    An element that is never closed keeps its content, as before. Once a
    closing tag (or "-->") was not found after some opener, later openers of
    the same kind are not searched for again: each search runs at most once
    to the end of the text, so the whole is linear.
    """
    out: list[str] = []
    pos = 0
    unclosed: set[str] = set()
    while (found := _OPEN_RE.search(markup, pos)) is not None:
        name = (found.group(1) or "").lower() or ("--" if found.group(2) else "")
        if not name:  # a declaration or processing instruction
            out.append(markup[pos : found.start()] + " ")
            pos = found.end()
            continue
        end = -1
        if name not in unclosed:
            if name == "--":
                end = markup.find("-->", found.end())
                end = end + 3 if end != -1 else -1
            else:
                close = _CLOSE_RE[name].search(markup, found.end())
                end = close.end() if close is not None else -1
        if end == -1:
            unclosed.add(name)
            out.append(markup[pos : found.end()])  # kept, as if not special
            pos = found.end()
            continue
        out.append(markup[pos : found.start()] + " ")
        pos = end
    out.append(markup[pos:])
    return "".join(out)


def _cells(raw: str) -> list[str]:
    return [cell for c in raw.split("\t") if (cell := c.strip())]


def _line(cells: list[str]) -> str:
    if len(cells) < 2:
        return cells[0] if cells else ""
    if len(cells) % 2 == 0:
        # Label/value cells side by side: one or more pairs per row.
        pairs = []
        for label, value in zip(cells[::2], cells[1::2], strict=True):
            sep = " " if label.endswith((":", "：")) else ": "
            pairs.append(label + sep + value)
        return "   ".join(pairs)
    return "\t".join(cells)


def _collapse(text: str) -> str:
    """Each run of whitespace as one space: `re.sub(r"\\s+", " ", text)`,
    several times faster (`str.split` and `\\s` both use Unicode's
    whitespace class)."""
    words = text.split()
    if not words:
        return " " if text else ""
    out = " ".join(words)
    if text[0].isspace():
        out = " " + out
    if text[-1].isspace():
        out += " "
    return out


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body; never raises on malformed markup."""
    text = _collapse(_skip(markup) if "<" in markup else markup)
    text = _CELL_END_RE.sub("\t", text)
    text = _LINE_RE.sub("\n", text)
    text = html.unescape(_TAG_RE.sub("", text)).replace("\xa0", " ")
    rows: list[list[str]] = []
    for raw in text.split("\n"):
        if "\t" in raw:
            cells = _cells(raw)
            if cells:
                rows.append(cells)
        elif cell := raw.strip():  # one cell, the same as `_cells(raw)`
            rows.append([cell])
    out: list[str] = []
    i = 0
    while i < len(rows):
        row = rows[i]
        if len(row) == 1:  # a line of text: nothing to pair
            out.append(row[0])
            i += 1
            continue
        below = rows[i + 1] if i + 1 < len(rows) else []
        # The last cell first: in a label/value row it is the value, and
        # one look-up decides.
        if (
            len(row) > 1
            and len(below) == len(row)
            and all(map(is_label, reversed(row)))
        ):
            # A header row of labels over a row of values (a column table).
            out.append("   ".join(f"{k}: {v}" for k, v in zip(row, below, strict=True)))
            i += 2
            continue
        if len(row) == 2:  # `_line` of one label/value pair, inline
            label = row[0]
            out.append(label + (" " if label.endswith((":", "：")) else ": ") + row[1])
        else:
            out.append(_line(row))
        i += 1
    return "\n".join(out)
