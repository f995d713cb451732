"""One pass over everything: `mailsync run --once`.

`build_sources(settings, pipeline)` constructs every configured source (IMAP
mailboxes, Maildir folders, the SQS queue, the Agreement API);
`run_once(settings)` runs one pass over each, then one outbox flush to the
CRM, prints a one-line summary on stderr and returns 0 when everything is
handled, 1 when an input failed (it stays pending in the ledger), the CRM
refused a record (dead-lettered) or CRM
writes remain in the outbox.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading

from mailsync.aws.agreements_source import AgreementsSource
from mailsync.config import Settings
from mailsync.crm.outbox import Outbox
from mailsync.crm.sync import CrmSync
from mailsync.errors import MailsyncError, StateError
from mailsync.ledger import Ledger
from mailsync.log import kv
from mailsync.pipeline import Pipeline
from mailsync.sources.base import PassResult, Source
from mailsync.sources.imap import ImapSource
from mailsync.sources.maildir import MaildirSource
from mailsync.statedb import open_db
from mailsync.textsafe import escape

log = logging.getLogger(__name__)


def build_sources(settings: Settings, pipeline: Pipeline) -> list[Source]:
    """Every configured source. SQS comes from `mailsync.aws.sqs.build`
    (``build(settings, pipeline) -> Source``) when that module exists."""
    out: list[Source] = [ImapSource(s, pipeline) for s in settings.imap]
    out += [MaildirSource(s, pipeline) for s in settings.maildir]
    if settings.sqs is not None:
        try:
            sqs = importlib.import_module("mailsync.aws.sqs")
        except ImportError:
            log.warning("[source.sqs] is configured but SQS support is not installed")
        else:
            out.append(sqs.build(settings, pipeline))
    if settings.agreements is not None:
        ledger = pipeline.ledger
        out.append(AgreementsSource(settings.agreements, ledger.conn, ledger=ledger))
    if settings.sdds is not None:
        from mailsync.aws.sdds_source import SddsSource

        out.append(SddsSource(settings))
    return out


def add(total: PassResult, part: PassResult) -> None:
    for name in (
        "fetched",
        "synced",
        "duplicates",
        "unrecognized",
        "rejected",
        "failed",
    ):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.errors += part.errors


def run_once(settings: Settings, stop: threading.Event | None = None) -> int:
    """One pass over every source, then a CRM flush; print a summary line."""
    stop = stop or threading.Event()
    conn = open_db(settings.state.path)
    ledger = Ledger(conn)
    outbox = Outbox(conn)
    total = PassResult()
    source_failed = False
    try:
        for source in build_sources(settings, Pipeline(settings, ledger)):
            if stop.is_set():
                break
            try:
                add(total, source.run_pass(outbox, stop))
            except StateError:
                raise
            except MailsyncError as err:
                source_failed = True
                ledger.source_error(source.name, str(err))
                log.error(str(err), extra=kv(source=source.name))
            finally:
                source.close()
        flush = CrmSync(settings, conn)
        try:
            result = flush.flush()
        finally:
            flush.close()
    finally:
        conn.close()
    print(
        escape(
            f"mailsync: fetched {total.fetched}, synced {total.synced}"
            f" ({total.duplicates} duplicates), unrecognized {total.unrecognized},"
            f" rejected {total.rejected}, failed {total.failed}; CRM written"
            f" {result.written}, refused {result.dead_lettered}, pending"
            f" {result.pending}"
            + (f" (paused: {result.paused_reason})" if result.paused_reason else "")
            + (f"; {result.refused_note()}" if result.dead_lettered else "")
        ),
        file=sys.stderr,
    )
    # A record the CRM refused needs an admin: the pass did not fully succeed.
    ok = not (source_failed or total.failed or result.pending or result.dead_lettered)
    return 0 if ok or stop.is_set() else 1
