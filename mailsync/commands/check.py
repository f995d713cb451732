"""`mailsync check` (contract section 1): config, state store, sources, CRM.

Prints one line per check (``ok``/``FAIL``, the check's name, a detail that
says what to fix); exit 0 only when every check passes. A config error stops
before any network access and exits 2 with a message naming the key.
"""

from __future__ import annotations

import argparse

from mailsync import config
from mailsync.crm import sync
from mailsync.errors import MailsyncError
from mailsync.ledger import Ledger
from mailsync.once import build_sources
from mailsync.pipeline import Pipeline
from mailsync.sources.base import CheckLine
from mailsync.statedb import open_db


def run(args: argparse.Namespace) -> int:
    path = args.config or config.default_path()
    settings = config.load(path)
    lines = [CheckLine("config", True, f"{path} is valid")]
    try:
        conn = open_db(settings.state.path)
        ledger = Ledger(conn)
    except MailsyncError as err:
        lines.append(CheckLine("state", False, str(err)))
        return _print(lines)
    lines.append(CheckLine("state", True, f"{settings.state.path} is writable"))
    try:
        for source in build_sources(settings, Pipeline(settings, ledger)):
            try:
                lines += source.check()
            finally:
                source.close()
        if not (settings.imap or settings.maildir or settings.sqs or settings.sdds):
            lines.append(CheckLine("sources", False, "no [source.*] table configured"))
        check_lines = getattr(sync, "check_lines", None)
        if check_lines is not None:
            lines += check_lines(settings)
    except MailsyncError as err:
        lines.append(CheckLine("check", False, str(err)))
    finally:
        conn.close()
    return _print(lines)


def _print(lines: list[CheckLine]) -> int:
    for line in lines:
        print(f"{'ok  ' if line.ok else 'FAIL'} {line.name}: {line.detail}")
    return 0 if all(line.ok for line in lines) else 1
