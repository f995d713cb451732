"""Secrets out of error text: one function for everything logged or stored.

An endpoint that echoes its request (a misconfigured proxy, an emulator, an
error page) can put the request's credentials into the error body mailsync
reports. Every error text that reaches a log line, the state store (ledger
reasons, source status, CRM `last_error`, dead letters) or a command's output
(`status`, `check`) goes through `redact` first, and stored or printed error
bodies through `clip` too.

Redacted (the value is replaced by ``[redacted]``, the name kept so the text
still says what was there):

- ``Authorization: ...`` headers (to the end of the line or field) and
  ``Bearer <token>``; OAuth ``access_token`` / ``refresh_token`` values;
- AWS Signature Version 4: ``Credential=``, ``Signature=``,
  ``X-Amz-Security-Token`` (header or query form, any case);
- Salesforce session IDs: ``<sessionId>...</sessionId>`` (SOAP login),
  ``"sessionId": "..."``, ``sid=`` cookies, and the raw ID shape
  ``00D<org id>!<token>``; ``<password>`` elements of an echoed SOAP login.

Every pattern is a literal name followed by one character class that cannot
overlap what comes before it, and a closing quote is optional: a match never
fails after a long scan, so the cost is linear in the text.
"""

from __future__ import annotations

import re

__all__ = ["MAX_ERROR_CHARS", "clip", "redact", "safe_error"]

#: Error bodies longer than this are cut (stored and printed errors).
MAX_ERROR_CHARS = 500

_MARK = "[redacted]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer x / AWS4-HMAC-SHA256 Credential=..., to line end
    (re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*)[^\r\n,}]*"), r"\1" + _MARK),
    (re.compile(r"(?i)(\bbearer\s+)[^\s\"',;}]+"), r"\1" + _MARK),
    (
        re.compile(
            r"(?i)(\b(?:access_token|refresh_token|id_token|sessionid|session_id"
            r"|x-amz-security-token|x-amz-credential|x-amz-signature|sid)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;<}]+"
        ),
        r"\1" + _MARK,
    ),
    (re.compile(r"(?i)(\b(?:credential|signature)=)[^\s\"'&,;<}]+"), r"\1" + _MARK),
    (
        re.compile(r"(?i)(<(?:\w+:)?(?:sessionId|password)>)[^<]*"),
        r"\1" + _MARK,
    ),
    # a Salesforce session ID on its own: 15/18-char org ID, "!", the token
    (re.compile(r"\b00D[A-Za-z0-9]{12,15}![A-Za-z0-9._]+"), _MARK),
)


def redact(text: str) -> str:
    """`text` with credential values replaced by ``[redacted]`` (module doc)."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` on one line, cut to `limit` characters (with a note)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters cut)"


def safe_error(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """An error text fit to store or print: redacted, then clipped."""
    return clip(redact(text), limit)
