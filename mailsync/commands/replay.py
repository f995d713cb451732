"""`mailsync replay PATH... [--dry-run]` (contract section 1).

Pushes saved inputs (`.eml` / `.json`; a directory means the files in it,
sorted by name) through the full pipeline as if they had just arrived: parse,
the email trust check or, for SNS and EventBridge JSON, the admission checks
of the SQS source (`[source.sqs]` signature, topic, age, raw-delivery and
EventBridge policy, with `[security] sns_certificate_dir`), the outbox (a
delivery already seen is dropped), then a CRM flush with the merge rules.
Unrecognized and rejected inputs are reported on stderr and never reach the
CRM.

`--dry-run` runs the same pipeline against an in-memory copy of the state
store and a backend that only records writes, then prints each CRM write it
would make as JSON Lines (``{"object", "external_id", "fields"}``, money as
two-decimal strings); it writes nothing to the CRM or the state store. Each
input that would be rejected or is unrecognized is named on stderr with the
reason, in both modes.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from mailsync import config
from mailsync.aws.sqs_policy import SavedInputChecker
from mailsync.commands.parse import parse_capped
from mailsync.commands.records import json_fields
from mailsync.config import Settings
from mailsync.crm.backend import CrmBackend
from mailsync.crm.outbox import Outbox
from mailsync.crm.sync import CrmSync, DryRunBackend, make_backend
from mailsync.errors import InputError, RejectedError, StateError, TransientError
from mailsync.event import Channel, Event, Trust
from mailsync.log import configure
from mailsync.parsers.files import files_in, is_json, read_input, received_at
from mailsync.pipeline.evaluate import evaluate
from mailsync.progress import Progress
from mailsync.security.limits import check_size
from mailsync.statedb import open_db
from mailsync.textsafe import escape
from mailsync.wording import plural

#: Channels that arrive on the queue: replayed with the SQS source's checks.
_QUEUE_CHANNELS = (Channel.SNS, Channel.EVENTBRIDGE)


def expand(paths: Sequence[str]) -> list[Path]:
    """Files named, directories expanded to their files (sorted, recursive,
    hidden files skipped); `InputError` for a path that does not exist."""
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out.extend(files_in(path))
        elif path.exists():
            out.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return out


def load_events(settings: Settings, paths: Sequence[Path]) -> list[tuple[Path, Event]]:
    """Parse and trust-check each input; report and drop the unusable ones."""
    queue = SavedInputChecker(settings.sqs, settings.security.sns_certificate_dir)
    out = []
    with Progress("replay", len(paths), "inputs") as report:
        for path in paths:
            report.advance()
            event = _load_one(settings, path, queue)
            if event is None:
                continue
            if not event.recognized:
                report.echo(f"{path}: unrecognized: {event.reason}")
            elif event.trust is Trust.REJECTED:
                report.echo(f"{path}: rejected: {event.reason}")
            else:
                out.append((path, event))
    return out


def _load_one(
    settings: Settings, path: Path, queue: SavedInputChecker
) -> Event | None:
    """The checked event of one saved input; None (reported) when it cannot
    be judged now."""
    security = settings.security
    # The limits of live input: size (never read a huge file whole) and the
    # parse time cap; an email goes through the pipeline's own evaluation
    # (one reading for DKIM and the parsers).
    raw = read_input(path, security.max_message_bytes)
    too_big = check_size(raw, security)
    if too_big is not None:
        return Event.unrecognized(too_big)
    if not is_json(raw, path.name):
        try:
            return evaluate(settings, raw, received_at(path))
        except TransientError as err:
            print(escape(f"{path}: not replayed, retry later: {err}"), file=sys.stderr)
            return None
    event = parse_capped(raw, path, security)
    if event.recognized and event.channel is Channel.API:
        # A saved API answer cannot be authenticated; AWS's own record is read
        # again from the API by `mailsync reconcile --apply`.
        return event.rejected(
            "a saved Agreement API response is not trusted; use"
            " `mailsync reconcile --apply` to read it from the API"
        )
    if event.recognized and event.channel in _QUEUE_CHANNELS:
        try:
            return queue.check(raw)
        except RejectedError as err:
            return event.rejected(str(err))
        except TransientError as err:
            print(escape(f"{path}: not checked, skipped: {err}"), file=sys.stderr)
            return None
    return event


def _state_copy(path: Path) -> sqlite3.Connection:
    """An in-memory copy of the state store (empty when there is none)."""
    copy = sqlite3.connect(":memory:", isolation_level=None)
    if path.exists():
        try:
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            source.backup(copy)
            source.close()
        except sqlite3.Error as err:
            raise StateError(f"state store {path} cannot be read: {err}") from None
    return copy


def _dry_backend(settings: Settings) -> CrmBackend:
    if settings.crm.backend == "sqlite" and not settings.crm.sqlite_path.exists():
        from mailsync.crm.sqlite_store import SqliteStore

        return DryRunBackend(SqliteStore(Path(":memory:")))
    return DryRunBackend(make_backend(settings))


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    configure(settings.log)  # progress lines when stderr is no terminal
    events = load_events(settings, expand(args.paths))
    if args.dry_run:
        conn = _state_copy(settings.state.path)
        sync = CrmSync(settings, conn, _dry_backend(settings))
    else:
        conn = open_db(settings.state.path)
        sync = CrmSync(settings, conn)
    try:
        outbox = Outbox(conn)
        new = 0
        for path, event in events:
            if outbox.submit(event, origin=f"replay:{path}"):
                new += 1
            else:
                print(
                    escape(f"{path}: already seen (same delivery ID)"), file=sys.stderr
                )
        result = sync.flush()
    finally:
        sync.close()
        conn.close()
    if args.dry_run:
        for obj, record in result.writes:
            ext = sync.mapping.external_id(obj)
            fields = json_fields({k: v for k, v in record.items() if k != ext})
            line = {
                "object": sync.mapping.obj(obj),
                "external_id": record.get(ext),
                "fields": fields,
            }
            print(json.dumps(line, default=str))
        return 1 if result.paused_reason else 0
    print(
        escape(
            f"replayed {plural(len(events), 'input')} ({new} new):"
            f" {plural(result.records, 'CRM record')} written,"
            f" {result.dead_lettered} refused, {result.pending} pending"
            + (f" ({result.deploy_hint()})" if result.missing_fields else "")
            + (f"; {result.paused_reason}" if result.paused_reason else "")
        )
    )
    return 1 if result.paused_reason or result.dead_lettered else 0
