"""Logging to stderr in a form journald keeps well.

Text lines are ``LEVEL message key=value ...``; ``[log] format = "json"`` gives
one JSON object per line instead. When stderr is the journal (systemd sets
``$JOURNAL_STREAM`` to its device and inode, see systemd.exec(5)) each line
starts with its syslog priority (``<3>`` error, ``<4>`` warning, ``<6>`` info,
``<7>`` debug; sd-daemon(3)) and carries no timestamp, since journald adds
its own; on a terminal each line starts with a UTC timestamp.
Both are one line per record with no raw control character: text lines escape
them (`mailsync.textsafe.escape`), JSON escapes every non-ASCII character.
Context goes in through ``extra=kv(source=..., uid=...)`` (``source=`` names the
source everywhere). Callers must never
pass secrets as context: only names of env vars or files, never their values;
credentials quoted by an error body are redacted here anyway (`mailsync.redact`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from mailsync.config import LogSettings
from mailsync.redact import redact
from mailsync.textsafe import escape

_CTX = "ctx"


def kv(**fields: Any) -> dict[str, Any]:
    """`extra=` argument carrying key=value context for one log record."""
    return {_CTX: fields}


def _fmt_value(value: Any) -> str:
    """A value as is, or double-quoted when it holds a space, ``"``, ``=``, a
    backslash or a control character (``\\`` and ``\\"`` inside; each
    control character shown as ``\\xNN``, as in every other output);
    credentials quoted by an error body redacted first."""
    text = redact(str(value))
    if not text or any(c in text for c in ' "=\\') or escape(text) != text:
        return '"' + escape(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    return text


class TextFormatter(logging.Formatter):
    """``LEVEL message key=value ...``; an exception adds only its one-line text."""

    def format(self, record: logging.LogRecord) -> str:
        # Messages quote strangers' text (subjects, IDs, names): one line,
        # credentials redacted, every control character escaped (textsafe).
        message = redact(record.getMessage())
        parts = [record.levelname, escape(" ".join(message.split()))]
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


#: syslog priorities by logging level (sd-daemon(3) prefixes)
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4}
_override: str | None = None  #: level from -v/-q, stronger than [log] level


def set_level_override(level: str | None) -> None:
    """The level the command line asks for (``-v``/``-q``); `configure` uses it."""
    global _override
    _override = level


def journal_stderr() -> bool:
    """True when stderr is the journal stream systemd names in $JOURNAL_STREAM."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False


class _Prefixed(logging.Formatter):
    """`inner`'s line after a journald priority or a terminal timestamp."""

    def __init__(self, inner: logging.Formatter, mode: str) -> None:
        super().__init__()
        self.inner = inner
        self.mode = mode  # journal | tty | plain

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        if self.mode == "journal":
            level = record.levelno
            prio = _PRIORITY.get(level, 6 if level >= logging.INFO else 7)
            return f"<{prio}>{line}"
        if self.mode == "tty":
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
            return f"{stamp} {line}"
        return line


def configure(settings: LogSettings) -> None:
    """Route the `mailsync` loggers to stderr at the configured level/format."""
    handler = logging.StreamHandler(sys.stderr)
    inner = JsonFormatter() if settings.format == "json" else TextFormatter()
    isatty = getattr(sys.stderr, "isatty", lambda: False)()
    mode = "journal" if journal_stderr() else "tty" if isatty else "plain"
    handler.setFormatter(_Prefixed(inner, mode))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("mailsync").setLevel(_override or settings.level)
    # APScheduler logs every job run at INFO; keep only its warnings.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
