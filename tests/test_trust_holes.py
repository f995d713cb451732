"""Forgeries built from one genuine signed mail, against the real components.

Every mail here carries a real DKIM signature made with a test key; the key
is published by a DNS server on loopback (tests/dnsserver.py) that mailsync
reaches through `[security] dns_servers`, and messages go through the
Maildir source, a real Dovecot (IMAP) or `mailsync replay`, with the parse
worker process of the daemon. Each attack was synced as `verified` before
the reading rules of `mailsync.security.reading` and the signature rules of
`mailsync.security.dkim_check`; a genuine control must still sync.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dkim
import pytest
from dnsserver import DnsServer
from test_dkim import Keys

from mailsync import config
from mailsync.cli import main
from mailsync.crm.outbox import Outbox
from mailsync.event import Event, Trust
from mailsync.ledger import Ledger
from mailsync.pipeline import Pipeline
from mailsync.sources.imap import ImapSource
from mailsync.sources.maildir import MaildirSource
from mailsync.statedb import open_db

SIGNED = [
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
]
OFFER_BODY = (
    b"Customer accepted an AWS Marketplace offer\r\n\r\n"
    b"Offer ID: offer-abcdefghijklm\r\n"
    b"Agreement ID: agmt-abcdefghijklmnopqrstuvwxy\r\n"
    b"Customer AWS account ID: 123456789012\r\n"
)
NEWS_BODY = b"The AWS Marketplace newsletter: what is new this month.\r\n"
#: an unsigned field holding a whole header block and a multipart body: the
#: genuine message below ends up in the epilogue of the forged multipart
SMUGGLED = (
    b"X-Trace: a\rFrom: AWS Marketplace <no-reply@marketplace.aws>\r"
    b"Subject: Customer accepted an AWS Marketplace offer\r"
    b'MIME-Version: 1.0\rContent-Type: multipart/mixed; boundary="b"\r\r'
    b"--b\rContent-Type: text/plain\r\r"
    b"Offer ID: offer-forgedforgedf\r"
    b"Agreement ID: agmt-forgedforgedforgedforge\r"
    b"Customer AWS account ID: 999999999999\r--b--\r\n"
)
FORGED_FIELDS = (
    b"Offer ID: offer-forgedforgedf\r"
    b"Agreement ID: agmt-forgedforgedforgedforge\r"
    b"Customer AWS account ID: 999999999999\r"
)


def mail(
    subject: bytes = b"Customer accepted an AWS Marketplace offer",
    body: bytes = OFFER_BODY,
    *,
    date: bytes = b"Sat, 01 Mar 2025 12:00:00 +0000",
    message_id: bytes = b"<m1@marketplace.aws>",
    to: bytes = b"seller@example.com",
) -> bytes:
    return (
        b"From: AWS Marketplace <no-reply@marketplace.aws>\r\n"
        b"To: " + to + b"\r\n"
        b"Subject: " + subject + b"\r\n"
        b"Date: " + date + b"\r\n"
        b"Message-ID: " + message_id + b"\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
    )


def newsletter() -> bytes:
    return mail(
        b"AWS Marketplace newsletter", NEWS_BODY, message_id=b"<n1@marketplace.aws>"
    )


def sign(
    keys: Keys,
    raw: bytes,
    *,
    headers: Sequence[bytes] = SIGNED,
    canon: tuple[bytes, bytes] = (b"relaxed", b"simple"),
    selector: bytes = b"sel1",
    length: bool = False,
) -> bytes:
    header: bytes = dkim.sign(
        raw,
        selector,
        b"marketplace.aws",
        keys.private_pem,
        include_headers=list(headers),
        canonicalize=canon,
        length=length,
    )
    return header + raw


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture
def dns(keys: Keys) -> Iterator[DnsServer]:
    server = DnsServer({"*._domainkey.marketplace.aws.": keys.txt})
    yield server
    server.close()


def settings_for(tmp: Path, dns: DnsServer, **extra: Any) -> config.Settings:
    security = {"dns_servers": [dns.address], "dns_timeout": 2.0, **extra}
    return config.from_dict(
        {
            "state": {"path": str(tmp / "state.sqlite3")},
            "security": security,
            "source": {"maildir": {"path": str(tmp / "inbox")}},
        }
    )


class Run:
    """The Maildir source of one folder, run pass by pass."""

    def __init__(self, tmp: Path, dns: DnsServer, **security: Any) -> None:
        (tmp / "inbox").mkdir(exist_ok=True)
        self.folder = tmp / "inbox"
        settings = settings_for(tmp, dns, **security)
        conn = open_db(settings.state.path)
        self.ledger = Ledger(conn)
        self.outbox = Outbox(conn)
        self.source = MaildirSource(
            settings.maildir[0], Pipeline(settings, self.ledger)
        )

    def deliver(self, name: str, raw: bytes, mtime: float | None = None) -> None:
        path = self.folder / name
        path.write_bytes(raw)
        if mtime is not None:
            os.utime(path, (mtime, mtime))

    def sync(self) -> None:
        self.source.run_pass(self.outbox, threading.Event())

    def outcome(self, name: str) -> tuple[str, str | None]:
        return self.ledger.outcomes(self.source.name)[name]

    def events(self) -> list[Event]:
        return [event for _, event in self.outbox.pending()]


def test_genuine_signed_mail_syncs_verified(
    tmp_path: Path, keys: Keys, dns: DnsServer
) -> None:
    run = Run(tmp_path, dns)
    run.deliver("a.eml", sign(keys, mail()))
    run.deliver(
        "b.eml",
        sign(keys, mail(), canon=(b"simple", b"simple")).replace(b"\r\n", b"\n"),
    )
    run.sync()
    assert run.outcome("a.eml") == ("synced", None)
    assert run.outcome("b.eml")[0] == "synced"  # same Message-ID: a duplicate delivery
    (event,) = run.events()
    assert (event.trust, event.agreement_id) == (
        Trust.VERIFIED,
        "agmt-abcdefghijklmnopqrstuvwxy",
    )
    assert any(q.startswith("sel1._domainkey.marketplace.aws") for q in dns.queries)


# -- hole 1: a bare CR lets the MIME parser read another message -------------


@pytest.mark.parametrize("canon", [(b"relaxed", b"relaxed"), (b"simple", b"simple")])
def test_bare_cr_header_smuggling_is_rejected(
    tmp_path: Path, keys: Keys, dns: DnsServer, canon: tuple[bytes, bytes]
) -> None:
    genuine = sign(keys, newsletter(), canon=canon)
    run = Run(tmp_path, dns)
    run.deliver("forged.eml", SMUGGLED + genuine)
    run.deliver("genuine.eml", genuine)
    run.sync()
    outcome, reason = run.outcome("forged.eml")
    assert outcome == "rejected"
    assert reason is not None and reason.startswith("header block holds a bare CR")
    assert run.events() == []
    assert run.outcome("genuine.eml")[0] == "unrecognized"  # a newsletter


def test_bare_cr_smuggling_through_replay(
    tmp_path: Path, keys: Keys, dns: DnsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    genuine = sign(keys, newsletter())
    forged = SMUGGLED + genuine
    files = tmp_path / "saved"
    files.mkdir()
    (files / "1-forged.eml").write_bytes(forged)
    (files / "2-control.eml").write_bytes(sign(keys, mail()))
    cfg = tmp_path / "mailsync.toml"
    cfg.write_text(
        f'[state]\npath = "{tmp_path / "state.sqlite3"}"\n'
        f'[security]\ndns_servers = ["{dns.address}"]\ndns_timeout = 2.0\n'
        '[crm]\nbackend = "sqlite"\n'
        f'[crm.sqlite]\npath = "{tmp_path / "crm.sqlite3"}"\n'
    )
    assert main(["replay", str(files), "--config", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert "1-forged.eml: rejected: header block holds a bare CR" in err
    crm = sqlite3.connect(tmp_path / "crm.sqlite3")
    rows = crm.execute('SELECT "Agreement_ID__c" FROM "AWS_Agreement__c"').fetchall()
    crm.close()
    assert rows == [("agmt-abcdefghijklmnopqrstuvwxy",)]


# -- hole 2: only signed headers count -----------------------------------------


def test_prepended_unsigned_date_is_rejected(
    tmp_path: Path, keys: Keys, dns: DnsServer
) -> None:
    run = Run(tmp_path, dns)
    run.deliver(
        "a.eml", b"Date: Fri, 01 Jan 2100 00:00:00 +0000\r\n" + sign(keys, mail())
    )
    run.sync()
    assert run.outcome("a.eml") == (
        "rejected",
        "message has 2 Date headers (RFC 5322 allows one)",
    )
    assert run.events() == []


def test_prepended_message_id_is_rejected_and_never_a_list(
    tmp_path: Path, keys: Keys, dns: DnsServer
) -> None:
    run = Run(tmp_path, dns)
    run.deliver("a.eml", b"Message-ID: <x@evil.example>\r\n" + sign(keys, mail()))
    run.deliver(
        "b.eml", b"Message-ID: [<a@b>, 'c'] \x1b]0;t\x07\r\n" + sign(keys, mail())
    )
    run.sync()
    assert run.outcome("a.eml") == (
        "rejected",
        "message has 2 Message-ID headers (RFC 5322 allows one)",
    )
    assert run.outcome("b.eml")[0] == "rejected"
    ids = run.ledger.conn.execute("SELECT message_id FROM ledger").fetchall()
    for (value,) in ids:
        assert value is None or (
            "[" not in value and "'" not in value and "\x1b" not in value
        )


def test_unsigned_date_field_does_not_verify(
    tmp_path: Path, keys: Keys, dns: DnsServer
) -> None:
    unsigned_date = [h for h in SIGNED if h != b"date"]
    raw = sign(keys, mail(), headers=unsigned_date).replace(
        b"Sat, 01 Mar 2025 12:00:00 +0000", b"Fri, 01 Jan 2100 00:00:00 +0000"
    )
    run = Run(tmp_path, dns)
    run.deliver("a.eml", raw)
    run.sync()
    outcome, reason = run.outcome("a.eml")
    assert outcome == "rejected"
    assert reason == (
        "DKIM fails: signature does not sign Date (h= must cover them) "
        "(d=marketplace.aws, s=sel1)"
    )


def test_future_date_is_clamped_to_the_receive_time(
    tmp_path: Path, keys: Keys, dns: DnsServer
) -> None:
    # Genuinely signed, with a date after the file arrived: not later than it.
    arrived = datetime(2026, 3, 3, 14, 7, 12, tzinfo=UTC)
    run = Run(tmp_path, dns)
    run.deliver(
        "a.eml",
        sign(keys, mail(date=b"Fri, 01 Jan 2100 00:00:00 +0000")),
        arrived.timestamp(),
    )
    run.sync()
    (event,) = run.events()
    assert (event.trust, event.occurred_at) == (Trust.VERIFIED, arrived)


def test_recipient_binding(tmp_path: Path, keys: Keys, dns: DnsServer) -> None:
    run = Run(tmp_path, dns, expected_recipients=["seller@example.com"])
    run.deliver("other.eml", sign(keys, mail(to=b"someone@other-seller.example")))
    run.deliver("ours.eml", sign(keys, mail(message_id=b"<m2@marketplace.aws>")))
    run.sync()
    assert run.outcome("other.eml") == (
        "rejected",
        "recipient binding: the signed To/Cc names none of [security] "
        "expected_recipients (a notification sent to another account)",
    )
    assert run.outcome("ours.eml") == ("synced", None)


# -- hole 3: l= ------------------------------------------------------------


def test_body_length_tag_shorter_than_body_does_not_verify(
    tmp_path: Path, keys: Keys, dns: DnsServer
) -> None:
    run = Run(tmp_path, dns)
    # Appended after the signed length: a title line (the new-sender layout
    # repeats it atop the body) and the forged fields.
    appended = sign(keys, mail(b"AWS Marketplace update", NEWS_BODY), length=True)
    run.deliver(
        "a.eml",
        appended
        + b"Customer accepted an AWS Marketplace offer\r\n"
        + FORGED_FIELDS.replace(b"\r", b"\r\n"),
    )
    run.sync()
    outcome, reason = run.outcome("a.eml")
    assert outcome == "rejected"
    assert reason == (
        "DKIM fails: signature covers only the first 57 of 215 body bytes (l=) "
        "(d=marketplace.aws, s=sel1)"
    )
    assert run.events() == []


# -- hole 6: a Message-ID alone never copies an outcome ------------------------


def test_forged_mail_with_a_genuine_message_id_does_not_poison_it(
    tmp_path: Path, keys: Keys, dns: DnsServer
) -> None:
    run = Run(tmp_path, dns)
    run.deliver("1-forged.eml", mail())  # unsigned, the Message-ID of the genuine one
    run.sync()
    assert run.outcome("1-forged.eml") == ("rejected", "DKIM signature missing")
    run.deliver("2-genuine.eml", sign(keys, mail()))
    run.sync()
    assert run.outcome("2-genuine.eml") == ("synced", None)
    (event,) = run.events()
    assert event.trust is Trust.VERIFIED


def test_unverified_forgery_does_not_shadow_the_genuine_delivery(
    tmp_path: Path, keys: Keys, dns: DnsServer
) -> None:
    # require_dkim = false: the forgery is admitted as unverified; the genuine
    # mail with the same Message-ID must still reach the outbox as verified.
    run = Run(tmp_path, dns, require_dkim=False)
    forged = mail(
        body=OFFER_BODY.replace(
            b"agmt-abcdefghijklmnopqrstuvwxy", b"agmt-forgedforgedforgedforge"
        )
    )
    run.deliver("1-forged.eml", forged)
    run.sync()
    run.deliver("2-genuine.eml", sign(keys, mail()))
    run.deliver("3-genuine-again.eml", sign(keys, mail()))
    run.deliver("4-forged-again.eml", forged)
    run.sync()
    assert [(e.trust, e.agreement_id) for e in run.events()] == [
        (Trust.UNVERIFIED, "agmt-forgedforgedforgedforge"),
        (Trust.VERIFIED, "agmt-abcdefghijklmnopqrstuvwxy"),
    ]


# -- hole 7: thousands of signatures ------------------------------------------


def test_thousands_of_signatures_cost_at_most_five_lookups(
    tmp_path: Path, keys: Keys, dns: DnsServer
) -> None:
    raw = mail()
    fake = b"".join(
        b"DKIM-Signature: v=1; a=rsa-sha256; d=marketplace.aws; s=s%d; "
        b"h=from:subject:date:message-id:content-type; bh=AAAA; b=AAAA\r\n" % n
        for n in range(4000)
    )
    run = Run(tmp_path, dns)
    run.deliver("a.eml", fake + raw)
    run.sync()
    outcome, reason = run.outcome("a.eml")
    assert outcome == "rejected"
    assert reason is not None and reason.startswith("DKIM fails: ")
    assert len(dns.queries) <= 5


# -- IMAP: Dovecot ---------------------------------------------------------


def test_imap_forgeries_rejected_and_genuine_synced(
    tmp_path: Path,
    keys: Keys,
    dns: DnsServer,
    imap_user: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    genuine = sign(keys, mail())
    future = sign(
        keys,
        mail(
            date=b"Fri, 01 Jan 2100 00:00:00 +0000", message_id=b"<m3@marketplace.aws>"
        ),
    )
    imap_user.append(
        [
            b"Date: Fri, 01 Jan 2100 00:00:00 +0000\r\n" + genuine,
            b"Message-ID: <m1@marketplace.aws>\r\n"
            + sign(keys, mail(message_id=b"<m9@marketplace.aws>")),
            genuine,
            future,
        ]
    )
    monkeypatch.setenv("MAILSYNC_TEST_IMAP_PASSWORD", imap_user.password)
    settings = config.from_dict(
        {
            "state": {"path": str(tmp_path / "state.sqlite3")},
            "security": {"dns_servers": [dns.address], "dns_timeout": 2.0},
            "source": {
                "imap": {
                    "host": "127.0.0.1",
                    "port": imap_user.server.port,
                    "tls": "none",
                    "username": imap_user.user,
                    "password_env": "MAILSYNC_TEST_IMAP_PASSWORD",
                }
            },
        }
    )
    conn = open_db(settings.state.path)
    ledger = Ledger(conn)
    source = ImapSource(settings.imap[0], Pipeline(settings, ledger))
    outbox = Outbox(conn)
    before = datetime.now(UTC).replace(microsecond=0)
    source.run_pass(outbox, threading.Event())
    outcomes = ledger.outcomes(source.name)
    by_uid = {int(k.rpartition(":")[2]): v for k, v in outcomes.items()}
    assert by_uid[1] == ("rejected", "message has 2 Date headers (RFC 5322 allows one)")
    assert by_uid[2] == (
        "rejected",
        "message has 2 Message-ID headers (RFC 5322 allows one)",
    )
    assert by_uid[3] == ("synced", None)
    assert by_uid[4] == ("synced", None)
    events = sorted((e for _, e in outbox.pending()), key=lambda e: e.source_id or "")
    assert [(e.source_id, e.trust) for e in events] == [
        ("m1@marketplace.aws", Trust.VERIFIED),
        ("m3@marketplace.aws", Trust.VERIFIED),
    ]
    # INTERNALDATE (the append) bounds the date of the future-dated one.
    late = events[1].occurred_at
    # (the append came a moment before `before`: allow the test's own run time)
    assert late is not None
    assert before - timedelta(minutes=2) <= late <= datetime.now(UTC)


# -- parse and quarantine retry read the same way -----------------------------


def test_parse_refuses_the_smuggled_reading(
    tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "forged.eml"
    path.write_bytes(SMUGGLED + sign(keys, newsletter()))
    assert main(["parse", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["kind"], out["trust"]) == ("offer.accepted", "rejected")
    assert str(out["reason"]).startswith("header block holds a bare CR")


def test_quarantine_retry_keeps_the_smuggled_mail_rejected(
    tmp_path: Path, keys: Keys, dns: DnsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "forged.eml").write_bytes(SMUGGLED + sign(keys, newsletter()))
    cfg = tmp_path / "mailsync.toml"
    cfg.write_text(
        f'[state]\npath = "{tmp_path / "state.sqlite3"}"\n'
        f'[security]\ndns_servers = ["{dns.address}"]\ndns_timeout = 2.0\n'
        f'[source.maildir]\npath = "{inbox}"\n'
        '[crm]\nbackend = "sqlite"\n'
        f'[crm.sqlite]\npath = "{tmp_path / "crm.sqlite3"}"\n'
    )
    main(["run", "--once", "--config", str(cfg)])
    capsys.readouterr()
    main(["quarantine", "retry", "--all", "--config", str(cfg)])
    line = capsys.readouterr().out.splitlines()[0]
    assert "forged.eml: rejected -> rejected" in line
    assert "header block holds a bare CR" in line
    assert not (tmp_path / "crm.sqlite3").exists() or _agreements(tmp_path) == []


def _agreements(tmp: Path) -> list[tuple[object, ...]]:
    crm = sqlite3.connect(tmp / "crm.sqlite3")
    try:
        return crm.execute(
            'SELECT "Agreement_ID__c" FROM "AWS_Agreement__c"'
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        crm.close()
