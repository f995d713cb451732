"""`mailsync run --once` with `[source.agreements]`, killed (SIGKILL) in the
middle of a pass and run again: nothing lost, nothing twice, and committed
snapshots are not described again."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from agreement_emulator import Emulator
from conftest import mailsync_env, run_mailsync, start_mailsync, wait_for, write_config

TOTAL = 40


def counts(state: Path) -> tuple[int, int, int]:
    conn = sqlite3.connect(state)
    try:
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        distinct = conn.execute(
            "SELECT count(DISTINCT json_extract(event, '$.source_id')) FROM outbox"
        ).fetchone()[0]
        seen = conn.execute("SELECT count(*) FROM agreement_seen").fetchone()[0]
    finally:
        conn.close()
    return int(outbox), int(distinct), int(seen)


def test_kill_mid_pass_then_restart(agreement_api: Emulator, tmp_path: Path) -> None:
    for i in range(TOTAL):
        agreement_api.put(
            f"agmt-{i:025d}", updated=f"2026-02-01T{i // 60:02d}:{i % 60:02d}:00Z"
        )
    agreement_api.faults.describe_delay = 0.05
    cfg = write_config(
        tmp_path, f'[source.agreements]\nendpoint_url = "{agreement_api.url}"\n'
    )
    env = mailsync_env()
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    proc = start_mailsync(
        "run", "--once", "--config", str(cfg), log=tmp_path / "first.log", env=env
    )
    try:
        wait_for(
            lambda: agreement_api.calls["DescribeAgreement"] >= 15, 60, "15 describes"
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    first_describes = agreement_api.calls["DescribeAgreement"]
    outbox, distinct, seen = counts(tmp_path / "state.sqlite3")
    assert 0 < seen < TOTAL
    assert outbox == distinct == seen  # each committed with its marker

    # A request of the killed process may still sit in the emulator's delay and
    # be counted when it ends: let it end before counting the restart's calls.
    time.sleep(agreement_api.faults.describe_delay + 0.5)
    agreement_api.reset_calls()
    agreement_api.faults.describe_delay = 0
    again = run_mailsync("run", "--once", "--config", str(cfg), env=env)
    assert again.returncode == 0, again.stderr
    # Only the agreements not committed before the kill are described again.
    assert agreement_api.calls["DescribeAgreement"] == TOTAL - seen
    assert first_describes - seen <= 1  # at most the one in flight was lost
    outbox, distinct, seen = counts(tmp_path / "state.sqlite3")
    assert outbox == distinct == seen == TOTAL

    agreement_api.reset_calls()
    third = run_mailsync("run", "--once", "--config", str(cfg), env=env)
    assert third.returncode == 0, third.stderr
    assert agreement_api.calls == {"SearchAgreements": 1}
    records = run_mailsync(
        "records", "AWS_Agreement__c", "--format", "json", "--config", str(cfg)
    )
    assert records.stdout.count('"object": "AWS_Agreement__c"') == TOTAL


def crm_rows(tmp: Path) -> int:
    if not (tmp / "crm.sqlite3").exists():
        return 0
    conn = sqlite3.connect(tmp / "crm.sqlite3")
    try:
        return int(conn.execute("SELECT count(*) FROM AWS_Agreement__c").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_daemon_polls_on_its_interval(agreement_api: Emulator, tmp_path: Path) -> None:
    for i in range(3):
        agreement_api.put(f"agmt-{i:025d}", updated=f"2026-02-01T00:0{i}:00Z")
    cfg = write_config(
        tmp_path,
        f'[source.agreements]\nendpoint_url = "{agreement_api.url}"\n'
        "poll_interval = 1\n",
    )
    env = mailsync_env()
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    proc = start_mailsync("run", "--config", str(cfg), log=tmp_path / "d.log", env=env)
    try:
        wait_for(lambda: agreement_api.calls["SearchAgreements"] >= 3, 60, "3 polls")
        agreement_api.put(
            "agmt-0000000000000000000000009", updated="2026-03-01T00:00:00Z"
        )
        wait_for(
            lambda: agreement_api.calls["DescribeAgreement"] == 4, 60, "the new one"
        )
        wait_for(lambda: crm_rows(tmp_path) == 4, 60, "4 agreements in the CRM")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    # Unchanged passes made no DescribeAgreement: 3 at first, 1 for the new one.
    assert agreement_api.calls["DescribeAgreement"] == 4
