"""`mailsync quarantine list|retry` (contract section 1).

- ``list [--format table|json]``: every open quarantine entry (ID, when, source
  and key, input kind, outcome, what the input is, the full one-line reason),
  then the CRM dead letters (records the CRM refused) if any. Exit 0.
- ``retry ID`` / ``retry --all``: run the stored inputs through the current
  parsers, trust checks and outbox (`mailsync.quarantine.Retrier`), then flush
  the outbox to the CRM; one line per entry and a summary. ``retry
  --dead-letters`` (alone or with ID / --all) queues every dead letter and
  flushes. Exit 0 when every entry got a final outcome (synced, or still
  unrecognized / rejected with its new reason) and nothing waits for the CRM;
  1 when a retry hit a temporary failure, the CRM refused a record (again) or
  CRM writes remain pending; 2 for a wrong ID or arguments.

The mailbox is never touched: an IMAP message in the quarantine folder stays
there; the ledger alone records that it was synced.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Sequence

from mailsync import config
from mailsync.crm import deadletter
from mailsync.crm.sync import CrmSync, FlushResult
from mailsync.errors import InputError
from mailsync.ledger import SYNCED
from mailsync.log import configure
from mailsync.progress import Progress
from mailsync.quarantine import KEPT, SKIPPED, Entry, Retried, Retrier, entries, get
from mailsync.statedb import open_db
from mailsync.textsafe import dumps, escape
from mailsync.wording import plural


def run(args: argparse.Namespace) -> int:
    if args.quarantine_command == "retry":
        _check_retry_args(args)  # before touching any file
    settings = config.load(args.config or config.default_path())
    if args.quarantine_command == "retry":
        configure(settings.log)  # progress lines when stderr is no terminal
    conn = open_db(settings.state.path)
    try:
        if args.quarantine_command == "list":
            return _list(conn, args.format)
        return _retry(settings, conn, args)
    finally:
        conn.close()


# -- list ------------------------------------------------------------------------


def _list(conn: sqlite3.Connection, fmt: str) -> int:
    open_entries = entries(conn)
    deadletter.ensure_schema(conn)
    dead = deadletter.listing(conn, max(1, deadletter.count(conn)))
    if fmt == "json":
        out = {
            "quarantine": [e.to_json() for e in open_entries],
            "dead_letters": [
                {k: v for k, v in d.to_json().items() if k != "record"} for d in dead
            ],
        }
        print(dumps(out, indent=2))
        return 0
    if open_entries:
        print(f"quarantine: {plural(len(open_entries), 'entry', 'entries')}")
        _table(
            ("ID", "WHEN", "SOURCE", "KEY", "INPUT", "OUTCOME", "WHAT", "REASON"),
            [
                (
                    str(e.id),
                    e.created_at,
                    _cut(e.source, 32, keep_end=True),
                    _cut(e.key, 24, keep_end=True),
                    escape(e.input_kind),
                    e.outcome,
                    _cut(e.label, 48),
                    _cut(e.reason or "-"),  # last column: never cut, says what to fix
                )
                for e in open_entries
            ],
        )
    else:
        print("quarantine is empty")
    if dead:
        print(f"\nCRM dead letters: {plural(len(dead), 'record')} refused by the CRM")
        _table(
            ("OBJECT", "EXTERNAL ID", "ERROR", "WHEN", "ATTEMPTS", "CRM MESSAGE"),
            [
                (
                    d.obj,
                    _cut(d.external_id, 32),
                    escape(d.error_code or "-"),
                    d.created_at,
                    str(d.attempts),
                    _cut(d.message or "-"),
                )
                for d in dead
            ],
        )
    return 0


def _cut(text: str, width: int = 0, *, keep_end: bool = False) -> str:
    """One line, controls escaped (`mailsync.textsafe`), cut to `width`
    (0: never cut)."""
    text = escape(" ".join(text.split()))
    if not width or len(text) <= width:
        return text
    return "…" + text[-(width - 1) :] if keep_end else text[: width - 1] + "…"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())


# -- retry -----------------------------------------------------------------------


def _check_retry_args(args: argparse.Namespace) -> None:
    if args.id is not None and args.all:
        raise InputError("give either a quarantine ID or --all, not both")
    if args.id is None and not args.all and not args.dead_letters:
        raise InputError(
            "give a quarantine ID (see `mailsync quarantine list`), --all,"
            " or --dead-letters"
        )
    if args.id is not None and not str(args.id).isdigit():
        raise InputError(
            f"quarantine ID {args.id!r} is not a number; the IDs are in the first"
            " column of `mailsync quarantine list`"
        )


def _retry(
    settings: config.Settings, conn: sqlite3.Connection, args: argparse.Namespace
) -> int:
    todo: list[Entry] = []
    if args.id is not None:
        entry = get(conn, int(args.id))
        if entry is None:
            raise InputError(
                f"no quarantine entry {args.id}; see `mailsync quarantine list`"
            )
        if entry.released_at:
            print(f"{entry.id}: already released at {entry.released_at} ({SYNCED})")
        else:
            todo.append(entry)
    elif args.all:
        todo = entries(conn)
        if not todo:
            print("quarantine is empty")
    retrier = Retrier(settings, conn)
    results = []
    with Progress("quarantine retry", len(todo), "entries") as report:
        for e in todo:
            results.append(retrier.retry(e))
            report.advance()
    for r in results:
        print(_line(r))
    if results:
        print(_summary(results))
    sync = CrmSync(settings, conn)
    try:
        requeued = sync.retry_dead_letters() if args.dead_letters else 0
        if args.dead_letters and not requeued:
            print("CRM dead letters: none to retry")
        flush = None
        if requeued or any(r.released for r in results) or sync.outbox.depth():
            flush = sync.flush()
            print(escape(_flush_line(flush)))
        if requeued:
            _dead_letter_report(conn, requeued)
    finally:
        sync.close()
    ok = all(r.handled for r in results) and (
        flush is None
        or (not flush.pending and not flush.paused_reason and not flush.dead_lettered)
    )
    return 0 if ok else 1


def _line(r: Retried) -> str:
    return escape(_raw_line(r))


def _raw_line(r: Retried) -> str:
    e = r.entry
    head = f"{e.id}: {e.source} {e.key}: {e.outcome} -> "
    if r.outcome == SYNCED:
        return (
            head
            + SYNCED
            + (" (duplicate delivery, already in the outbox)" if r.duplicate else "")
        )
    if r.outcome == KEPT:
        return head + f"{e.outcome}, unchanged: {r.reason}"
    if r.outcome == SKIPPED:
        return head + f"{e.outcome}, not retried: {r.reason}"
    return head + f"{r.outcome}: {r.reason}"


def _summary(results: Sequence[Retried]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    dup = sum(r.duplicate for r in results)
    parts = [
        f"synced {counts.get(SYNCED, 0)}" + (f" ({dup} duplicates)" if dup else "")
    ]
    parts += [
        f"{label} {counts[key]}"
        for key, label in (
            ("unrecognized", "still unrecognized"),
            ("rejected", "still rejected"),
            (KEPT, "temporary failure, unchanged"),
            (SKIPPED, "not retried"),
        )
        if counts.get(key)
    ]
    return f"retried {len(results)}: " + ", ".join(parts)


def _flush_line(flush: FlushResult) -> str:
    line = (
        f"CRM: {plural(flush.records, 'record')} written,"
        f" {plural(flush.pending, 'event')} pending"
    ) + (f", {flush.refused_note()}" if flush.dead_lettered else "")
    if flush.paused_reason:
        line += f" (not written: {flush.paused_reason})"
    return line


def _dead_letter_report(conn: sqlite3.Connection, requeued: int) -> None:
    left = deadletter.listing(conn, max(1, deadletter.count(conn)))
    # Still marked for retry: the flush did not reach the CRM (outage, pause).
    queued = set(deadletter.retry_keys(conn))
    waiting = [d for d in left if (d.obj, d.external_id) in queued]
    refused = [d for d in left if d not in waiting]
    landed = max(0, requeued - len(left))
    print(
        f"CRM dead letters: {requeued} re-sent, {landed} written,"
        f" {len(refused)} refused again"
        + (f", {len(waiting)} waiting for the CRM" if waiting else "")
    )
    for d in refused:
        print(
            f"  {d.obj} {_cut(d.external_id)}: {escape(d.error_code or '-')}"
            f" {_cut(d.message)}"
        )
