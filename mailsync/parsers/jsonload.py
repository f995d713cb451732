"""Decoding one JSON input with a bound on its nesting, before `json.loads`.

Export: `load_json(text) -> Any`, raising `ParseError` with a reason a person
can act on for text that is not JSON or nests deeper than `MAX_DEPTH`.

Why a bound before parsing: the decoder recurses once per level, so a hostile
body of 100,000 ``[`` ends in `RecursionError` (or a deep object that later
code, such as `json.dumps` of a quarantined body, cannot handle). No input
mailsync reads nests deeper than about ten levels (an SQS message around an
SNS envelope around an EventBridge event); `MAX_DEPTH` leaves room for that.
The depth is measured by one linear scan: string literals are skipped with a
pattern whose alternatives are disjoint (no backtracking), and the brackets
left are counted.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mailsync.errors import ParseError

__all__ = ["MAX_DEPTH", "TooDeepError", "json_depth", "load_json"]

#: The deepest nesting accepted (objects and arrays, counted together).
MAX_DEPTH = 64

# A JSON string literal (an unclosed one runs to the end, so a failed match
# is never rescanned from the next quote), or one bracket. The literal is the
# "unrolled loop" form: runs of `[^"\\]` between escapes `\\.`, which never
# match the same character, so there is no backtracking and the scan is linear
# (and, unlike `(?:[^"\\]|\\.)*`, needs no per-character state).
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


class TooDeepError(ParseError):
    """JSON nested deeper than `MAX_DEPTH`: hostile, never an AWS message."""


def json_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """The nesting depth of `text`, counting stops once it passes `limit`."""
    depth = deepest = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif token in "]}":
            depth -= 1
    return deepest


def load_json(text: str) -> Any:
    """`json.loads(text)` for text nested at most `MAX_DEPTH` deep; else
    `ParseError` ("not valid JSON (...)") or `TooDeepError`."""
    if json_depth(text) > MAX_DEPTH:
        raise TooDeepError(
            f"JSON nested deeper than {MAX_DEPTH} levels; no AWS Marketplace "
            "message nests like this"
        )
    try:
        return json.loads(text)
    except RecursionError:  # a bracket inside an unclosed string fooled the scan
        raise TooDeepError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as err:
        raise ParseError(f"not valid JSON ({err})") from None
