"""The interface every input source implements.

A source finds pending inputs, turns each into an `Event` (through the parsers
and trust checks), hands recognized and trusted events to the `Sink`, and marks
an input processed only after `Sink.submit` returned. One bad input never stops
a pass: it is recorded (ledger / quarantine) and the pass goes on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from mailsync.sink import Sink


@dataclass
class PassResult:
    """What one pass over a source did."""

    fetched: int = 0
    synced: int = 0  #: events made durable in the sink
    duplicates: int = 0
    unrecognized: int = 0
    rejected: int = 0
    failed: int = 0  #: inputs left pending (will be retried)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CheckLine:
    """One line of `mailsync check`."""

    name: str
    ok: bool
    detail: str


class Source(Protocol):
    name: str

    def run_pass(self, sink: Sink, stop: threading.Event) -> PassResult:
        """Process everything pending now; return early when `stop` is set
        (after finishing the current item). Raise `TransientError` when the
        source cannot be reached; the daemon backs off and retries."""
        ...

    def wait_for_input(self, timeout: float, stop: threading.Event) -> None:
        """Block until new input may be pending (IMAP IDLE, SQS long poll) or
        `timeout` seconds passed or `stop` is set. Polling sources sleep."""
        ...

    def check(self) -> list[CheckLine]:
        """Reach the source once (log in, list the queue); never raise."""
        ...

    def close(self) -> None: ...
