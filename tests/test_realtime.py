"""`mailsync run` against a real Dovecot: new mail reaches the CRM without
waiting for `[crm] flush_interval`, and a burst is written in few flushes.

The flush interval is an hour in these tests, so a record that appears at all
before the test ends was written by the event-driven flush."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ImapUser, mailsync_env, start_mailsync, wait_for
from mail import agreement_id, offer_accepted
from sfemu import Emulator


def config(tmp: Path, user: ImapUser, crm: str, *, debounce: float = 0.5) -> Path:
    text = (
        f'[state]\npath = "{tmp}/state.sqlite3"\n\n'
        "[security]\nrequire_dkim = false\n\n"
        f"[crm]\nflush_interval = 3600\nflush_debounce = {debounce}\n{crm}\n"
        + user.imap_table(poll_interval=3600)
    )
    path = tmp / "mailsync.toml"
    path.write_text(text)
    return path


def sqlite_crm(tmp: Path) -> str:
    return f'backend = "sqlite"\n\n[crm.sqlite]\npath = "{tmp}/crm.sqlite3"\n'


def salesforce_crm(emu: Emulator) -> str:
    return (
        'backend = "salesforce"\n\n[crm.salesforce]\n'
        f'username = "{emu.username}"\nendpoint_url = "{emu.url}"\n'
        'password_env = "MAILSYNC_TEST_SF_PASSWORD"\n'
        'security_token_env = "MAILSYNC_TEST_SF_TOKEN"\n'
    )


def crm_agreements(path: Path) -> list[str]:
    """Agreement IDs in the embedded CRM file (empty before it exists)."""
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute(
                'SELECT "Agreement_ID__c" FROM "AWS_Agreement__c"'
            ).fetchall()
        except sqlite3.OperationalError:  # the flush has not created it yet
            return []
    return sorted(r[0] for r in rows)


def emu_agreements(emu: Emulator) -> list[str]:
    return sorted(r["Agreement_ID__c"] for r in emu.records("AWS_Agreement__c"))


@pytest.fixture
def emu() -> Iterator[Emulator]:
    server = Emulator().start()
    try:
        yield server
    finally:
        server.stop()


def stop(proc) -> int:  # type: ignore[no-untyped-def]
    proc.send_signal(signal.SIGTERM)
    return int(proc.wait(15))


def test_new_mail_reaches_sqlite_crm_before_flush_interval(
    tmp_path: Path, imap_user: ImapUser
) -> None:
    cfg = config(tmp_path, imap_user, sqlite_crm(tmp_path))
    log = tmp_path / "daemon.log"
    proc = start_mailsync("run", "--config", str(cfg), log=log)
    try:
        wait_for(lambda: "connected" in log.read_text(), 20, "the IMAP login")
        assert crm_agreements(tmp_path / "crm.sqlite3") == []
        imap_user.append([offer_accepted(300)])
        wait_for(
            lambda: crm_agreements(tmp_path / "crm.sqlite3") == [agreement_id(300)],
            10,
            "the record in the embedded CRM (flush_interval is 3600 s)",
        )
        imap_user.append([offer_accepted(301)])
        wait_for(
            lambda: (
                crm_agreements(tmp_path / "crm.sqlite3")
                == [agreement_id(300), agreement_id(301)]
            ),
            10,
            "the second record",
        )
    finally:
        assert stop(proc) == 0
    text = log.read_text()
    assert "Traceback" not in text
    assert "INFO crm flush written=1 pending=0" in text


def test_burst_is_written_in_fewer_flushes_than_mails(
    tmp_path: Path, imap_user: ImapUser, emu: Emulator
) -> None:
    n = 8
    cfg = config(tmp_path, imap_user, salesforce_crm(emu), debounce=2.0)
    env = mailsync_env()
    env["MAILSYNC_TEST_SF_PASSWORD"] = emu.password
    env["MAILSYNC_TEST_SF_TOKEN"] = emu.security_token
    log = tmp_path / "daemon.log"
    proc = start_mailsync("run", "--config", str(cfg), log=log, env=env)
    try:
        wait_for(lambda: "connected" in log.read_text(), 20, "the IMAP login")
        time.sleep(0.3)  # the start-up pass and flush (nothing to write) are done
        queries, upserts = emu.calls["query"], emu.calls["collections_patch"]
        # One APPEND each, 0.8 s apart: one IDLE wake-up, pass and poke each
        # (Dovecot waits 0.5 s before it tells an IDLE client); all within the
        # 2 s debounce of the one before, so they are gathered.
        with imap_user.client() as c:
            for i in range(n):
                c.append("INBOX", offer_accepted(400 + i))
                time.sleep(0.8)
        want = sorted(agreement_id(400 + i) for i in range(n))
        wait_for(lambda: emu_agreements(emu) == want, 20, "all records in Salesforce")
    finally:
        assert stop(proc) == 0
    text = log.read_text()
    assert "Traceback" not in text
    # One Accounts query per flush with work (`CrmSync._account_names`).
    flushes = emu.calls["query"] - queries
    assert 1 <= flushes < n, (flushes, text)
    assert text.count("INFO crm flush written=") == flushes
    # Each flush upserts each object once (Account, Agreement, Offer, Event).
    assert emu.calls["collections_patch"] - upserts <= 4 * flushes
    written = [
        int(line.split("written=")[1].split()[0])
        for line in text.splitlines()
        if "INFO crm flush written=" in line
    ]
    assert sum(written) == n and max(written) > 1, written
