"""The values that travel through `mailsync.pipeline`.

- `Item`: one input of a batch (ledger key, bytes, origin for the outbox,
  receive time).
- `Outcome`: what happened to one input (the ledger's vocabulary: synced,
  unrecognized, rejected, failed), with the event and the facts recorded.
- `Pending`: an input that passed the checks needing no parsing.
- `sha256_hex` and `header_message_id`: the two facts read from the bytes of
  every input before it is parsed (ledger de-duplication keys).

Every public name here is importable from `mailsync.pipeline` too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mailsync import ledger as L
from mailsync import message_id
from mailsync.event import Event

InputKind = Literal["email", "json"]

#: the blank line that ends the header block, and a (folded) Message-ID field
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.I | re.M)


@dataclass(frozen=True)
class Outcome:
    """What happened to one input."""

    outcome: str  #: synced | unrecognized | rejected | failed
    reason: str | None = None
    event: Event | None = None
    duplicate: bool = False  #: the sink had this delivery already
    message_id: str | None = None
    sha256: str = ""

    @property
    def final(self) -> bool:
        return self.outcome in L.FINAL


@dataclass(frozen=True)
class Item:
    """One input of a batch: its ledger key, bytes and origin (for the outbox)."""

    key: str
    raw: bytes
    origin: str = ""
    #: when the source received it (IMAP INTERNALDATE, file mtime); None = now
    received_at: datetime | None = None


@dataclass(frozen=True)
class Pending:
    """An input that passed the cheap checks and needs parsing."""

    digest: str
    message_id: str | None


class Stopped(Exception):
    """Raised out of the parse stream when the caller asked to stop."""


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def header_message_id(raw: bytes) -> str | None:
    """The first Message-ID header without angle brackets, or None.

    A regular expression over the header block rather than an email parser:
    it runs for every input in the main process, before the parse worker."""
    head = raw[:65536]
    end = _HEADER_END.search(head)
    found = _MESSAGE_ID.search(head, 0, end.start() if end else len(head))
    if found is None:
        return None
    # Whatever the sender wrote, no list, space or control character is
    # recorded or logged as a Message-ID.
    return message_id.clean(found.group(1).decode("ascii", "replace"))
