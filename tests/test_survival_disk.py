"""Disk survival: the state store on a full disk or a read-only mount.

Both are real: a 1 MiB tmpfs filled to the last byte (ENOSPC), and a
read-only bind mount (`mount --bind` + `mount -o remount,ro,bind`; root ignores
permission bits, so chmod alone would prove nothing). The daemon must stop
with a non-zero exit and ONE clear line naming the state store path and what
to fix (no traceback), and leave the mail unmarked in IMAP; once the disk is
fixed, a run picks everything up.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ImapUser, run_mailsync, start_mailsync, wait_for
from survival_helpers import (
    daemon_env,
    outbox_agreements,
    seller_emails,
    survival_config,
)

PROCESSED = b"$MailsyncProcessed"


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A mounted 1 MiB tmpfs."""
    where = tmp_path / "disk"
    where.mkdir()
    done = _mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(where))
    if done.returncode != 0:
        pytest.skip(
            "mounting a tmpfs needs root with CAP_SYS_ADMIN (mount said: "
            f"{done.stderr.strip()}); no other real full-disk mechanism exists"
        )
    try:
        yield where
    finally:
        _umount(where)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(writable source folder, its read-only bind mount, not yet made ro)."""
    src, view = tmp_path / "state-src", tmp_path / "state"
    src.mkdir()
    view.mkdir()
    done = _mount("--bind", str(src), str(view))
    if done.returncode != 0:
        pytest.skip(
            "a bind mount needs root with CAP_SYS_ADMIN (mount said: "
            f"{done.stderr.strip()}); root ignores file modes, so nothing else "
            "makes a folder read-only for root"
        )
    try:
        yield src, view
    finally:
        _umount(view)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem is full; return it."""
    filler = folder / "filler"
    chunk = b"\0" * 4096
    with filler.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC
                break
    for size in (512, 64, 1):  # the last partial page too
        try:
            with filler.open("ab", buffering=0) as f:
                while True:
                    f.write(b"\0" * size)
        except OSError as err:
            assert err.errno == errno.ENOSPC
    return filler


def stops_cleanly(cfg: Path, env: dict[str, str], log: Path, state: Path) -> str:
    """Run the daemon until it stops by itself; check the one-line error."""
    proc = start_mailsync("run", "--config", str(cfg), log=log, env=env)
    try:
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return one_fatal_line(log.read_text(), code, state)


def one_fatal_line(text: str, code: int | None, state: Path) -> str:
    """Exit 1, no traceback, exactly one CRITICAL line naming the store."""
    assert code == 1, text
    assert "Traceback" not in text
    fatal = [line for line in text.splitlines() if line.startswith("CRITICAL")]
    assert len(fatal) == 1, text
    assert str(state) in fatal[0]
    return fatal[0]


def test_full_disk_stops_the_daemon_and_keeps_mail_unmarked(
    tmp_path: Path, imap_user: ImapUser, tiny_disk: Path
) -> None:
    state = tiny_disk / "state.sqlite3"
    cfg = survival_config(tmp_path, imap=imap_user, state=state)
    env = daemon_env()
    log = tmp_path / "daemon.log"
    proc = start_mailsync("run", "--config", str(cfg), log=log, env=env)
    try:
        wait_for(lambda: "INFO connected" in log.read_text(), 20, "the IMAP login")
        filler = fill(tiny_disk)  # the disk fills up while the daemon runs
        mail = seller_emails(3, seed=201)
        imap_user.append([m.raw for m in mail])
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    fatal = one_fatal_line(log.read_text(), code, state)
    assert "disk holding it is full: free space" in fatal, fatal
    assert not any(PROCESSED in f for f in imap_user.flags().values())

    # Starting on the full disk fails the same way, before reading any mail.
    fatal = stops_cleanly(cfg, env, tmp_path / "daemon2.log", state)
    assert "full" in fatal, fatal
    assert not any(PROCESSED in f for f in imap_user.flags().values())

    filler.unlink()  # the admin frees space: nothing was lost
    again = run_mailsync("run", "--once", "--config", str(cfg), env=env)
    assert again.returncode == 0, again.stderr
    assert outbox_agreements(state) == sorted(m.agreement_id for m in mail)
    assert all(PROCESSED in f for f in imap_user.flags().values())


def test_read_only_state_store_stops_the_daemon_and_keeps_mail_unmarked(
    tmp_path: Path, imap_user: ImapUser, read_only_dir: tuple[Path, Path]
) -> None:
    src, view = read_only_dir
    state = view / "state.sqlite3"
    cfg = survival_config(tmp_path, imap=imap_user, state=state)
    env = daemon_env()
    first = run_mailsync("run", "--once", "--config", str(cfg), env=env)
    assert first.returncode == 0, first.stderr
    done = _mount("-o", "remount,ro,bind", str(view))
    assert done.returncode == 0, done.stderr
    with pytest.raises(OSError) as refused:  # really read-only, even for root
        (view / "probe").write_text("x")
    assert refused.value.errno == errno.EROFS
    mail = seller_emails(2, seed=202)
    imap_user.append([m.raw for m in mail])

    fatal = stops_cleanly(cfg, env, tmp_path / "daemon.log", state)
    assert "read-only" in fatal or "writable" in fatal, fatal
    assert not any(PROCESSED in f for f in imap_user.flags().values())

    assert _mount("-o", "remount,rw,bind", str(view)).returncode == 0
    again = run_mailsync("run", "--once", "--config", str(cfg), env=env)
    assert again.returncode == 0, again.stderr
    assert outbox_agreements(state) == sorted(m.agreement_id for m in mail)
    assert all(PROCESSED in f for f in imap_user.flags().values())
    assert os.listdir(src)  # the store lives in the bind-mounted folder
