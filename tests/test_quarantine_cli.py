"""`mailsync quarantine list|retry`: every rejection visible with its reason,
retried through the current parsers, trust checks and outbox, never lost or
synced twice; CRM dead letters listed and re-sent."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import dkim
import pytest
from conftest import ImapUser, run_mailsync, write_config
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailsync import ledger as L
from mailsync.cli import main
from mailsync.crm.sqlite_store import SqliteStore
from mailsync.ledger import Ledger
from mailsync.pipeline import sha256_hex
from mailsync.sources.imap import QUARANTINE_KEYWORD
from mailsync.statedb import open_db

FIXTURES = Path(__file__).parent / "fixtures"
OFFER = FIXTURES / "email/offer.accepted/isv_public_plain_no_end_date.eml"
OFFER_AGMT = "agmt-uyxkpascmi91rjakjdggd6e66"
OFFER_MSGID = "0100019eutyisjssz51i0ylrvzm-jynhfvnt@email.amazonses.com"
NEWSLETTER = FIXTURES / "negative/aws_marketplace_newsletter.eml"
NEWSLETTER_REASON = (
    'no parser matches subject "AWS Marketplace seller newsletter:'
    " what's new in November 2026\""
)
EVENTBRIDGE = FIXTURES / "eventbridge/created_manufacturer_cppo.json"
EB_AGMT = "agmt-attn8y2duus1ix2xlf0vhx97n"


def maildir_config(tmp: Path, *, require_dkim: bool) -> Path:
    table = f'[source.maildir]\npath = "{tmp / "inbox"}"\n'
    return write_config(tmp, table, require_dkim=require_dkim)


def ok(*args: str) -> str:
    """Run the CLI; assert exit 0; return stdout."""
    done = run_mailsync(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def listing(cfg: Path) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = json.loads(
        ok("quarantine", "list", "--format", "json", "--config", str(cfg))
    )
    return out


def records(cfg: Path, obj: str) -> list[dict[str, object]]:
    rows = json.loads(ok("records", obj, "--format", "json", "--config", str(cfg)))
    return [r for r in rows if r["object"] == obj]


def outbox_rows(tmp: Path) -> int:
    with sqlite3.connect(tmp / "state.sqlite3") as conn:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


def test_list_empty(tmp_path: Path) -> None:
    cfg = maildir_config(tmp_path, require_dkim=False)
    assert ok("quarantine", "list", "--config", str(cfg)) == "quarantine is empty\n"
    assert listing(cfg) == {"quarantine": [], "dead_letters": []}


def test_rejected_then_allowed_unrecognized_stays(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.eml").write_bytes(OFFER.read_bytes())
    (inbox / "b.eml").write_bytes(NEWSLETTER.read_bytes())
    cfg = maildir_config(tmp_path, require_dkim=True)
    first = run_mailsync("run", "--once", "--config", str(cfg))
    assert first.returncode == 0, first.stderr
    assert "unrecognized 1, rejected 1" in first.stderr

    # list: both entries with IDs, outcome, subject and the full reason
    table = ok("quarantine", "list", "--config", str(cfg)).splitlines()
    assert table[0] == "quarantine: 2 entries"
    assert table[1].split()[:8] == [
        *("ID", "WHEN", "SOURCE", "KEY", "INPUT", "OUTCOME", "WHAT", "REASON")
    ]
    row_a = next(line for line in table if " a.eml " in line)
    assert row_a.split()[3:6] == ["a.eml", "email", "rejected"]
    assert "Customer accepted an AWS Marketplace offer." in row_a
    assert row_a.endswith("DKIM signature missing")
    row_b = next(line for line in table if " b.eml " in line)
    assert row_b.endswith(NEWSLETTER_REASON)
    entries = {e["key"]: e for e in listing(cfg)["quarantine"]}
    a, b = entries["a.eml"], entries["b.eml"]
    assert (a["outcome"], a["reason"], a["message_id"]) == (
        "rejected",
        "DKIM signature missing",
        OFFER_MSGID,
    )
    assert (b["outcome"], b["reason"], b["input_kind"]) == (
        "unrecognized",
        NEWSLETTER_REASON,
        "email",
    )
    assert row_a.split()[0] == str(a["id"]) and row_b.split()[0] == str(b["id"])

    # same config: still rejected, nothing reaches the CRM
    out = ok("quarantine", "retry", str(a["id"]), "--config", str(cfg))
    assert out.splitlines()[0] == (
        f"{a['id']}: maildir:{tmp_path / 'inbox'} a.eml: rejected -> rejected:"
        " DKIM signature missing"
    )
    assert records(cfg, "AWS_Agreement__c") == []

    # an administrator turns require_dkim off: --all syncs a, b stays
    cfg = maildir_config(tmp_path, require_dkim=False)
    out = ok("quarantine", "retry", "--all", "--config", str(cfg)).splitlines()
    assert out[0].endswith("a.eml: rejected -> synced")
    assert out[1].endswith(f"b.eml: unrecognized -> unrecognized: {NEWSLETTER_REASON}")
    assert out[2] == "retried 2: synced 1, still unrecognized 1"
    assert out[3].startswith("CRM: ") and "0 events pending" in out[3]
    agreements = records(cfg, "AWS_Agreement__c")
    assert [
        (r["Agreement_ID__c"], r["Customer_AWS_Account_ID__c"]) for r in agreements
    ] == [(OFFER_AGMT, "045711836474")]
    assert [e["key"] for e in listing(cfg)["quarantine"]] == ["b.eml"]
    conn = open_db(tmp_path / "state.sqlite3")
    outcomes = Ledger(conn).outcomes(f"maildir:{inbox}")
    conn.close()
    assert outcomes == {
        "a.eml": ("synced", None),
        "b.eml": ("unrecognized", NEWSLETTER_REASON),
    }
    assert outbox_rows(tmp_path) == 1

    # the daemon never takes it up again, even under another name
    again = run_mailsync("run", "--once", "--config", str(cfg))
    assert "fetched 0, synced 0" in again.stderr
    (inbox / "a.eml").rename(inbox / "a-renamed.eml")
    renamed = run_mailsync("run", "--once", "--config", str(cfg))
    assert "synced 0 (1 duplicates)" in renamed.stderr, renamed.stderr
    assert outbox_rows(tmp_path) == 1
    assert [e["key"] for e in listing(cfg)["quarantine"]] == ["b.eml"]

    # a released entry is reported as such
    out = ok("quarantine", "retry", str(a["id"]), "--config", str(cfg))
    assert out.startswith(f"{a['id']}: already released at ")

    # a crash between the ledger update and the release leaves the entry open:
    # retrying it again is a duplicate delivery the outbox drops
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        db.execute(
            "UPDATE quarantine SET released_at = NULL, outcome = 'rejected'"
            " WHERE id = ?",
            (a["id"],),
        )
    out = ok("quarantine", "retry", str(a["id"]), "--config", str(cfg))
    assert out.splitlines()[0].endswith(
        "rejected -> synced (duplicate delivery, already in the outbox)"
    )
    assert outbox_rows(tmp_path) == 1
    assert len(records(cfg, "AWS_Marketplace_Event__c")) == 1


def test_retry_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(maildir_config(tmp_path, require_dkim=False))
    cases = {
        ("42",): "no quarantine entry 42; see `mailsync quarantine list`",
        (): "give a quarantine ID (see `mailsync quarantine list`), --all,"
        " or --dead-letters",
        ("1", "--all"): "give either a quarantine ID or --all, not both",
        ("x1",): "quarantine ID 'x1' is not a number",
    }
    for extra, message in cases.items():
        assert main(["quarantine", "retry", *extra, "--config", cfg]) == 2
        assert capsys.readouterr().err.startswith(f"mailsync: {message}")
    assert main(["quarantine", "retry", "--all", "--config", cfg]) == 0
    assert capsys.readouterr().out == "quarantine is empty\n"


def test_dead_letter_listed_then_retried(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.eml").write_bytes(OFFER.read_bytes())
    cfg = maildir_config(tmp_path, require_dkim=False)
    SqliteStore(tmp_path / "crm.sqlite3").close()  # the CRM's tables
    crm = sqlite3.connect(tmp_path / "crm.sqlite3", isolation_level=None)
    # a validation rule, the SQLite counterpart of a Salesforce one
    crm.execute(
        'CREATE TRIGGER hold BEFORE INSERT ON "AWS_Agreement__c" BEGIN SELECT '
        "RAISE(ABORT, 'FIELD_CUSTOM_VALIDATION_EXCEPTION: agreements need "
        "approval'); END"
    )
    # A record the CRM refused needs an admin: run --once exits 1 and its
    # summary counts it.
    once = run_mailsync("run", "--once", "--config", str(cfg))
    assert once.returncode == 1, once.stderr
    assert "CRM written 1, refused 1, pending 0" in once.stderr

    lines = ok("quarantine", "list", "--config", str(cfg)).splitlines()
    assert lines[:3] == [
        "quarantine is empty",
        "",
        "CRM dead letters: 1 record refused by the CRM",
    ]
    assert lines[4].split()[:3] == [
        "AWS_Agreement__c",
        OFFER_AGMT,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    ]
    assert lines[4].endswith("agreements need approval")
    (dead,) = listing(cfg)["dead_letters"]
    assert (dead["object"], dead["external_id"], dead["message"]) == (
        "AWS_Agreement__c",
        OFFER_AGMT,
        "agreements need approval",
    )

    status = ok("status", "--config", str(cfg)).splitlines()
    at = status.index("  dead_letters: 1")
    assert status[at + 1].startswith(
        f"    - AWS_Agreement__c {OFFER_AGMT}: FIELD_CUSTOM_VALIDATION_EXCEPTION: "
        "agreements need approval (since "
    )

    again = run_mailsync("quarantine", "retry", "--dead-letters", "--config", str(cfg))
    assert again.returncode == 1, again.stderr  # refused again
    assert "CRM: 0 records written, 0 events pending, 1 refused" in again.stdout
    assert "CRM dead letters: 1 re-sent, 0 written, 1 refused again" in again.stdout
    assert records(cfg, "AWS_Agreement__c") == []

    crm.execute("DROP TRIGGER hold")
    crm.close()
    out = ok("quarantine", "retry", "--dead-letters", "--config", str(cfg))
    assert out.splitlines()[-1] == (
        "CRM dead letters: 1 re-sent, 1 written, 0 refused again"
    )
    assert [r["Agreement_ID__c"] for r in records(cfg, "AWS_Agreement__c")] == [
        OFFER_AGMT
    ]
    assert listing(cfg)["dead_letters"] == []
    out = ok("quarantine", "retry", "--dead-letters", "--config", str(cfg))
    assert out == "CRM dead letters: none to retry\n"


def sqs_config(tmp: Path, accounts: str | None) -> Path:
    if accounts is None:
        return write_config(tmp)
    table = (
        '[source.sqs]\nqueue_url = "http://127.0.0.1:9/000000000000/q"\n'
        f"eventbridge_accounts = {accounts}\n"
    )
    return write_config(tmp, table)


def test_sqs_body_retried_with_the_sqs_trust_checks(tmp_path: Path) -> None:
    body = EVENTBRIDGE.read_bytes()
    conn = open_db(tmp_path / "state.sqlite3")
    # as the SQS source records a body refused by [source.sqs] eventbridge_accounts
    Ledger(conn).record(
        "sqs:q",
        "sqs-msg-1",
        "sqs-msg-1",
        sha256_hex(body),
        L.REJECTED,
        "EventBridge account '908442056351' is not in [source.sqs]"
        " eventbridge_accounts",
        raw=body,
        input_kind="json",
    )
    conn.close()

    cfg = sqs_config(tmp_path, None)
    (entry,) = listing(cfg)["quarantine"]
    assert entry["label"] == (
        "SQS sqs-msg-1, EventBridge 0b8e2d62-f7ff-4b27-a38d-a79660990d0e"
    )
    out = ok("quarantine", "retry", "--all", "--config", str(cfg)).splitlines()
    assert "rejected, not retried: [source.sqs] is not configured" in out[0]

    cfg = sqs_config(tmp_path, '["111111111111"]')
    out = ok("quarantine", "retry", str(entry["id"]), "--config", str(cfg))
    assert out.splitlines()[0].endswith(
        "rejected -> rejected: EventBridge account '908442056351' is not in"
        " [source.sqs] eventbridge_accounts"
    )
    assert records(cfg, "AWS_Agreement__c") == []

    cfg = sqs_config(tmp_path, '["908442056351"]')
    out = ok("quarantine", "retry", str(entry["id"]), "--config", str(cfg))
    assert out.splitlines()[0] == f"{entry['id']}: sqs:q sqs-msg-1: rejected -> synced"
    assert [r["Agreement_ID__c"] for r in records(cfg, "AWS_Agreement__c")] == [EB_AGMT]
    assert listing(cfg)["quarantine"] == []
    conn = open_db(tmp_path / "state.sqlite3")
    assert Ledger(conn).finished("sqs:q", "sqs-msg-1") == "synced"
    conn.close()


def test_imap_quarantine_folder_left_alone_and_never_resynced(
    tmp_path: Path, imap_user: ImapUser
) -> None:
    imap_user.append([OFFER.read_bytes()])
    table = imap_user.imap_table(quarantine_folder="Quarantine")
    cfg = write_config(tmp_path, table, require_dkim=True)
    first = run_mailsync("run", "--once", "--config", str(cfg))
    assert "rejected 1" in first.stderr, first.stderr
    assert (imap_user.count("INBOX"), imap_user.count("Quarantine")) == (0, 1)
    (entry,) = listing(cfg)["quarantine"]
    assert str(entry["source"]).startswith("imap:")
    with imap_user.client() as c:
        validity = c.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    # keyed by the UID in INBOX, where the daemon found it
    assert (entry["key"], entry["reason"]) == (
        f"{validity}:1",
        "DKIM signature missing",
    )

    cfg = write_config(tmp_path, table, require_dkim=False)
    out = ok("quarantine", "retry", str(entry["id"]), "--config", str(cfg))
    assert out.splitlines()[0].endswith("rejected -> synced")
    # the CLI never touches the mailbox: the message stays where it was put
    assert (imap_user.count("INBOX"), imap_user.count("Quarantine")) == (0, 1)
    again = run_mailsync("run", "--once", "--config", str(cfg))
    assert "fetched 0, synced 0" in again.stderr, again.stderr
    assert [r["Agreement_ID__c"] for r in records(cfg, "AWS_Agreement__c")] == [
        OFFER_AGMT
    ]
    assert outbox_rows(tmp_path) == 1


def test_imap_keyword_quarantine_rescan_after_retry_no_duplicate(
    tmp_path: Path, imap_user: ImapUser
) -> None:
    imap_user.append([OFFER.read_bytes()], folder="Sales")
    table = imap_user.imap_table(folder="Sales")
    cfg = write_config(tmp_path, table, require_dkim=True)
    assert "rejected 1" in run_mailsync("run", "--once", "--config", str(cfg)).stderr
    (flags,) = imap_user.flags("Sales").values()
    assert QUARANTINE_KEYWORD.encode() in flags
    (entry,) = listing(cfg)["quarantine"]
    assert entry["outcome"] == "rejected"

    cfg = write_config(tmp_path, table, require_dkim=False)
    out = ok("quarantine", "retry", "--all", "--config", str(cfg))
    assert out.splitlines()[0] == (
        f"{entry['id']}: {entry['source']} {entry['key']}: rejected -> synced"
    )
    with imap_user.client() as c:  # recreate the folder: a new UIDVALIDITY
        c.delete_folder("Sales")
    imap_user.append([OFFER.read_bytes()], folder="Sales")
    rescan = run_mailsync("run", "--once", "--config", str(cfg))
    # the rescan finds the message synced by its hash: no second submit, and
    # it is not quarantined again
    assert "fetched 1, synced 0 (1 duplicates), unrecognized 0, rejected 0" in (
        rescan.stderr
    ), rescan.stderr
    assert listing(cfg)["quarantine"] == []
    assert outbox_rows(tmp_path) == 1
    assert len(records(cfg, "AWS_Marketplace_Event__c")) == 1


def test_crm_unavailable_after_retry_keeps_the_event(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.eml").write_bytes(OFFER.read_bytes())
    cfg = maildir_config(tmp_path, require_dkim=True)
    assert run_mailsync("run", "--once", "--config", str(cfg)).returncode == 0
    (entry,) = listing(cfg)["quarantine"]
    good = maildir_config(tmp_path, require_dkim=False).read_text()
    (tmp_path / "blocker").write_text("a file where the CRM folder should be")
    broken = tmp_path / "broken.toml"
    broken.write_text(
        good.replace(str(tmp_path / "crm.sqlite3"), str(tmp_path / "blocker/crm"))
    )
    done = run_mailsync(
        "quarantine", "retry", str(entry["id"]), "--config", str(broken)
    )
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].endswith("rejected -> synced")
    assert "[crm.sqlite] path" in done.stderr and "Traceback" not in done.stderr
    # durable in the outbox and released: the next flush writes it
    assert listing(cfg)["quarantine"] == []
    assert run_mailsync("run", "--once", "--config", str(cfg)).returncode == 0
    assert [r["Agreement_ID__c"] for r in records(cfg, "AWS_Agreement__c")] == [
        OFFER_AGMT
    ]


def _dns_port_free() -> bool:
    """Nothing answers DNS on 127.0.0.1:53 (so a look-up there times out)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 53))
    except PermissionError:
        return True  # not root: assume no local resolver
    except OSError:
        return False
    finally:
        sock.close()
    return True


