"""`mailsync run` as a subprocess against a real Dovecot: IDLE, outages,
SIGTERM mid-batch, bad credentials, --once exit codes."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

from conftest import (
    ImapUser,
    mailsync_env,
    run_mailsync,
    start_mailsync,
    wait_for,
    write_config,
)
from mail import agreement_id, offer_accepted


def outbox_agreements(state: Path) -> list[str]:
    """Agreement IDs of the events in the outbox, one per event row."""
    if not state.exists():
        return []
    with sqlite3.connect(state) as conn:
        try:
            rows = conn.execute(
                "SELECT json_extract(event, '$.agreement_id') FROM outbox"
            ).fetchall()
        except sqlite3.OperationalError:  # table not created yet
            return []
    return sorted(r[0] for r in rows)


def stop(proc, timeout: float = 15) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def test_once_syncs_then_second_run_syncs_nothing(tmp_path, imap_user: ImapUser):
    imap_user.append([offer_accepted(1), offer_accepted(2)])
    cfg = write_config(tmp_path, imap_user.imap_table())
    first = run_mailsync("run", "--once", "--config", str(cfg))
    assert first.returncode == 0, first.stderr
    assert "fetched 2, synced 2 (0 duplicates)" in first.stderr
    assert "pending 0" in first.stderr
    second = run_mailsync("run", "--once", "--config", str(cfg))
    assert second.returncode == 0, second.stderr
    assert "fetched 0, synced 0" in second.stderr
    assert outbox_agreements(tmp_path / "state.sqlite3") == [
        agreement_id(1),
        agreement_id(2),
    ]
    status = run_mailsync("status", "--config", str(cfg))
    assert status.returncode == 0
    assert "imap:imap" in status.stdout
    assert "processed: 2 (synced 2, unrecognized 0, rejected 0)" in status.stdout


def test_idle_delivers_without_waiting_for_poll(tmp_path, imap_user: ImapUser):
    cfg = write_config(tmp_path, imap_user.imap_table(poll_interval=3600))
    log = tmp_path / "daemon.log"
    proc = start_mailsync("run", "--config", str(cfg), log=log)
    state = tmp_path / "state.sqlite3"
    try:
        wait_for(lambda: "connected" in log.read_text(), 20, "the IMAP login")
        imap_user.append([offer_accepted(100)])
        wait_for(lambda: outbox_agreements(state) == [agreement_id(100)], 10,
                 "the IDLE-delivered event")  # fmt: skip
    finally:
        assert stop(proc) == 0
    text = log.read_text()
    assert "Traceback" not in text
    assert "INFO synced source=imap:imap" in text


def test_server_restart_mid_idle_reconnects(tmp_path, imap_user: ImapUser):
    server = imap_user.server
    cfg = write_config(tmp_path, imap_user.imap_table(poll_interval=3600))
    log = tmp_path / "daemon.log"
    proc = start_mailsync("run", "--config", str(cfg), log=log)
    state = tmp_path / "state.sqlite3"
    try:
        wait_for(lambda: "connected" in log.read_text(), 20, "the IMAP login")
        server.stop()
        server.start()
        imap_user.append([offer_accepted(200), offer_accepted(201)])
        wait_for(
            lambda: outbox_agreements(state) == [agreement_id(200), agreement_id(201)],
            30,
            "the mail that arrived during the outage",
        )
    finally:
        assert stop(proc) == 0
    text = log.read_text()
    assert "retrying in" in text
    assert text.count("INFO connected") >= 2
    assert "Traceback" not in text


def test_sigterm_mid_batch_loses_nothing(tmp_path, imap_user: ImapUser):
    n = 1500
    imap_user.append([offer_accepted(1000 + i) for i in range(n)])
    cfg = write_config(tmp_path, imap_user.imap_table(batch_size=50))
    log = tmp_path / "daemon.log"
    proc = start_mailsync("run", "--config", str(cfg), log=log)
    state = tmp_path / "state.sqlite3"
    wait_for(lambda: len(outbox_agreements(state)) >= 100, 60, "the backfill")
    assert stop(proc, timeout=10) == 0
    synced_before = len(outbox_agreements(state))
    assert synced_before < n, "the mailbox was too small to stop mid-batch"
    again = run_mailsync("run", "--once", "--config", str(cfg))
    assert again.returncode == 0, again.stderr
    assert outbox_agreements(state) == sorted(agreement_id(1000 + i) for i in range(n))
    assert f"synced {n - synced_before} (0 duplicates)" in again.stderr
    assert all(b"$MailsyncProcessed" in f for f in imap_user.flags().values())


def test_bad_credentials_clear_message_no_traceback(tmp_path, imap_user: ImapUser):
    cfg = write_config(tmp_path, imap_user.imap_table())
    once = run_mailsync("run", "--once", "--config", str(cfg),
                        env=mailsync_env("wrong"))  # fmt: skip
    assert once.returncode == 1
    assert (
        f"IMAP login to 127.0.0.1:{imap_user.server.port} as {imap_user.user}"
        " refused" in once.stderr
    )
    assert "Traceback" not in once.stderr and "wrong" not in once.stderr.replace(
        "wrong-", ""
    ).replace("password/token", "")
    log = tmp_path / "daemon.log"
    proc = start_mailsync("run", "--config", str(cfg), log=log,
                          env=mailsync_env("wrong"))  # fmt: skip
    try:
        wait_for(lambda: "retrying in" in log.read_text(), 20, "the backoff message")
    finally:
        assert stop(proc) == 0
    assert "Traceback" not in log.read_text()
    status = run_mailsync("status", "--config", str(cfg))
    assert "last error: IMAP login" in status.stdout


def test_missing_config_key_names_it(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[source.imap]\nhost = "127.0.0.1"\ntls = "none"\n')
    result = run_mailsync("run", "--once", "--config", str(cfg))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mailsync: [source.imap] username: required: the mailbox login name"
    )
