"""The SQS source: SNS notifications and EventBridge events from an SQS queue.

The entry points the rest of mailsync uses: `build` (the configured source for
`mailsync run --once`), `serve` (the daemon's SQS worker loop), and
`source_name` / `queue_counts` / `status_lines` for `status` and `check`.
The source is split by concern, and every public name stays importable here:

- `mailsync.aws.sqs_source`: `SqsSource`, the receive/process/delete loop
  and what happens to each message (the contract is in its module doc);
- `mailsync.aws.sqs_policy`: the trust decision for one message body
  (SNS signature check, raw delivery, EventBridge allow-lists, subscription
  confirmations);
- `mailsync.aws.sqs_client`: the boto3 client and the SQS API calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from mailsync.aws.sqs_client import (
    make_client,
    queue_counts,
    source_name,
    status_lines,
)
from mailsync.aws.sqs_source import Enrich, SqsSource
from mailsync.config import Settings
from mailsync.crm.outbox import Outbox
from mailsync.errors import StateError, TransientError
from mailsync.ledger import Ledger
from mailsync.log import kv

__all__ = [
    "Enrich",
    "SqsSource",
    "build",
    "make_client",
    "queue_counts",
    "serve",
    "source_name",
    "status_lines",
]

log = logging.getLogger(__name__)


def build(settings: Settings, pipeline: Any) -> SqsSource:
    """The configured SQS source for the daemon (`pipeline` gives the ledger),
    with enrichment when `[enrichment] enabled` and credentials are present."""
    return _configured(settings, pipeline.ledger)


def serve(
    settings: Settings,
    stop: threading.Event,
    *,
    on_beat: Callable[[], None] = lambda: None,
    on_error: Callable[[str | None], None] = lambda _: None,
    on_synced: Callable[[], None] = lambda: None,
) -> str | None:
    """The daemon's SQS worker: pass, long-poll, repeat until `stop`; connection
    errors back off (1 s steps, calling `on_beat` to stay visibly alive).
    `on_error` gets each failure's message, and None once a pass succeeds
    again (the daemon shows it in systemd's STATUS=). `on_synced` is called
    after a pass that made new events durable (the daemon's flush trigger).
    Returns the message of a fatal `StateError`, else None."""
    from mailsync.statedb import open_db

    assert settings.sqs is not None
    try:
        conn = open_db(settings.state.path)
    except StateError as err:
        return str(err)
    source = _configured(settings, Ledger(conn))
    outbox = Outbox(conn)
    attempt = 0
    try:
        while not stop.is_set():
            on_beat()
            try:
                result = source.run_pass(outbox, stop)
                attempt = 0
                on_error(None)
                if result.synced:
                    on_synced()
                if result.fetched:
                    log.info("pass done", extra=kv(source=source.name, **vars(result)))
                on_beat()
                if settings.sqs.wait_time_seconds == 0:
                    stop.wait(settings.sqs.poll_interval)
                source.wait_for_input(settings.sqs.wait_time_seconds, stop)
            except StateError as err:
                return str(err)
            except Exception as err:  # the worker outlives any one failure
                attempt += 1
                delay = min(300, 2**attempt)
                on_error(str(err))
                if isinstance(err, TransientError):
                    # An outage is news once (WARNING); its retries are INFO.
                    log.log(
                        logging.WARNING if attempt == 1 else logging.INFO,
                        f"{err}; retrying in {delay} s",
                        extra=kv(source=source.name, attempt=attempt),
                    )
                else:
                    log.exception(f"unexpected error: {err}")
                for _ in range(delay):
                    if stop.wait(1):
                        break
                    on_beat()
    finally:
        source.close()
        conn.close()
    return None


def _configured(settings: Settings, ledger: Ledger) -> SqsSource:
    from mailsync.aws.enrich import Enricher

    assert settings.sqs is not None
    enricher = Enricher(settings.enrichment, state=ledger.conn)
    return SqsSource(
        settings.sqs,
        ledger=ledger,
        security=settings.security,
        enrich=enricher if enricher.enabled else None,
        name=source_name(settings.sqs),
    )
