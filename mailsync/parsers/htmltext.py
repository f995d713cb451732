"""HTML to plain text, keeping the label/value structure of notification mail.

Used only when a message has no usable text/plain part. Rules:

- block elements (`p`, `div`, `br`, `li`, headings...) end a line;
- a table row of two cells becomes `Label: value` (the colon is added only
  when the label cell lacks one); rows of other widths keep their cells apart
  with a tab, so `Label:` cells still pair with the cell after them;
- nested layout tables (common in HTML mail) are flattened into the cell that
  holds them;
- `script`, `style`, `head` and `title` content is dropped; character
  references are decoded by `html.parser`.
"""

from __future__ import annotations

from html.parser import HTMLParser

_BLOCK = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
        "table", "section", "article", "header", "footer", "hr", "blockquote",
        "pre", "dt", "dd", "dl", "center", "tbody", "thead",
    }
)  # fmt: skip
_SKIP = frozenset({"script", "style", "head", "title"})


class _Row:
    __slots__ = ("cell", "cells")

    def __init__(self) -> None:
        self.cells: list[str] = []
        self.cell: list[str] | None = None


class _TextBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.rows: list[_Row] = []
        self.skip = 0

    # Text goes to the innermost open table cell, else to the output.
    def _sink(self) -> list[str]:
        for row in reversed(self.rows):
            if row.cell is not None:
                return row.cell
        return self.out

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "tr":
            self.rows.append(_Row())
        elif tag in ("td", "th"):
            if not self.rows:
                self.rows.append(_Row())
            row = self.rows[-1]
            if row.cell is not None:
                row.cells.append("".join(row.cell))
            row.cell = []
        elif tag in _BLOCK:
            self._sink().append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self._sink().append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in ("td", "th"):
            if self.rows and self.rows[-1].cell is not None:
                row = self.rows[-1]
                row.cells.append("".join(row.cell or []))
                row.cell = None
        elif tag == "tr":
            self._close_row()
        elif tag == "table":
            while self.rows and self.rows[-1].cell is None and not self.rows[-1].cells:
                self.rows.pop()
            self._sink().append("\n")
        elif tag in _BLOCK:
            self._sink().append("\n")

    def _close_row(self) -> None:
        if not self.rows:
            return
        row = self.rows.pop()
        if row.cell is not None:
            row.cells.append("".join(row.cell))
        cells = [" ".join(c.split()) if "\n" not in c.strip() else c for c in row.cells]
        filled = [c for c in cells if c.strip()]
        if (
            filled
            and len(filled) % 2 == 0
            and all("\n" not in c.strip() for c in filled)
        ):
            # Label/value cells side by side: one or more pairs per row.
            pairs = []
            for label, value in zip(filled[::2], filled[1::2], strict=True):
                label, value = label.strip(), value.strip()
                sep = " " if label.endswith((":", "：")) else ": "
                pairs.append(label + sep + value)
            text = "   ".join(pairs)
        else:
            text = "\t".join(c.strip() for c in filled)
        self._sink().append("\n" + text + "\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self._sink().append(data)

    def text(self) -> str:
        while self.rows:
            self._close_row()
        return "".join(self.out)


def html_to_text(html: str) -> str:
    """Readable text of an HTML body; never raises on malformed markup."""
    builder = _TextBuilder()
    try:
        builder.feed(html)
        builder.close()
    except Exception:  # html.parser is lenient; this guards pathological input
        return ""
    lines = (line.strip() for line in builder.text().splitlines())
    return "\n".join(line for line in lines if line)
