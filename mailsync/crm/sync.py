"""Flushing the outbox to the configured CRM (placeholder until it lands)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from mailsync.config import Settings
from mailsync.crm.outbox import Outbox


@dataclass
class FlushResult:
    written: int = 0  #: outbox events whose CRM writes are durable
    pending: int = 0  #: events still waiting in the outbox
    dead_lettered: int = 0  #: records the CRM refused (see status)
    paused_reason: str | None = None  #: why writes are paused (API limit, outage)


class CrmSync:
    """Reads the outbox and writes merged records to the CRM backend."""

    def __init__(self, settings: Settings, state: sqlite3.Connection) -> None:
        self.settings = settings
        self.outbox = Outbox(state)

    def flush(self) -> FlushResult:
        """Write pending events; never raises for a CRM outage (it reports it
        in the result and keeps the events); raises `StateError`."""
        return FlushResult(pending=self.outbox.depth())

    def status(self) -> dict[str, Any]:
        """CRM facts for `mailsync status` (backend, pending, dead letters,
        API usage, paused reason)."""
        return {"backend": self.settings.crm.backend, "pending": self.outbox.depth()}

    def close(self) -> None:
        pass
