"""Email authenticity (placeholder: DKIM and sender checks land here)."""

from __future__ import annotations

from mailsync.config import SecuritySettings
from mailsync.event import Event


def check_email(raw: bytes, event: Event, settings: SecuritySettings) -> Event:
    """Return `event` with `trust` set from the message's authenticity.

    A recognized event that fails a configured check comes back with
    `trust = rejected` and a reason; it must never reach the CRM.
    """
    return event
