"""An outcome is logged only once it is durable: on a disk that fills up while
the daemon runs, the FETCH batch's COMMIT fails and no input of it may be
logged "synced" (it was never recorded, and is read again later)."""

from __future__ import annotations

from pathlib import Path

from conftest import ImapUser, start_mailsync, wait_for
from survival_helpers import daemon_env, seller_emails, survival_config
from test_survival_disk import fill, one_fatal_line, tiny_disk

from mailsync.ledger import Ledger
from mailsync.statedb import after_commit, atomic, open_db

__all__ = ["tiny_disk"]


def test_full_disk_run_logs_no_synced_line(
    tmp_path: Path, imap_user: ImapUser, tiny_disk: Path
) -> None:
    state = tiny_disk / "state.sqlite3"
    cfg = survival_config(tmp_path, imap=imap_user, state=state)
    log = tmp_path / "daemon.log"
    proc = start_mailsync("run", "--config", str(cfg), log=log, env=daemon_env())
    try:
        wait_for(lambda: "INFO connected" in log.read_text(), 20, "the IMAP login")
        filler = fill(tiny_disk)
        imap_user.append([m.raw for m in seller_emails(3, seed=202)])
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    one_fatal_line(text, code, state)
    synced = [line for line in text.splitlines() if line.startswith("INFO synced")]
    assert synced == [], text
    filler.unlink()


def test_actions_wait_for_the_commit_and_drop_on_rollback(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "state.sqlite3")
    ledger = Ledger(conn)
    done: list[str] = []
    with ledger.batch():
        ledger.record("s", "k1", "m1", "0" * 64, "synced")
        after_commit(conn, lambda: done.append("k1"))
        assert done == []  # not durable yet
    assert done == ["k1"]
    try:
        with atomic(conn):
            after_commit(conn, lambda: done.append("k2"))
            raise RuntimeError("the write failed")
    except RuntimeError:
        pass
    after_commit(conn, lambda: done.append("k3"))  # no transaction: at once
    assert done == ["k1", "k3"]
    assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (1,)
    conn.close()
