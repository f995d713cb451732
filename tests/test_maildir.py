"""The local folder / Maildir source: read-only, state by name and hash."""

from __future__ import annotations

import os
import socket
import threading

from conftest import mailsync_env, run_mailsync, start_mailsync, wait_for, write_config
from mail import agreement_id, newsletter, offer_accepted

from mailsync import config
from mailsync.crm.outbox import Outbox
from mailsync.ledger import Ledger
from mailsync.notify import sd_notify, watchdog_period
from mailsync.pipeline import Pipeline
from mailsync.sources.maildir import MaildirSource
from mailsync.statedb import open_db


def source_for(tmp_path, folder):
    settings = config.from_dict(
        {
            "state": {"path": str(tmp_path / "state.sqlite3")},
            "security": {"require_dkim": False},
            "source": {"maildir": {"path": str(folder)}},
        }
    )
    conn = open_db(settings.state.path)
    ledger = Ledger(conn)
    return MaildirSource(settings.maildir[0], Pipeline(settings, ledger)), Outbox(conn)


def snapshot(folder):
    return {
        p: (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_plain_folder_read_only_and_once(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "a.eml").write_bytes(offer_accepted(1))
    (inbox / "sub" / "b.eml").write_bytes(offer_accepted(2))
    (inbox / "c.eml").write_bytes(newsletter(3))
    (inbox / "notes.txt").write_text("not mail")
    before = snapshot(inbox)
    source, outbox = source_for(tmp_path, inbox)
    stop = threading.Event()
    r = source.run_pass(outbox, stop)
    assert (r.fetched, r.synced, r.unrecognized) == (3, 2, 1)
    assert sorted(e.agreement_id for _, e in outbox.pending()) == [
        agreement_id(1),
        agreement_id(2),
    ]
    assert snapshot(inbox) == before  # never modified
    # a renamed copy is recognized by its hash; a changed file is new input
    os.rename(inbox / "a.eml", inbox / "a-renamed.eml")
    (inbox / "sub" / "b.eml").write_bytes(offer_accepted(4))
    r2 = source.run_pass(outbox, stop)
    assert (r2.fetched, r2.synced, r2.duplicates) == (2, 1, 1)
    assert outbox.depth() == 3


def test_real_maildir_new_to_cur_rename_not_reprocessed(tmp_path):
    md = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "new" / "1700000000.1.host").write_bytes(offer_accepted(5))
    (md / "tmp" / "1700000000.2.host").write_bytes(offer_accepted(6))  # in delivery
    source, outbox = source_for(tmp_path, md)
    stop = threading.Event()
    assert source.run_pass(outbox, stop).synced == 1
    os.rename(md / "new" / "1700000000.1.host", md / "cur" / "1700000000.1.host:2,S")
    r = source.run_pass(outbox, stop)
    assert (r.synced, r.duplicates) == (0, 1)
    assert [e.agreement_id for _, e in outbox.pending()] == [agreement_id(5)]


def test_sd_notify_path_and_abstract_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    for addr, bind in (
        (path, path),
        ("@mailsync-test-notify", "\0mailsync-test-notify"),
    ):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(bind)
            monkeypatch.setenv("NOTIFY_SOCKET", addr)
            assert sd_notify("READY=1\nSTATUS=ok") is True
            assert server.recv(100) == b"READY=1\nSTATUS=ok"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert sd_notify("READY=1") is False
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    assert watchdog_period() == 2.0


def test_daemon_talks_to_systemd_and_polls_maildir(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cfg = write_config(
        tmp_path, f'[source.maildir]\npath = "{inbox}"\npoll_interval = 1\n'
    )
    sock_path = str(tmp_path / "n.sock")
    env = mailsync_env()
    env.update(NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="1000000")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(sock_path)
        server.settimeout(20)
        proc = start_mailsync("run", "--config", str(cfg), log=tmp_path / "d.log",
                              env=env)  # fmt: skip
        try:
            messages = [server.recv(200).decode() for _ in range(2)]
            assert messages[0].startswith("READY=1\nSTATUS=watching maildir:")
            assert messages[1] == "WATCHDOG=1"
            (inbox / "x.eml").write_bytes(offer_accepted(7))
            state = tmp_path / "state.sqlite3"
            wait_for(lambda: b"agmt-" in state.read_bytes() or _depth(state), 20,
                     "the polled file")  # fmt: skip
        finally:
            proc.terminate()
            assert proc.wait(15) == 0
        rest = []
        server.settimeout(0.5)
        try:
            while True:
                rest.append(server.recv(200).decode())
        except TimeoutError:
            pass
        assert "STOPPING=1" in rest
    status = run_mailsync("status", "--config", str(cfg))
    assert "processed: 1 (synced 1, unrecognized 0, rejected 0)" in status.stdout


def _depth(state) -> bool:
    conn = open_db(state)
    try:
        return Ledger(conn).outcomes(f"maildir:{state.parent / 'inbox'}") != {}
    finally:
        conn.close()
