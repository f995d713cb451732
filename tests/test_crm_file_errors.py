"""A damaged embedded CRM file is reported as that file, with what to do, and
not as a state-store failure; the pending event stays in the outbox."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import run_mailsync, write_config

FIXTURES = Path(__file__).parent / "fixtures"
OFFER = FIXTURES / "email/offer.accepted/isv_public_plain_no_end_date.eml"


def damaged_setup(tmp: Path) -> Path:
    inbox = tmp / "inbox"
    inbox.mkdir()
    shutil.copy(OFFER, inbox / OFFER.name)
    (tmp / "crm.sqlite3").write_bytes(os.urandom(8192))  # not a database
    return write_config(tmp, f'[source.maildir]\npath = "{inbox}"\n')


@pytest.mark.parametrize("command", [["run", "--once"], ["replay", str(OFFER)]])
def test_damaged_crm_file_is_named_as_the_crm_file(
    tmp_path: Path, command: list[str]
) -> None:
    cfg = damaged_setup(tmp_path)
    done = run_mailsync(*command, "--config", str(cfg))
    assert done.returncode == 1, done.stderr
    [line] = [x for x in done.stderr.splitlines() if x.startswith("mailsync:")]
    assert f"CRM file {tmp_path / 'crm.sqlite3'} ([crm.sqlite] path)" in line
    assert "file is not a database" in line and "restore it from a backup" in line
    assert "state store" not in line
    assert "Traceback" not in done.stderr
    with sqlite3.connect(tmp_path / "state.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (1,)
