"""Classifying Salesforce failures into mailsync's error taxonomy.

simple-salesforce maps HTTP statuses to exception classes, but one class covers
both retryable and permanent failures: UNABLE_TO_LOCK_ROW and
REQUIRED_FIELD_MISSING are both `SalesforceMalformedRequest` (400). So the
decision is made on the ``errorCode`` in the body (REST API guide, "Status
Codes and Error Responses":
https://developer.salesforce.com/docs/platform/api-rest/guide/errorcodes.html):

- `Retry`: a lock, a 5xx, a dropped connection; retried with backoff, then
  reported as `TransientError`.
- `CrmPausedError`: REQUEST_LIMIT_EXCEEDED (403; Salesforce sends no 429 or
  Retry-After for org limits) - writes pause and the outbox keeps the events.
- `Refused`: the request itself was refused (unknown object or field, bad
  SOQL); no retry helps until an admin changes the org or the mapping.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
)

from mailsync.errors import CrmPausedError, TransientError
from mailsync.neterrors import describe
from mailsync.redact import safe_error

#: Item or request error codes that succeed when simply tried again.
RETRYABLE_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION"}
)
#: A concurrent upsert created the same external ID first; one retry turns the
#: insert into an update (REST guide, "Upsert Records Using sObject Collections").
RACE_CODES = frozenset({"DUPLICATE_VALUE"})
LIMIT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED"})
#: Login answers that mean the credentials or the connected app are wrong.
BAD_LOGIN_CODES = frozenset(
    {
        "INVALID_LOGIN",
        "LOGIN_MUST_USE_SECURITY_TOKEN",
        "INVALID_OPERATION_WITH_EXPIRED_PASSWORD",
        "API_DISABLED_FOR_ORG",
        "invalid_grant",
        "invalid_client",
        "invalid_client_id",
        "unsupported_grant_type",
    }
)


class Retry(Exception):
    """Internal: try the call again after a backoff."""


class Refused(Exception):
    """Internal: Salesforce refused the whole request (not retryable)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ReloginLimit(Exception):
    """Internal: the session stayed invalid after `max_relogins` logins."""


def error_detail(exc: SalesforceError) -> tuple[str, str]:
    """``(errorCode, message)`` from a REST error body (a JSON list of
    ``{"errorCode", "message"}``); HTML or empty bodies give the status."""
    content: Any = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        code = first.get("errorCode") or first.get("statusCode") or ""
        return safe_error(str(code), 100), safe_error(str(first.get("message", "")))
    return f"HTTP_{exc.status}", _short(content)


def classify(exc: BaseException, what: str) -> BaseException:
    """Map an exception raised while talking to Salesforce to the one mailsync
    raises (or `Retry`). `what` names the operation for messages."""
    if isinstance(exc, ReloginLimit):
        return TransientError(
            f"Salesforce {what}: the session is still invalid after "
            f"{exc.args[0]} re-logins (INVALID_SESSION_ID); check the "
            "integration user's session and IP settings"
        )
    if isinstance(exc, SalesforceAuthenticationFailed):
        return TransientError(f"Salesforce {what}: login failed ({auth_text(exc)})")
    if isinstance(exc, SalesforceError):
        code, message = error_detail(exc)
        if code in LIMIT_CODES or exc.status == 429:
            return CrmPausedError(
                f"Salesforce API limit reached ({code}: {message}); writes are "
                "paused and pending events stay in the outbox"
            )
        if code in RETRYABLE_CODES or exc.status >= 500:
            return Retry(f"{code}: {message}")
        if exc.status == 401:
            return TransientError(f"Salesforce {what}: session rejected ({code})")
        return Refused(code, message)
    if isinstance(exc, requests.exceptions.JSONDecodeError | KeyError):
        # simple-salesforce 1.12 reads a 401 body as a JSON list and leaks
        # these when the body is HTML or an object (an edge proxy answering).
        return Retry(f"unreadable answer from Salesforce ({type(exc).__name__})")
    if isinstance(exc, requests.exceptions.ConnectionError | requests.Timeout):
        return Retry(unreachable(exc))
    if isinstance(exc, RecursionError):
        return TransientError(f"Salesforce {what}: re-login loop stopped")
    return exc


def auth_text(exc: SalesforceAuthenticationFailed) -> str:
    """``CODE: Salesforce's own message`` of a refused login. (The exception's
    ``message`` attribute is simple-salesforce's unformatted template
    "Authentication failed. Response content: {content}"; the reason
    Salesforce gave is in ``auth_message``.)"""
    text = getattr(exc, "auth_message", None) or _short(exc.content)
    return f"{exc.code}: {text}" if exc.code else text or "no reason given"


def unreachable(exc: BaseException, fallback_host: str = "") -> str:
    """ "cannot reach Salesforce at HOST: reason" for a connection failure,
    with the host the request went to and no urllib3 reprs."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None) or ""
    host = urlsplit(url).hostname if url else None
    where = host or fallback_host
    reason = describe(exc, "check the scheme and port of [crm.salesforce] endpoint_url")
    return f"cannot reach Salesforce{f' at {where}' if where else ''}: {reason}"


def _short(content: Any) -> str:
    text = (
        content.decode("utf-8", "replace")
        if isinstance(content, bytes)
        else str(content)
    )
    return safe_error(text, 200)
