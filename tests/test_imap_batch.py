"""Batch processing guarantees: one commit per FETCH batch, marks only after
it, a crash in between loses and duplicates nothing; batch parsing with a
per-message cap; IDLE sees mail reported in the same segment as "+ idling"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, ImapUser
from mail import agreement_id, newsletter, offer_accepted
from test_imap_sync import PROCESSED, make_source

from mailsync.event import Event
from mailsync.security.limits import parse_many_with_timeout
from mailsync.sources.imap import QUARANTINE_KEYWORD
from mailsync.sources.imap_idle import idle_wait

# The process dies (no cleanup, no rollback) at its first STORE: after the
# commit of the first batch, before any message of it is marked.
CRASH_AT_FIRST_MARK = """
import json, os, sys, threading
import imapclient
from mailsync import config
from mailsync.crm.outbox import Outbox
from mailsync.ledger import Ledger
from mailsync.pipeline import Pipeline
from mailsync.sources.imap import ImapSource
from mailsync.statedb import open_db

def crash(self, *args, **kwargs):
    os._exit(17)

imapclient.IMAPClient.add_flags = crash
imapclient.IMAPClient.move = crash
settings = config.from_dict(json.loads(sys.argv[1]))
conn = open_db(settings.state.path)
source = ImapSource(settings.imap[0], Pipeline(settings, Ledger(conn)))
source.run_pass(Outbox(conn), threading.Event())
sys.exit(0)
"""


def crash_mid_pass(tmp_path: Path, user: ImapUser, batch_size: int) -> int:
    table = {
        "host": "127.0.0.1",
        "port": user.server.port,
        "tls": "none",
        "username": user.user,
        "password_env": "MAILSYNC_TEST_IMAP_PASSWORD",
        "batch_size": batch_size,
    }
    settings = {
        "state": {"path": str(tmp_path / "state.sqlite3")},
        "security": {"require_dkim": False},
        "source": {"imap": table},
    }
    env = {**os.environ, "MAILSYNC_TEST_IMAP_PASSWORD": user.password}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_AT_FIRST_MARK, json.dumps(settings)],
        env=env,
        capture_output=True,
        timeout=120,
    )
    return proc.returncode


def test_crash_between_commit_and_marks_loses_and_duplicates_nothing(
    tmp_path, imap_user, monkeypatch
):
    mails = [offer_accepted(i) for i in range(1, 231)] + [newsletter(231)]
    imap_user.append(mails)

    assert crash_mid_pass(tmp_path, imap_user, batch_size=100) == 17
    source, outbox, ledger = make_source(
        tmp_path, imap_user, monkeypatch, batch_size=100
    )
    # The first batch was committed whole, nothing was marked, and the
    # checkpoint did not pass it.
    assert len(outbox.pending()) == 100
    assert not any(PROCESSED in f for f in imap_user.flags().values())
    assert ledger.mailbox(source.name).checkpoint == 0

    result = source.run_pass(outbox, threading.Event())
    # The first 100 are fetched again and found finished ("already handled"),
    # so they are marked now and not submitted a second time.
    assert (result.fetched, result.unrecognized, result.failed) == (231, 1, 0)
    events = [e for _, e in outbox.pending(limit=10_000)]
    assert sorted(e.agreement_id for e in events) == sorted(
        agreement_id(i) for i in range(1, 231)
    )
    flags = imap_user.flags()
    assert all(PROCESSED in flags[uid] for uid in range(1, 231))
    assert QUARANTINE_KEYWORD.encode() in flags[231]
    outcomes = ledger.outcomes(source.name)
    assert len(outcomes) == 231
    assert sorted({o for o, _ in outcomes.values()}) == ["synced", "unrecognized"]
    assert ledger.mailbox(source.name).checkpoint == 231

    again = source.run_pass(outbox, threading.Event())
    assert (again.fetched, again.synced) == (0, 0)
    assert len(outbox.pending(limit=10_000)) == 230
    source.close()


def test_stop_mid_batch_leaves_the_rest_unmarked_and_unrecorded(
    tmp_path, imap_user, monkeypatch
):
    imap_user.append([offer_accepted(i) for i in range(1, 6)])
    source, outbox, ledger = make_source(tmp_path, imap_user, monkeypatch)
    stop = threading.Event()
    stop.set()  # set before the pass: the first batch is never started
    result = source.run_pass(outbox, stop)
    assert (result.fetched, result.synced) == (0, 0)
    assert ledger.outcomes(source.name) == {}
    result = source.run_pass(outbox, threading.Event())
    assert result.synced == 5
    assert all(PROCESSED in f for f in imap_user.flags().values())
    source.close()


# --- batch parsing (functions run in the worker: module level) -------------


def hangs_on_hang(raw: bytes) -> Event:
    while raw == b"hang":
        time.sleep(1)
    return Event.unrecognized(f"got {raw.decode()}")


def test_parse_many_caps_each_message_and_keeps_the_rest():
    seen: list[tuple[int, str | None]] = []
    calls: list[int] = []
    events = parse_many_with_timeout(
        hangs_on_hang,
        [b"a", b"hang", b"b", b"c"],
        3.0,  # generous: a fresh worker's start-up counts against its first input
        lambda i, e: seen.append((i, e.reason)),
        lambda: calls.append(1),
    )
    reasons = [e.reason for e in events]
    assert reasons == ["got a", "parse took longer than 3 s", "got b", "got c"]
    assert seen == list(enumerate(reasons))
    assert calls == [1]
    assert parse_many_with_timeout(hangs_on_hang, [], 1.0) == []


class Boom(Exception):
    pass


def test_parse_many_callback_error_discards_answers_in_flight():
    def explode(i: int, event: Event) -> None:
        raise Boom(event.reason)

    with pytest.raises(Boom):
        parse_many_with_timeout(hangs_on_hang, [b"x", b"y", b"z"], 5.0, explode)
    # The next batch reads its own answers, not the abandoned ones.
    events = parse_many_with_timeout(hangs_on_hang, [b"p", b"q"], 5.0)
    assert [e.reason for e in events] == ["got p", "got q"]


# --- IDLE -------------------------------------------------------------------


def test_idle_sees_mail_that_arrived_just_before_it_started(imap_user):
    with imap_user.client() as watcher:
        watcher.select_folder("INBOX")
        imap_user.append([offer_accepted(1)])
        # Dovecot answers "+ idling" and reports the new message right away,
        # often in the same segment; imaplib buffers it past idle_check's poll.
        changed = idle_wait(watcher, 30, threading.Event())
    assert changed is True
