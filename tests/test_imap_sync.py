"""IMAP source against a real Dovecot: sync once, marking, rescans, auth."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import ImapUser
from dovecot import OAUTH_TOKEN, OAUTH_USER, Dovecot
from mail import agreement_id, newsletter, offer_accepted

from mailsync import config
from mailsync.crm.outbox import Outbox
from mailsync.errors import TransientError
from mailsync.ledger import Ledger
from mailsync.pipeline import Pipeline
from mailsync.sources.imap import QUARANTINE_KEYWORD, ImapSource, body_of, plan_batches
from mailsync.sources.imap_conn import AuthError, connect
from mailsync.statedb import open_db

PROCESSED = b"$MailsyncProcessed"


def make_source(
    tmp_path: Path, user: ImapUser, monkeypatch: pytest.MonkeyPatch, **imap: Any
) -> tuple[ImapSource, Outbox, Ledger]:
    monkeypatch.setenv("MAILSYNC_TEST_IMAP_PASSWORD", user.password)
    table = {
        "host": "127.0.0.1",
        "port": user.server.port,
        "tls": "none",
        "username": user.user,
        "password_env": "MAILSYNC_TEST_IMAP_PASSWORD",
        **imap,
    }
    settings = config.from_dict(
        {
            "state": {"path": str(tmp_path / "state.sqlite3")},
            "security": {"require_dkim": False},
            "source": {"imap": table},
        }
    )
    conn = open_db(settings.state.path)
    ledger = Ledger(conn)
    source = ImapSource(settings.imap[0], Pipeline(settings, ledger))
    return source, Outbox(conn), ledger


def agreements(outbox: Outbox) -> list[str | None]:
    return sorted(e.agreement_id for _, e in outbox.pending())


def test_new_mail_synced_once_and_marked(tmp_path, imap_user, monkeypatch):
    imap_user.append([offer_accepted(1), offer_accepted(2), newsletter(3)])
    source, outbox, ledger = make_source(tmp_path, imap_user, monkeypatch)
    stop = threading.Event()

    first = source.run_pass(outbox, stop)
    assert (first.fetched, first.synced, first.unrecognized, first.failed) == (
        3,
        2,
        1,
        0,
    )
    assert agreements(outbox) == [agreement_id(1), agreement_id(2)]
    outcomes = ledger.outcomes(source.name)
    assert sorted(o for o, _ in outcomes.values()) == [
        "synced",
        "synced",
        "unrecognized",
    ]
    flags = imap_user.flags()
    assert PROCESSED in flags[1] and PROCESSED in flags[2]
    assert QUARANTINE_KEYWORD.encode() in flags[3] and PROCESSED not in flags[3]
    assert b"\\Seen" not in flags[1]  # BODY.PEEK leaves mail unread

    second = source.run_pass(outbox, stop)
    assert (second.fetched, second.synced) == (0, 0)
    source.close()

    restarted, outbox2, _ = make_source(tmp_path, imap_user, monkeypatch)
    third = restarted.run_pass(outbox2, stop)
    assert third.fetched == 0
    assert outbox2.depth() == 2
    restarted.close()


def test_uidvalidity_change_rescans_without_duplicates(
    tmp_path, imap_user, monkeypatch
):
    imap_user.append([offer_accepted(10), offer_accepted(11)], folder="Sales")
    source, outbox, ledger = make_source(
        tmp_path, imap_user, monkeypatch, folder="Sales"
    )
    stop = threading.Event()
    assert source.run_pass(outbox, stop).synced == 2
    old_validity = ledger.mailbox(source.name).uidvalidity
    source.close()

    with imap_user.client() as c:  # recreate the folder: a new UIDVALIDITY
        c.delete_folder("Sales")
    imap_user.append([offer_accepted(10), offer_accepted(11), offer_accepted(12)],
                     folder="Sales")  # fmt: skip

    result = source.run_pass(outbox, stop)
    assert ledger.mailbox(source.name).uidvalidity != old_validity
    assert (result.fetched, result.synced, result.duplicates) == (3, 1, 2)
    assert agreements(outbox) == [agreement_id(10), agreement_id(11), agreement_id(12)]
    assert all(PROCESSED in f for f in imap_user.flags("Sales").values())
    source.close()


def test_marking_by_move(tmp_path, imap_user, monkeypatch):
    imap_user.append([offer_accepted(20), newsletter(21), offer_accepted(22)])
    source, outbox, _ = make_source(
        tmp_path,
        imap_user,
        monkeypatch,
        processed_keyword="",
        processed_folder="Processed",
        quarantine_folder="Quarantine",
    )
    result = source.run_pass(outbox, threading.Event())
    source.close()
    assert (result.synced, result.unrecognized) == (2, 1)
    assert imap_user.count("INBOX") == 0
    assert imap_user.count("Processed") == 2
    assert imap_user.count("Quarantine") == 1


def test_ledger_only_marking(tmp_path, imap_user, monkeypatch):
    imap_user.append([offer_accepted(30)])
    source, outbox, ledger = make_source(tmp_path, imap_user, monkeypatch,
                                         processed_keyword="")  # fmt: skip
    stop = threading.Event()
    assert source.run_pass(outbox, stop).synced == 1
    assert PROCESSED not in imap_user.flags()[1]
    imap_user.append([offer_accepted(31)])
    again = source.run_pass(outbox, stop)
    assert (again.fetched, again.synced) == (1, 1)
    assert ledger.mailbox(source.name).checkpoint == 2
    assert agreements(outbox) == [agreement_id(30), agreement_id(31)]
    source.close()


def test_oversize_message_quarantined_unfetched(tmp_path, imap_user, monkeypatch):
    imap_user.append([offer_accepted(40, pad=50_000), offer_accepted(41)])
    source, outbox, ledger = make_source(tmp_path, imap_user, monkeypatch)
    source.pipeline.settings = config.from_dict(
        {"security": {"require_dkim": False, "max_message_bytes": 20_000}}
    )
    result = source.run_pass(outbox, threading.Event())
    source.close()
    assert (result.rejected, result.synced, result.fetched) == (1, 1, 1)
    outcome, reason = ledger.outcomes(source.name)[f"{source.uidvalidity}:1"]
    assert outcome == "rejected"
    assert "over [security] max_message_bytes = 20000" in (reason or "")
    assert agreements(outbox) == [agreement_id(41)]


def test_body_less_fetch_result_is_skipped():
    assert body_of({b"SEQ": 4, b"RFC822.SIZE": 1234}) is None
    assert body_of({}) is None
    assert body_of(None) is None
    assert body_of({b"SEQ": 4, b"BODY[]": b"Subject: x\r\n\r\nhi"}) == (
        b"Subject: x\r\n\r\nhi"
    )


def test_plan_batches_caps_count_and_bytes():
    sizes = {1: 10, 2: 10, 3: 100, 4: 10, 5: 10, 6: 10}
    assert plan_batches([1, 2, 3, 4, 5, 6], sizes, 3, 1000) == [[1, 2, 3], [4, 5, 6]]
    assert plan_batches([1, 2, 3, 4, 5, 6], sizes, 10, 50) == [[1, 2], [3], [4, 5, 6]]


def test_xoauth2_login_with_token_command(tmp_path, dovecot: Dovecot):
    settings = config.from_dict(
        {
            "source": {
                "imap": {
                    "host": "127.0.0.1",
                    "port": dovecot.tls_port,
                    "tls": "implicit",
                    "ca_file": dovecot.cert,
                    "username": OAUTH_USER,
                    "auth": "xoauth2",
                    "token_command": f"echo {OAUTH_TOKEN}",
                }
            }
        }
    )
    client = connect(settings.imap[0])
    try:
        assert client.select_folder("INBOX")[b"UIDVALIDITY"] > 0
    finally:
        client.logout()


def test_bad_password_is_a_clear_auth_error(imap_user, monkeypatch, tmp_path):
    source, _, _ = make_source(tmp_path, imap_user, monkeypatch)
    monkeypatch.setenv("MAILSYNC_TEST_IMAP_PASSWORD", "wrong-pass")
    with pytest.raises(AuthError) as info:
        connect(source.settings)
    message = str(info.value)
    assert f"as {imap_user.user} refused" in message
    assert "wrong-pass" not in message


def test_tls_certificate_verified(dovecot: Dovecot, imap_user, monkeypatch):
    monkeypatch.setenv("MAILSYNC_TEST_IMAP_PASSWORD", imap_user.password)
    base = {
        "host": "127.0.0.1",
        "username": imap_user.user,
        "password_env": "MAILSYNC_TEST_IMAP_PASSWORD",
    }
    untrusted = config.from_dict(
        {"source": {"imap": {**base, "port": dovecot.tls_port}}}
    )
    with pytest.raises(TransientError, match=r"not trusted.*ca_file"):
        connect(untrusted.imap[0])
    for tls, port in (("implicit", dovecot.tls_port), ("starttls", dovecot.port)):
        trusted = config.from_dict(
            {"source": {"imap": {**base, "tls": tls, "port": port,
                                 "ca_file": dovecot.cert}}}
        )  # fmt: skip
        client = connect(trusted.imap[0])
        assert client.has_capability("IDLE")
        client.logout()
