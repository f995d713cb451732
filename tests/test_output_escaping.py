"""Output is not a terminal: strangers' control characters reach no terminal,
log line or spreadsheet raw (`mailsync.textsafe`, used by every command and
by the log formatters)."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from pathlib import Path

import pytest
from conftest import run_mailsync, write_config

from mailsync.cli import main
from mailsync.crm.sqlite_store import SqliteStore
from mailsync.log import JsonFormatter, TextFormatter, kv
from mailsync.textsafe import clean, csv_cell, dumps, escape

NEWSLETTER = Path(__file__).parent / "fixtures/negative/aws_marketplace_newsletter.eml"
#: "Hello \x1b]0;pwned\x07 \u202egnp.exe \x9b2J" as an RFC 2047 encoded word:
#: set the terminal title, flip the text direction, clear the screen (C1 CSI).
HOSTILE_SUBJECT = b"=?utf-8?b?SGVsbG8gG10wO3B3bmVkByDigK5nbnAuZXhlIMKbMko=?="
SUBJECT_SHOWN = r"Hello \x1b]0;pwned\x07 \u202egnp.exe \x9b2J"
#: Anything a terminal would act on: C0 but newline, DEL, C1, bidi controls.
RAW_CONTROL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


def test_escape_clean_csv_and_json_values() -> None:
    assert escape("a\x1b[2Jb\x9b\x07\u202e\x7f") == r"a\x1b[2Jb\x9b\x07\u202e\x7f"
    assert escape("line\n\tnext\r") == r"line\x0a\x09next\x0d"
    assert escape("line\n\tnext\r", layout=True) == "line\n\tnext\\x0d"
    assert escape("Zürich – 東京") == "Zürich – 東京"  # letters are not controls
    assert clean("Acme\x1b]0;x\x07 Corp\r\nLtd\u202e\x00") == "Acme]0;x Corp  Ltd"
    assert [
        csv_cell(v)
        for v in ('=HYPERLINK("x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx")
    ] == ['\'=HYPERLINK("x")', "'+1+1", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx"]
    assert [csv_cell(v) for v in ("-12.50", "+3", "-1e5", "Acme", "")] == [
        "-12.50",
        "+3",
        "-1e5",
        "Acme",
        "",
    ]
    text = dumps({"n": "Zürich\x1b\x9b\u202e"})
    assert text == '{"n": "Zürich\\u001b\\u009b\\u202e"}'
    assert json.loads(text) == {"n": "Zürich\x1b\x9b\u202e"}


def test_text_and_json_logs_escape_controls() -> None:
    record = logging.LogRecord(
        "mailsync.x", logging.INFO, __file__, 1, "subject %s", ("\x1b]0;t\x07",), None
    )
    record.__dict__.update(kv(key="a\x1b[2J.eml", name='Acme "Q"\\', plain="x"))
    line = TextFormatter().format(record)
    assert line == (
        r'INFO subject \x1b]0;t\x07 key="a\x1b[2J.eml" name="Acme \"Q\"\\" plain=x'
    )
    out = JsonFormatter().format(record)
    assert RAW_CONTROL.search(out) is None and "\\u001b]0;t\\u0007" in out
    assert json.loads(out)["key"] == "a\x1b[2J.eml"


def test_quarantine_list_status_and_log_show_hostile_subject_escaped(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    raw = NEWSLETTER.read_bytes().replace(
        b"Subject: AWS Marketplace seller newsletter: what's new in November 2026",
        b"Subject: " + HOSTILE_SUBJECT,
    )
    (inbox / "evil\x1b[2J.eml").write_bytes(raw)
    cfg = str(write_config(tmp_path, f'[source.maildir]\npath = "{inbox}"\n'))

    done = run_mailsync("run", "--once", "--config", cfg)
    assert done.returncode == 0, done.stderr
    assert RAW_CONTROL.search(done.stderr) is None
    assert 'key="evil\\x1b[2J.eml"' in done.stderr

    listing = run_mailsync("quarantine", "list", "--config", cfg)
    assert listing.returncode == 0 and RAW_CONTROL.search(listing.stdout) is None
    row = listing.stdout.splitlines()[2]
    assert r"  evil\x1b[2J.eml  " in row
    assert row.endswith(f"  no parser matches subject '{SUBJECT_SHOWN}'")
    assert f"  unrecognized  {SUBJECT_SHOWN}  " in row  # the WHAT column

    as_json = run_mailsync("quarantine", "list", "--format", "json", "--config", cfg)
    assert RAW_CONTROL.search(as_json.stdout) is None
    (entry,) = json.loads(as_json.stdout)["quarantine"]
    # the data is kept exactly; only its display is escaped
    assert entry["subject"] == "Hello \x1b]0;pwned\x07 \u202egnp.exe \x9b2J"
    assert entry["key"] == "evil\x1b[2J.eml"

    status = run_mailsync("status", "--config", cfg)
    assert status.returncode == 0 and RAW_CONTROL.search(status.stdout) is None

    parsed = run_mailsync("parse", str(next(inbox.iterdir())))
    assert RAW_CONTROL.search(parsed.stdout) is None
    reason = json.loads(parsed.stdout)["reason"]
    assert reason == f"no parser matches subject '{SUBJECT_SHOWN}'"


@pytest.fixture
def hostile_crm(tmp_path: Path) -> Path:
    """A CRM holding values somebody else wrote (a human, another tool)."""
    cfg = write_config(tmp_path)
    store = SqliteStore(tmp_path / "crm.sqlite3")
    store.upsert(
        "Account",
        "AWS_Account_ID__c",
        [
            {"AWS_Account_ID__c": "111122223333", "Name": "Evil\x1b]0;pwned\x07 Inc"},
            {"AWS_Account_ID__c": "222233334444", "Name": '=HYPERLINK("http://x")'},
            {"AWS_Account_ID__c": "333344445555", "Name": "-5"},
        ],
    )
    store.close()
    return cfg


def test_records_table_and_csv_are_escaped_and_formula_safe(
    hostile_crm: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["records", "Account", "--config", str(hostile_crm)]) == 0
    table = capsys.readouterr().out
    assert RAW_CONTROL.search(table) is None
    assert [line.split("  ")[-1].strip() for line in table.splitlines()[3:]] == [
        r"Evil\x1b]0;pwned\x07 Inc",
        '=HYPERLINK("http://x")',
        "-5",
    ]
    args = ["records", "Account", "--format", "csv", "--config", str(hostile_crm)]
    assert main(args) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["Name"] for r in rows] == [
        r"Evil\x1b]0;pwned\x07 Inc",
        '\'=HYPERLINK("http://x")',
        "-5",
    ]


def test_replay_report_lines_escape_hostile_file_names_and_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A file dropped for the admin to replay names itself and, through its
    # content, the reason it is refused: neither reaches the terminal raw.
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a\x1b]0;pwned\x07.json").write_text('{"x": 1}')
    hostile_topic = "arn:aws:sns:us-east-1:1:t\x1b[2J\u202e"
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "m1",
        "TopicArn": hostile_topic,
        "Message": "You have chosen to subscribe",
        "Timestamp": "2026-01-01T00:00:00Z",
    }
    (drop / "b.json").write_text(json.dumps(confirmation))
    cfg = write_config(tmp_path)
    assert main(["replay", "--config", str(cfg), str(drop)]) == 0
    err = capsys.readouterr().err
    assert RAW_CONTROL.search(err) is None
    assert r"a\x1b]0;pwned\x07.json: unrecognized" in err
    assert r"t\x1b[2J\u202e" in err