def signed_offer() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    msg = OFFER.read_bytes()
    header: bytes = dkim.sign(
        msg,
        b"sel1",
        b"marketplace.aws",
        pem,
        include_headers=[
            b"from",
            b"subject",
            b"date",
            b"message-id",
            b"mime-version",
            b"content-type",
        ],
    )
    return header + msg


@pytest.mark.skipif(not _dns_port_free(), reason="a DNS server runs on 127.0.0.1")
def test_dns_down_during_retry_leaves_the_entry_unchanged(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.eml").write_bytes(signed_offer())
    table = f'[source.maildir]\npath = "{inbox}"\n'
    policy = 'allowed_sender_domains = ["example.com"]\n'
    cfg = write_config(tmp_path, table, require_dkim=True)
    cfg.write_text(cfg.read_text().replace("[security]\n", "[security]\n" + policy))
    assert "rejected 1" in run_mailsync("run", "--once", "--config", str(cfg)).stderr
    (entry,) = listing(cfg)["quarantine"]
    assert str(entry["reason"]).startswith("sender marketplace.aws is not an allowed")

    # the sender is allowed now, but the DKIM key cannot be looked up
    no_dns = 'dns_servers = ["127.0.0.1"]\ndns_timeout = 0.5\n'
    cfg.write_text(cfg.read_text().replace(policy, no_dns))
    done = run_mailsync("quarantine", "retry", "--all", "--config", str(cfg))
    assert done.returncode == 1, done.stderr
    line = done.stdout.splitlines()[0]
    assert "a.eml: rejected -> rejected, unchanged: DKIM key look-up for" in line
    assert line.endswith("left in quarantine, retry later")
    assert "temporary failure, unchanged 1" in done.stdout
    assert listing(cfg)["quarantine"] == [entry]
    assert records(cfg, "AWS_Agreement__c") == []
