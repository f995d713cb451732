"""Logging to stderr in a form journald keeps well.

Text lines are ``LEVEL message key=value ...`` with no timestamp (journald adds
its own); ``[log] format = "json"`` gives one JSON object per line instead.
Both are one line per record with no raw control character: text lines escape
them (`mailsync.textsafe.escape`), JSON escapes every non-ASCII character.
Context goes in through ``extra=kv(mailbox=..., uid=...)``. Callers must never
pass secrets as context: only names of env vars or files, never their values.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from mailsync.config import LogSettings
from mailsync.textsafe import escape

_CTX = "ctx"


def kv(**fields: Any) -> dict[str, Any]:
    """`extra=` argument carrying key=value context for one log record."""
    return {_CTX: fields}


def _fmt_value(value: Any) -> str:
    """A value as is, or double-quoted when it holds a space, ``"``, ``=``, a
    backslash or a control character (``\\`` and ``\\"`` inside; each
    control character shown as ``\\xNN``, as in every other output)."""
    text = str(value)
    if not text or any(c in text for c in ' "=\\') or escape(text) != text:
        return '"' + escape(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    return text


class TextFormatter(logging.Formatter):
    """``LEVEL message key=value ...``; an exception adds only its one-line text."""

    def format(self, record: logging.LogRecord) -> str:
        # Messages quote strangers' text (subjects, IDs, names): one line,
        # every control character escaped (mailsync.textsafe).
        parts = [record.levelname, escape(" ".join(record.getMessage().split()))]
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
            "message": record.getMessage(),
        }
        ctx: dict[str, Any] = getattr(record, _CTX, None) or {}
        out.update({k: v for k, v in ctx.items() if v is not None})
        if record.exc_info and record.exc_info[1] is not None:
            out["error"] = str(record.exc_info[1])
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
