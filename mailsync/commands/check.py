"""`mailsync check` (contract section 1): config, state store, sources, CRM.

Prints one line per check (``ok``/``FAIL``, the check's name, a detail that
says what to fix); exit 0 only when every check passes. The first line names
the config file and how it was found. Read-only: a state store or SQLite CRM
file that does not exist yet is reported ("no state yet"), never created. A
config error stops before any network access and exits 2 with a message
naming the key.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path

from mailsync import config
from mailsync.crm import sync
from mailsync.errors import MailsyncError
from mailsync.ledger import Ledger
from mailsync.once import build_sources
from mailsync.pipeline import Pipeline
from mailsync.redact import safe_error
from mailsync.sources.base import CheckLine
from mailsync.statedb import open_db
from mailsync.textsafe import escape


def run(args: argparse.Namespace) -> int:
    path, origin = config.locate(args.config)
    settings = config.load(path)
    lines = [CheckLine("config", True, f"{path} (from {origin}) is valid")]
    state_path = settings.state.path
    if not state_path.exists():
        # Read-only: check never creates the state store; run does.
        where = _creatable(state_path)
        if where is not None:
            lines.append(CheckLine("state", False, where))
            return _print(lines)
        lines.append(
            CheckLine(
                "state",
                True,
                f"no state yet: {state_path} does not exist; `mailsync run`"
                " creates it (its folder is writable)",
            )
        )
        conn = sqlite3.connect(":memory:", isolation_level=None)
    else:
        try:
            conn = open_db(state_path)
        except MailsyncError as err:
            lines.append(CheckLine("state", False, str(err)))
            return _print(lines)
        lines.append(CheckLine("state", True, f"{state_path} is writable"))
    try:
        ledger = Ledger(conn)
        for source in build_sources(settings, Pipeline(settings, ledger)):
            try:
                lines += source.check()
            finally:
                source.close()
        if not (
            settings.imap
            or settings.maildir
            or settings.sqs
            or settings.agreements
            or settings.sdds
        ):
            lines.append(CheckLine("sources", False, "no [source.*] table configured"))
        crm_file = settings.crm.sqlite_path
        if settings.crm.backend == "sqlite" and not crm_file.exists():
            problem = _creatable(crm_file)
            lines.append(
                CheckLine(
                    "crm sqlite",
                    problem is None,
                    problem
                    or f"no records yet: {crm_file} does not exist; the first CRM"
                    " write creates it (its folder is writable)",
                )
            )
        else:
            lines += sync.check_lines(settings)
    except MailsyncError as err:
        lines.append(CheckLine("check", False, str(err)))
    finally:
        conn.close()
    return _print(lines)


def _creatable(path: Path) -> str | None:
    """None when `path` could be created (its nearest existing folder is
    writable), else what is wrong."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
        return None
    return (
        f"{path} does not exist and cannot be created: {folder} is not a writable"
        " folder; fix [state] path or the folder's permissions"
    )


def _print(lines: list[CheckLine]) -> int:
    for line in lines:
        detail = safe_error(line.detail, 1000)  # an endpoint's echo, redacted
        print(escape(f"{'ok  ' if line.ok else 'FAIL'} {line.name}: {detail}"))
    return 0 if all(line.ok for line in lines) else 1
