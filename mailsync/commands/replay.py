"""`mailsync replay PATH... [--dry-run]` (contract section 1).

Pushes saved inputs (`.eml` / `.json`; a directory means the files in it,
sorted by name) through the full pipeline as if they had just arrived: parse,
the email trust check, the outbox (a delivery already seen is dropped), then a
CRM flush with the merge rules. Unrecognized and rejected inputs are reported
on stderr and never reach the CRM.

`--dry-run` runs the same pipeline against an in-memory copy of the state
store and a backend that only records writes, then prints each CRM write it
would make as JSON Lines (``{"object", "external_id", "fields"}``); it writes
nothing to the CRM or the state store.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from mailsync import config
from mailsync.config import Settings
from mailsync.crm.backend import CrmBackend
from mailsync.crm.outbox import Outbox
from mailsync.crm.sync import CrmSync, DryRunBackend, make_backend
from mailsync.errors import InputError, StateError, TransientError
from mailsync.event import Event, Trust
from mailsync.statedb import open_db


def expand(paths: Sequence[str]) -> list[Path]:
    """Files named, directories expanded to their files (sorted, recursive,
    hidden files skipped); `InputError` for a path that does not exist."""
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out.extend(_files(path))
        elif path.exists():
            out.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return out


def _files(folder: Path) -> Iterator[Path]:
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            yield from _files(child)
        elif child.is_file():
            yield child


def load_events(settings: Settings, paths: Sequence[Path]) -> list[tuple[Path, Event]]:
    """Parse and trust-check each input; report and drop the unusable ones."""
    from mailsync.commands.parse import parse_capped
    from mailsync.parsers.files import is_json, read_input, received_at
    from mailsync.pipeline.evaluate import evaluate
    from mailsync.security.limits import check_size

    out = []
    security = settings.security
    for path in paths:
        # The limits of live input: size (never read a huge file whole) and
        # the parse time cap; an email goes through the pipeline's own
        # evaluation (one reading for DKIM and the parsers).
        raw = read_input(path, security.max_message_bytes)
        too_big = check_size(raw, security)
        if too_big is not None:
            print(f"{path}: rejected: {too_big}", file=sys.stderr)
            continue
        if is_json(raw, path.name):
            event = parse_capped(raw, path, security)
        else:
            try:
                event = evaluate(settings, raw, received_at(path))
            except TransientError as err:
                print(f"{path}: not replayed, retry later: {err}", file=sys.stderr)
                continue
        if not event.recognized:
            print(f"{path}: unrecognized: {event.reason}", file=sys.stderr)
        elif event.trust is Trust.REJECTED:
            print(f"{path}: rejected: {event.reason}", file=sys.stderr)
        else:
            out.append((path, event))
    return out


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
                print(f"{path}: already seen (same delivery ID)", file=sys.stderr)
        result = sync.flush()
    finally:
        sync.close()
        conn.close()
    if args.dry_run:
        for obj, record in result.writes:
            ext = sync.mapping.external_id(obj)
            fields = {k: v for k, v in record.items() if k != ext}
            line = {
                "object": sync.mapping.obj(obj),
                "external_id": record.get(ext),
                "fields": fields,
            }
            print(json.dumps(line, default=str))
        return 1 if result.paused_reason else 0
    print(
        f"replayed {len(events)} inputs ({new} new): {result.records} CRM records "
        f"written, {result.dead_lettered} refused, {result.pending} pending"
        + (f"; {result.paused_reason}" if result.paused_reason else "")
    )
    return 1 if result.paused_reason or result.dead_lettered else 0
