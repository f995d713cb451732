"""The state store and the SQLite CRM (with their WAL/SHM files and the
folders made for them) are private to the user under umask 022."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, write_config

from mailsync.crm.sqlite_store import SqliteStore
from mailsync.ledger import Ledger
from mailsync.statedb import open_db

EVENT = Path(__file__).parent / "fixtures/eventbridge/created_manufacturer_cppo.json"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("umask_022")
def test_state_store_files_and_folders_are_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "state.sqlite3"
    conn = open_db(path)
    Ledger(conn).record("s", "k", "m", "0" * 64, "synced", None)
    assert mode(path) == 0o600
    assert mode(path.with_name("state.sqlite3-wal")) == 0o600
    assert mode(path.with_name("state.sqlite3-shm")) == 0o600
    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "lib") == 0o700
    conn.close()


@pytest.mark.usefixtures("umask_022")
def test_existing_folder_is_left_and_open_file_narrowed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    path = shared / "state.sqlite3"
    path.write_bytes(b"")
    os.chmod(path, 0o644)  # made by an older version
    open_db(path).close()
    assert mode(path) == 0o600
    assert mode(shared) == 0o755


@pytest.mark.usefixtures("umask_022")
def test_sqlite_crm_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "crm" / "crm.sqlite3"
    store = SqliteStore(path)
    store.conn.execute(
        'INSERT INTO "Account" ("Id", "AWS_Account_ID__c") VALUES (?, ?)', ("1", "1")
    )
    assert mode(path) == 0o600
    assert mode(path.with_name("crm.sqlite3-wal")) == 0o600
    assert mode(path.with_name("crm.sqlite3-shm")) == 0o600
    assert mode(tmp_path / "crm") == 0o700
    store.close()


def test_replay_run_creates_private_files(tmp_path: Path) -> None:
    """The CLI as systemd starts it (umask 022): every file it makes is 0600."""
    base = tmp_path / "data"
    cfg = write_config(tmp_path)
    text = cfg.read_text().replace(str(tmp_path) + "/", str(base) + "/")
    cfg.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "mailsync", "replay", "--config", str(cfg), str(EVENT)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=lambda: os.umask(0o022),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    made = sorted(p.name for p in base.iterdir())
    assert "state.sqlite3" in made and "crm.sqlite3" in made
    assert mode(base) == 0o700
    for name in made:
        assert mode(base / name) == 0o600, name


def count_elsewhere(path: Path) -> str:
    """Open the store in another process, count the rows, close it (the close
    of what it takes to be the last connection checkpoints and removes the
    WAL)."""
    probe = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "print(c.execute('SELECT count(*) FROM t').fetchone()[0])\n"
        "c.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(path)], capture_output=True, text=True
    )
    return done.stdout.strip() + done.stderr


def test_opening_again_keeps_the_locks_of_open_connections(tmp_path: Path) -> None:
    """Preparing an existing database must not open and close it: closing a
    descriptor drops this process's POSIX locks on the file, those of open
    SQLite connections too. Another process then takes itself for the last
    user, removes the WAL, and later commits of this process go to a deleted
    file (lost)."""
    path = tmp_path / "state.sqlite3"
    first = open_db(path)
    first.execute("CREATE TABLE t (x)")
    first.execute("INSERT INTO t VALUES (1)")
    second = open_db(path)  # another job of the daemon opens the store
    assert count_elsewhere(path) == "1"
    first.execute("INSERT INTO t VALUES (2)")  # committed (autocommit)
    assert count_elsewhere(path) == "2"
    first.close()
    second.close()



def test_many_threads_opening_a_new_state_store_at_once(tmp_path: Path) -> None:
    # The daemon's workers open the state store together at start-up; on a new
    # file the switch to WAL can answer "database is locked" without waiting
    # (about 1 in 15 new files failed this way before `enable_wal`).
    import threading

    from mailsync.statedb import open_db

    failures: list[str] = []
    for n in range(100):
        path = tmp_path / f"state-{n}.sqlite3"
        start = threading.Barrier(6)

        def worker(path: Path = path, start: threading.Barrier = start) -> None:
            try:
                start.wait()
                conn = open_db(path)
                conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
                conn.execute("INSERT INTO t VALUES (1)")
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                conn.close()
            except Exception as err:
                failures.append(str(err))

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
