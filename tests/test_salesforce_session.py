"""One Salesforce session across flushes (`mailsync.crm.connection`).

The daemon flushes every `[crm] flush_interval` seconds; it must log in once,
lazily, and reuse the session: a new login only after INVALID_SESSION_ID (the
org expired the session) or after a flush that failed for an outage, and after
a SIGHUP reload. Counted with the emulator's per-endpoint call counter
(``soap_login``: password logins; ``invalid_session``: 401 answers).

The CRM "restart" is a `TcpProxy` in front of the emulator taken down (the port
refuses connections) and brought back on the same port; the emulator keeps its
sessions meanwhile, so a re-login after it proves the failed-flush rule, not
an expired session.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import start_mailsync, wait_for
from sfemu import Emulator
from sfemu.testing import emulator, sf_secrets
from survival_helpers import (
    NotifyListener,
    TcpProxy,
    daemon_env,
    seller_emails,
    survival_config,
)

from mailsync.config import Settings, from_dict
from mailsync.crm.connection import CrmConnection
from mailsync.crm.outbox import Outbox
from mailsync.crm.sync import CrmSync, FlushResult
from mailsync.event import Channel, Event, Kind
from mailsync.statedb import open_db

__all__ = ["emulator", "sf_secrets"]
AGREEMENT = "AWS_Agreement__c"


def port_of(emu: Emulator) -> int:
    return int(emu.url.rsplit(":", 1)[1])


@pytest.fixture
def proxy(emulator: Emulator) -> Iterator[TcpProxy]:
    p = TcpProxy(port_of(emulator))
    yield p
    p.down()


def settings(tmp: Path, backend: str, url: str = "", user: str = "") -> Settings:
    crm: dict[str, Any] = {
        "backend": backend,
        "sqlite": {"path": str(tmp / "crm.sqlite3")},
    }
    if backend == "salesforce":
        crm["salesforce"] = {
            "username": user,
            "endpoint_url": url,
            "password_env": "MAILSYNC_TEST_SF_PASSWORD",
            "security_token_env": "MAILSYNC_TEST_SF_TOKEN",
            "timeout": 5,
        }
    return from_dict({"state": {"path": str(tmp / "state.sqlite3")}, "crm": crm})


def accepted(n: int) -> Event:
    buyer = f"{100000000000 + n:012d}"
    return Event(
        kind=Kind.OFFER_ACCEPTED,
        occurred_at=datetime(2024, 5, 1, 9, n, tzinfo=UTC),
        channel=Channel.EMAIL,
        source_id=f"accepted-{n}@example",
        agreement_id=f"agmt-session-{n}",
        offer_id=f"offer-session-{n}",
        customer_account_id=buyer,
        customer_account_ids=(buyer,),
        customer_name=f"Buyer {n}",
        acceptance_date=date(2024, 5, 1),
    )


class Flusher:
    """What the daemon's flush job does: a fresh `CrmSync` per flush on one
    shared `CrmConnection`."""

    def __init__(self, cfg: Settings) -> None:
        self.cfg = cfg
        self.conn = open_db(cfg.state.path)
        self.outbox = Outbox(self.conn)
        self.crm = CrmConnection(cfg)

    def flush(self, *events: Event) -> FlushResult:
        for event in events:
            self.outbox.submit(event)
        sync = CrmSync(self.cfg, self.conn, connection=self.crm)
        try:
            return sync.flush()
        finally:
            sync.close()

    def close(self) -> None:
        self.crm.close()
        self.conn.close()


def agreements(emu: Emulator) -> list[str]:
    return sorted(str(r["Agreement_ID__c"]) for r in emu.records(AGREEMENT))


def test_one_login_serves_many_flushes_and_relogs_in_when_needed(
    tmp_path: Path, emulator: Emulator, sf_secrets: None, proxy: TcpProxy
) -> None:
    flusher = Flusher(settings(tmp_path, "salesforce", proxy.url, emulator.username))
    try:
        # Nothing to write: no login at all.
        assert flusher.flush().written == 0
        assert emulator.calls["soap_login"] == 0 and not flusher.crm.is_open

        # Three flushes with work: one login.
        for n in (1, 2, 3):
            result = flusher.flush(accepted(n))
            assert (result.written, result.pending, result.paused_reason) == (
                1,
                0,
                None,
            )
        assert emulator.calls["soap_login"] == 1 and flusher.crm.opened == 1
        assert agreements(emulator) == [f"agmt-session-{n}" for n in (1, 2, 3)]
        api_before = emulator.api_calls

        # Idle flushes in between cost nothing (no login, no API call).
        assert flusher.flush().written == 0
        assert emulator.api_calls == api_before and flusher.crm.is_open

        # The org expired the session: one re-login, the record lands.
        emulator.expire_sessions()
        result = flusher.flush(accepted(4))
        assert (result.written, result.pending, result.paused_reason) == (1, 0, None)
        assert emulator.calls["soap_login"] == 2
        assert emulator.calls["invalid_session"] == 1
        assert flusher.crm.opened == 1  # same backend; simple-salesforce re-logged in

        # The CRM goes away: the flush fails, keeps the event, drops the session.
        proxy.down()
        result = flusher.flush(accepted(5))
        assert result.written == 0 and result.pending == 1
        assert "cannot reach Salesforce" in (result.paused_reason or "")
        assert not flusher.crm.is_open
        assert emulator.calls["soap_login"] == 2

        # Back on the same port: the next flush logs in again and lands.
        proxy.up()
        result = flusher.flush()
        assert (result.written, result.pending, result.paused_reason) == (1, 0, None)
        assert emulator.calls["soap_login"] == 3 and flusher.crm.opened == 2
        assert emulator.calls["invalid_session"] == 1  # not an expired session
        assert agreements(emulator) == [f"agmt-session-{n}" for n in range(1, 6)]
        assert len(emulator.records("AWS_Marketplace_Event__c")) == 5

        # Shutdown closes it; the next flush with work would log in again.
        flusher.crm.close()
        assert not flusher.crm.is_open
        assert flusher.flush(accepted(6)).written == 1
        assert emulator.calls["soap_login"] == 4
    finally:
        flusher.close()


def test_one_shot_flush_still_opens_and_closes_its_own_session(
    tmp_path: Path, emulator: Emulator, sf_secrets: None
) -> None:
    cfg = settings(tmp_path, "salesforce", emulator.url, emulator.username)
    conn = open_db(cfg.state.path)
    try:
        for n in (1, 2):
            Outbox(conn).submit(accepted(n))
            sync = CrmSync(cfg, conn)
            try:
                assert sync.flush().written == 1
            finally:
                sync.close()
    finally:
        conn.close()
    assert emulator.calls["soap_login"] == 2
    assert agreements(emulator) == ["agmt-session-1", "agmt-session-2"]


def test_sqlite_store_is_opened_per_flush_not_kept(tmp_path: Path) -> None:
    """The SQLite store's connection belongs to the thread that opened it and
    the daemon flushes on worker threads: it is not kept between flushes."""
    flusher = Flusher(settings(tmp_path, "sqlite"))
    try:
        assert not flusher.crm.keep
        for n in (1, 2):
            assert flusher.flush(accepted(n)).written == 1
            assert not flusher.crm.is_open
        assert flusher.crm.opened == 2
    finally:
        flusher.close()


# -- the daemon ------------------------------------------------------------------


def deliver(inbox: Path, n: int, raw: bytes) -> None:
    """Drop one email into the watched folder atomically (hidden, then
    renamed to ``.eml``)."""
    tmp = inbox / f".{n}.part"
    tmp.write_bytes(raw)
    os.replace(tmp, inbox / f"{n:03d}.eml")


def test_daemon_keeps_one_session_across_flushes(
    tmp_path: Path, emulator: Emulator, proxy: TcpProxy
) -> None:
    mail = seller_emails(6, seed=211)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cfg = survival_config(tmp_path, salesforce=(proxy.url, emulator.username))
    with cfg.open("a") as f:
        f.write(f'\n[source.maildir]\npath = "{inbox}"\npoll_interval = 1\n')
    notify = NotifyListener()
    env = daemon_env(sf=(emulator.password, emulator.security_token), notify=notify)
    log = tmp_path / "daemon.log"
    proc = start_mailsync("run", "--config", str(cfg), log=log, env=env)
    want: list[str] = []

    def landed() -> bool:
        return agreements(emulator) == sorted(want)

    try:
        wait_for(lambda: notify.has("READY=1"), 20, "READY=1")
        for n in range(3):  # three flushes with work (each waited for)
            deliver(inbox, n, mail[n].raw)
            want.append(mail[n].agreement_id)
            wait_for(landed, 30, f"agreement {n + 1} in the CRM")
        # ... and many idle flushes (every second) meanwhile: one login.
        assert emulator.calls["soap_login"] == 1

        emulator.expire_sessions()
        deliver(inbox, 3, mail[3].raw)
        want.append(mail[3].agreement_id)
        wait_for(landed, 30, "the record after the session expired")
        assert emulator.calls["soap_login"] == 2
        assert emulator.calls["invalid_session"] == 1

        proxy.down()
        deliver(inbox, 4, mail[4].raw)
        wait_for(
            lambda: any("; crm: writes paused" in s for s in notify.statuses()),
            60,
            "STATUS= naming the CRM outage",
        )
        proxy.up()
        want.append(mail[4].agreement_id)
        wait_for(landed, 60, "the record after the CRM came back")
        assert emulator.calls["soap_login"] == 3
        assert emulator.calls["invalid_session"] == 1

        proc.send_signal(signal.SIGHUP)  # the reload closes the session
        wait_for(lambda: "config reloaded" in log.read_text(), 20, "the reload")
        deliver(inbox, 5, mail[5].raw)
        want.append(mail[5].agreement_id)
        wait_for(landed, 30, "the record after the reload")
        assert emulator.calls["soap_login"] == 4

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        text = log.read_text()
        assert "Traceback" not in text
        assert text.count("crm session opened") == 3  # after the reload: a new one
        assert "crm session closed after a failed flush" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
