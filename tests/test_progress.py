"""Progress of long work: log lines with counts when stderr is no terminal,
a bar on a terminal (a real pty), STATUS= text for the daemon."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

from conftest import (
    ROOT,
    ImapUser,
    mailsync_env,
    run_mailsync,
    start_mailsync,
    wait_for,
    write_config,
)
from mail import newsletter, offer_accepted

from mailsync.progress import MIN_TOTAL, Progress


def progress_lines(stderr: str, job: str) -> list[tuple[int, int]]:
    """(done, total) of each ``INFO <job> progress ...`` line."""
    out = []
    for line in stderr.splitlines():
        if line.startswith(f"INFO {job} progress"):
            done = re.search(r" done=(\d+)", line)
            total = re.search(r" total=(\d+)", line)
            assert done and total, line
            out.append((int(done[1]), int(total[1])))
    return out


def tenths(lines: list[tuple[int, int]], total: int, step: int) -> list[int]:
    assert all(t == total for _, t in lines), lines
    done = [d for d, _ in lines]
    assert done == sorted(done) and done[-1] == total, done
    return [d for d in done if d % step == 0]


def mails(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        (folder / f"{i:04d}.eml").write_bytes(offer_accepted(5000 + i))
    return folder


def test_replay_without_terminal_logs_progress_counts(tmp_path: Path):
    cfg = write_config(tmp_path)
    folder = mails(tmp_path / "saved", 120)
    done = run_mailsync("replay", str(folder), "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    assert "replayed 120 inputs (120 new)" in done.stdout
    lines = progress_lines(done.stderr, "replay")
    assert tenths(lines, 120, 12) == [0, 12, 24, 36, 48, 60, 72, 84, 96, 108, 120]
    assert "\r" not in done.stderr and "%|" not in done.stderr  # no bar


def test_replay_on_a_terminal_shows_a_bar(tmp_path: Path):
    cfg = write_config(tmp_path)
    folder = mails(tmp_path / "saved", 120)
    (folder / "9999.eml").write_bytes(newsletter(1))  # a line above the bar
    master, slave = pty.openpty()
    # a new pty is 0x0; a terminal window has a size (rows, cols)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailsync", "replay", str(folder), "--config", str(cfg)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=mailsync_env(),
        cwd=ROOT,
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError("no output from replay on the pty for 60 s")
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(30) == 0
    text = b"".join(chunks).decode("utf-8", "replace")
    assert re.search(r"replay: 100%\|[^|]*\| 121/121 \[", text), text
    assert "\r" in text  # redrawn in place
    assert "9999.eml: unrecognized" in text
    assert "INFO replay progress" not in text  # the bar replaces the lines
    assert "replayed 120 inputs (120 new)" in text


def test_backfill_without_terminal_logs_progress_counts(
    tmp_path: Path, imap_user: ImapUser
):
    n = 150
    imap_user.append([offer_accepted(6000 + i) for i in range(n)])
    cfg = write_config(tmp_path, imap_user.imap_table(batch_size=50))
    done = run_mailsync("run", "--once", "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    lines = progress_lines(done.stderr, "backfill")
    assert tenths(lines, n, 50) == [0, 50, 100, 150]
    assert all(
        "source=imap:imap" in line
        for line in done.stderr.splitlines()
        if "backfill progress" in line
    )


def test_quarantine_retry_all_without_terminal_logs_progress_counts(
    tmp_path: Path, imap_user: ImapUser
):
    n = 100
    imap_user.append([newsletter(i) for i in range(n)])
    cfg = write_config(tmp_path, imap_user.imap_table())
    first = run_mailsync("run", "--once", "--config", str(cfg))
    assert f"unrecognized {n}" in first.stderr, first.stderr
    retry = run_mailsync("quarantine", "retry", "--all", "--config", str(cfg))
    assert retry.returncode == 0, retry.stderr
    assert f"retried {n}: synced 0, still unrecognized {n}" in retry.stdout
    lines = progress_lines(retry.stderr, "quarantine retry")
    assert tenths(lines, n, 10) == list(range(0, n + 1, 10))


def test_small_jobs_show_nothing_and_status_text_counts():
    seen: list[str | None] = []
    with Progress("replay", MIN_TOTAL - 1, bar=False, on_status=seen.append) as p:
        p.advance(MIN_TOTAL - 1)
    assert seen == []
    with Progress("backfill", 200, "messages", bar=False, on_status=seen.append) as p:
        p.advance(150)
        p.advance(100)  # clamped to the total
        assert p.done == 200
    assert seen[0] == "backfill 0/200 messages"
    assert seen[-2:] == ["backfill 200/200 messages", None]


def test_daemon_backfill_reports_counts_in_status_and_log(
    tmp_path: Path, imap_user: ImapUser
):
    from survival_helpers import NotifyListener

    n = 2000
    imap_user.append([offer_accepted(20_000 + i) for i in range(n)])
    cfg = write_config(tmp_path, imap_user.imap_table(batch_size=20))
    notify = NotifyListener()
    env = mailsync_env()
    env["NOTIFY_SOCKET"] = notify.path
    log = tmp_path / "daemon.log"
    proc = start_mailsync("run", "--config", str(cfg), log=log, env=env)
    try:
        wait_for(lambda: f"done={n} total={n}" in log.read_text(), 120, "the backfill")
        wait_for(
            lambda: notify.statuses()[-1:] == ["watching imap:imap"],
            10,
            "the status line without the backfill",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        notify.close()
    counts = [
        int(m[1])
        for s in notify.statuses()
        if (m := re.fullmatch(rf"watching imap:imap; imap:imap: backfill (\d+)/{n}"
                              r" messages", s))
    ]  # fmt: skip
    statuses = notify.statuses()
    assert counts and counts == sorted(counts) and 0 <= counts[0] < n, statuses
    lines = progress_lines(log.read_text(), "backfill")
    assert tenths(lines, n, 200) == list(range(0, n + 1, 200))
