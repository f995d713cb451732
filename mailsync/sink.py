"""The `Sink` seam between sources (IMAP, Maildir, SQS) and the CRM side.

A source hands each recognized, trusted event to a `Sink`. When `submit`
returns, the event is durable (committed to the outbox in the state store), and
only then may the source mark its input processed (IMAP keyword or move, SQS
delete). The CRM write itself happens later, when the outbox is flushed.
"""

from __future__ import annotations

from typing import Protocol

from mailsync.event import Event


class Sink(Protocol):
    def submit(self, event: Event) -> bool:
        """Make `event` durable. Return True if it was new, False if it was a
        delivery already seen (same transport ID). Raise `StateError` when it
        cannot be made durable; the caller then leaves its input unmarked."""
        ...
