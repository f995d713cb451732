"""Cost of hostile email bodies: time per KB of each pathological shape.

Each shape is a body built to make a regular expression, or a line-by-line
loop, do more than linear work (runs of newlines before a forward header,
a label followed by blank lines and spaces, quote marks, separator rules,
tags, digits...). For every shape the full email entrance
(`mailsync.security.email_gate.evaluate_email`, DKIM off) parses a message
of 64 KB and of 1 MB in this process, without the time cap; the time per
KB must stay flat from 64 KB to 1 MB (linear), and every message must cost
milliseconds per KB, far from the parse cap.

Usage: .venv/bin/python bench/hostile.py [--sizes 65536,1048576]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailsync.config import SecuritySettings  # noqa: E402
from mailsync.security.email_gate import evaluate_email  # noqa: E402

SUBJECT = "Customer accepted an AWS Marketplace offer"


def _fill(unit: str, size: int, tail: str = "") -> str:
    return unit * max(1, (size - len(tail)) // len(unit)) + tail


#: shape name -> body of about `size` bytes
SHAPES: dict[str, Callable[[int], str]] = {
    "newlines before From:": lambda n: _fill("\n", n, "From: a@b.example\nSent: x"),
    "spaces+newlines before From:": lambda n: _fill(" \n", n, "From: a\nDate: x"),
    "quoted newlines before From:": lambda n: _fill(">\n", n, "From: a\nSent: x"),
    "label then newlines": lambda n: "Agreement ID:" + _fill("\n", n),
    "label then spaces+newlines": lambda n: "Agreement ID:" + _fill(" \n ", n),
    "label then tabs": lambda n: "Agreement ID" + _fill("\t", n) + "x",
    "repeated label lines": lambda n: _fill("Agreement ID:\n", n),
    "From: lines": lambda n: _fill("From: a\n", n),
    "From: then header lines": lambda n: "From: a\n" + _fill("X-A: b\n", n),
    "forward markers": lambda n: _fill("---------- Forwarded message ----\n", n),
    "dash runs": lambda n: _fill("-", n),
    "underscore runs": lambda n: _fill("_", n),
    "quote marks": lambda n: _fill("> ", n),
    "digits": lambda n: "Agreement start date: " + _fill("1", n),
    "date-like": lambda n: "Start date: " + _fill("Jan 1 2020 ", n),
    "money-like": lambda n: "Purchase amount: " + _fill("USD 1,000", n),
    "account list": lambda n: "Customer AWS account ID: " + _fill("123456789012 ", n),
    "money with spaces": lambda n: "Purchase amount: " + _fill("1 ", n),
    "accounts with spaces": lambda n: "Customer AWS account ID: 123456789012\n"
    + "123456789012"
    + _fill(" ", n)
    + "x",
    "Fwd: words": lambda n: _fill("Fwd: ", n),
    "pipes": lambda n: "Agreement ID" + _fill(" |", n),
    "colons": lambda n: "Product name: " + _fill("Product ID:", n),
}
HTML_SHAPES: dict[str, Callable[[int], str]] = {
    "html open tags": lambda n: _fill("<", n),
    "html script unclosed": lambda n: _fill("<script>", n),
    "html comment unclosed": lambda n: _fill("<!--", n),
    "html cells": lambda n: _fill("<td>Agreement ID</td>", n),
}


def message(body: str, html: bool = False) -> bytes:
    kind = "html" if html else "plain"
    head = (
        "From: AWS Marketplace <no-reply@marketplace.aws>\r\n"
        f"Subject: {SUBJECT}\r\n"
        "Date: Sat, 01 Mar 2025 12:00:00 +0000\r\n"
        "Message-ID: <hostile@marketplace.aws>\r\n"
        f"Content-Type: text/{kind}; charset=utf-8\r\n\r\n"
    )
    return head.encode() + body.encode()


def all_shapes() -> list[tuple[str, Callable[[int], str], bool]]:
    return [(k, v, False) for k, v in SHAPES.items()] + [
        (k, v, True) for k, v in HTML_SHAPES.items()
    ]


SETTINGS = SecuritySettings(require_dkim=False, parse_timeout_seconds=0)


def cost(raw: bytes) -> float:
    start = time.perf_counter()
    evaluate_email(raw, SETTINGS)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="65536,1048576")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    header = "".join(f"{s // 1024:>9} KB" for s in sizes)
    print(f"{'shape':34}{header}   (ms per KB; total s at the largest)")
    for name, shape, html in all_shapes():
        cells = []
        total = 0.0
        for size in sizes:
            raw = message(shape(size), html)
            total = cost(raw)
            cells.append(f"{total * 1000 / (len(raw) / 1024):>12.4f}")
        print(f"{name:34}{''.join(cells)}   {total:.3f} s")


if __name__ == "__main__":
    main()
