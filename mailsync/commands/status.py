"""`mailsync status` (contract section 1): what the state store knows.

Per source: the checkpoint, counts processed / quarantined / failed (retried),
last success and last error; then the CRM side (`CrmSync.status()`: backend,
pending writes, dead letters, API usage). Reads only the state store, and
when there is none yet says so instead of creating it.
"""

from __future__ import annotations

import argparse
from typing import Any

from mailsync import config
from mailsync.aws import sqs
from mailsync.crm.sync import CrmSync
from mailsync.ledger import Ledger, SourceStatus
from mailsync.redact import redact
from mailsync.statedb import open_db
from mailsync.textsafe import escape


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config or config.default_path())
    if not settings.state.path.exists():  # read-only: never create it
        print(
            f"no state yet: {settings.state.path} does not exist; `mailsync run`"
            " creates it"
        )
        return 0
    conn = open_db(settings.state.path)
    try:
        statuses = {s.source: s for s in Ledger(conn).statuses()}
        configured = [f"imap:{s.name}" for s in settings.imap] + [
            f"maildir:{m.path}" for m in settings.maildir
        ]
        sqs_name = sqs.source_name(settings.sqs) if settings.sqs else None
        if sqs_name:
            configured.append(sqs_name)
        if settings.sdds:
            configured.append("sdds")
        for name in configured + sorted(set(statuses) - set(configured)):
            _print_source(name, statuses.get(name))
            if settings.sdds and name == "sdds":
                from mailsync.sdds.feedsync import status_lines

                print("\n".join(status_lines(conn)))
            if settings.sqs and name == sqs_name:
                # The queue's own counts (GetQueueAttributes); never raises.
                print("\n".join(sqs.status_lines(settings.sqs)))
        sync = CrmSync(settings, conn)
        try:
            crm: dict[str, Any] = sync.status()
        finally:
            sync.close()
    finally:
        conn.close()
    print("crm")
    for key, value in crm.items():
        print(f"  {key}: {escape(_crm_value(key, value))}")
        if key == "dead_letters" and isinstance(value, dict):
            for d in value.get("latest", []):
                print(
                    escape(
                        f"    - {d['object']} {d['external_id']}: "
                        f"{d['error_code'] or '-'}: {redact(d['message'] or '-')} "
                        f"(since {d['created_at']}; retry with "
                        "`mailsync quarantine retry --dead-letters`)"
                    )
                )
    return 0


def _crm_value(key: str, value: Any) -> str:
    """One readable value: counts and API usage rather than Python reprs."""
    if value is None or value == "":
        return "-"
    if key == "dead_letters" and isinstance(value, dict):
        return str(value.get("count", 0))
    if key == "api_usage" and isinstance(value, dict):
        if "used" in value and "max" in value:
            return f"{value['used']} of {value['max']} daily API calls"
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return redact(str(value))  # stored before redaction existed, perhaps


def _print_source(name: str, s: SourceStatus | None) -> None:
    """One block per source; every value escaped (mailbox names, checkpoints
    and errors may quote strangers' text)."""
    _say(name)
    if s is None:
        _say("  never run")
        return
    c = s.counts
    _say(f"  checkpoint: {s.checkpoint or '-'}")
    _say(
        f"  processed: {c['synced'] + c['unrecognized'] + c['rejected']}"
        f" (synced {c['synced']}, unrecognized {c['unrecognized']},"
        f" rejected {c['rejected']})"
    )
    _say(f"  quarantined: {s.quarantined}")
    _say(f"  failed, will retry: {c['failed']}")
    _say(f"  last success: {s.last_success or '-'}")
    err = f"{redact(s.last_error)} (at {s.last_error_at})" if s.last_error else "-"
    _say(f"  last error: {err}")


def _say(line: str) -> None:
    print(escape(line))
