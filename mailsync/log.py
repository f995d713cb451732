"""Logging to stderr in a form journald keeps well.

Text lines are ``LEVEL message key=value ...`` with no timestamp (journald adds
its own); ``[log] format = "json"`` gives one JSON object per line instead.
Context goes in through ``extra=kv(mailbox=..., uid=...)``. Callers must never
pass secrets as context: only names of env vars or files, never their values;
credentials quoted by an error body are redacted here anyway (`mailsync.redact`).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from mailsync.config import LogSettings
from mailsync.redact import redact

_CTX = "ctx"


def kv(**fields: Any) -> dict[str, Any]:
    """`extra=` argument carrying key=value context for one log record."""
    return {_CTX: fields}


def _fmt_value(value: Any) -> str:
    text = redact(str(value))
    if not text or any(c in text for c in ' "=\n\t'):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """``LEVEL message key=value ...``; an exception adds only its one-line text."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [record.levelname, " ".join(redact(record.getMessage()).split())]
        ctx: dict[str, Any] = getattr(record, _CTX, None) or {}
        parts += [f"{k}={_fmt_value(v)}" for k, v in ctx.items() if v is not None]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(f"error={_fmt_value(record.exc_info[1])}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: level, logger, message and the context keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        ctx: dict[str, Any] = getattr(record, _CTX, None) or {}
        out.update(
            {
                k: redact(v) if isinstance(v, str) else v
                for k, v in ctx.items()
                if v is not None
            }
        )
        if record.exc_info and record.exc_info[1] is not None:
            out["error"] = redact(str(record.exc_info[1]))
        return json.dumps(out, default=str)


def configure(settings: LogSettings) -> None:
    """Route the `mailsync` loggers to stderr at the configured level/format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if settings.format == "json" else TextFormatter()
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("mailsync").setLevel(settings.level)
    # APScheduler logs every job run at INFO; keep only its warnings.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
