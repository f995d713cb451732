"""Parsers: raw inputs to normalized events (placeholder until the registry lands)."""

from __future__ import annotations

from mailsync.event import Event


def parse_email(raw: bytes) -> Event:
    """Parse one RFC 5322 message; never raises for bad input."""
    return Event.unrecognized("no email parser is registered yet")
