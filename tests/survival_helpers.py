"""Real moving parts for the survival tests (crash, outages, disk).

- `seller_emails(n)`: `n` distinct seller emails (distinct Message-IDs and
  agreement IDs) made from the real fixtures under ``tests/fixtures/email``,
  with the CRM records each one must produce.
- `TcpProxy`: a TCP forwarder on 127.0.0.1 that the test can take down (the
  port then refuses connections, like a stopped service) and bring back on the
  same port; it can also watch the bytes in both directions (to kill the
  daemon at a precise moment, e.g. while a FETCH response is streaming).
- `NotifyListener`: the `$NOTIFY_SOCKET` datagram socket systemd would bind;
  it collects every `READY=1` / `STATUS=...` the daemon sends.
- `survival_config` / `daemon_env` / `status_of`: config, environment and
  `mailsync status` for a daemon on IMAP (Dovecot) and/or SQS (moto) feeding
  the Salesforce emulator or the embedded SQLite CRM.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import ImapUser, mailsync_env, run_mailsync

from mailsync.config import SecuritySettings
from mailsync.event import Trust
from mailsync.parsers import email_view, parse_email
from mailsync.security.email_trust import check_email

FIXTURES = Path(__file__).parent / "fixtures" / "email"
#: business-event key suffix per email kind (contract section 4, merge rules)
EVENT_SUFFIX = {
    "offer.accepted": "created",
    "agreement.started": "started",
    "agreement.cancelled": "ended",
}


@dataclass(frozen=True)
class Seller:
    """One generated email and what it must become in the CRM."""

    raw: bytes
    kind: str
    message_id: str
    agreement_id: str
    account_id: str

    @property
    def event_key(self) -> str:
        return f"agreement:{self.agreement_id}:{EVENT_SUFFIX[self.kind]}"


def _templates() -> list[tuple[str, bytes, dict[str, Any]]]:
    """The fixtures of the kinds above that the daemon accepts as they are.

    A fixture is kept when it is not an inline forward (as the parsers'
    `email_view` reads it: forwarded mail is rejected by the default
    `[security] forwarded = "reject"`, whatever its file name), when its
    agreement ID, Message-ID and buyer account appear literally once in its
    bytes (so they can be replaced without re-encoding a base64 body), and
    when a copy with those values replaced still parses to its kind with the
    new values and passes the trust check the survival configs use
    (`require_dkim = false`)."""
    out = []
    for kind in EVENT_SUFFIX:
        for path in sorted((FIXTURES / kind).glob("*.eml")):
            raw = path.read_bytes()
            expected = json.loads(path.with_suffix(".expected.json").read_text())
            values = [expected[k] for k in ("agreement_id", "source_id")]
            values.append(expected["customer_account_id"])
            if not all(v and raw.count(v.encode()) == 1 for v in values):
                continue
            if email_view(raw).forwarded:
                continue
            probe = _render(raw, expected, _PROBE_AGREEMENT, _PROBE_MESSAGE_ID, 7)
            if _accepted(probe.raw, kind, probe):
                out.append((kind, raw, expected))
    return out


def _accepted(raw: bytes, kind: str, want: Seller) -> bool:
    event = parse_email(raw)
    if not event.recognized or str(event.kind) != kind:
        return False
    got = (event.agreement_id, event.source_id, event.customer_account_id)
    if got != (want.agreement_id, want.message_id, want.account_id):
        return False
    checked = check_email(raw, event, _SECURITY, dnsfunc=_no_dns)
    return checked.trust is not Trust.REJECTED


_PROBE_AGREEMENT = f"agmt-sv{0:08x}{0:015d}"  #: shaped like `seller_emails`
_PROBE_MESSAGE_ID = "survival-00000000-000000@email.amazonses.com"
#: the survival configs' `[security]` table (see `survival_config`)
_SECURITY = SecuritySettings(require_dkim=False)


def _no_dns(name: bytes, timeout: float = 5) -> bytes | None:
    return None  # no DKIM key published: nothing here may need the network


def _render(
    raw: bytes, expected: dict[str, Any], agreement: str, message_id: str, n: int
) -> Seller:
    account = f"{310000000000 + n:012d}"
    body = (
        raw.replace(expected["agreement_id"].encode(), agreement.encode())
        .replace(expected["source_id"].encode(), message_id.encode())
        .replace(expected["customer_account_id"].encode(), account.encode())
    )
    return Seller(body, "", message_id, agreement, account)


def seller_emails(n: int, *, accounts: int = 250, seed: int = 7) -> list[Seller]:
    """`n` emails cycling through the fixture templates; agreement i buys from
    one of `accounts` buyer accounts (so Accounts merge across events)."""
    tag = random.Random(seed).getrandbits(32)
    templates = _templates()
    out = []
    for i in range(n):
        kind, raw, expected = templates[i % len(templates)]
        agreement = f"agmt-sv{tag:08x}{i:015d}"
        message_id = f"survival-{tag:08x}-{i:06d}@email.amazonses.com"
        made = _render(raw, expected, agreement, message_id, i % accounts)
        out.append(Seller(made.raw, kind, message_id, agreement, made.account_id))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TcpProxy:
    """Forward 127.0.0.1:`port` to 127.0.0.1:`target`.

    `down()` closes the listener and every open connection (new connections
    are refused); `up()` listens again on the same port. `watch`, when set, is
    called with ("up" | "down", bytes) for every chunk forwarded client→server
    ("up") or server→client ("down"), on the proxy's threads.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.watch: Callable[[str, bytes], None] | None = None
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._closing = threading.Event()
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._closing = closing = threading.Event()
        self._listener = listener
        threading.Thread(
            target=self._accept, args=(listener, closing), daemon=True
        ).start()

    def down(self) -> None:
        self._closing.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            _hard_close(conn)

    def _accept(self, listener: socket.socket, closing: threading.Event) -> None:
        while not closing.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(("127.0.0.1", self.target), 5)
                server.settimeout(None)
            except OSError:
                _hard_close(client)
                continue
            with self._lock:
                self._conns.update((client, server))
            for src, dst, way in ((client, server, "up"), (server, client, "down")):
                threading.Thread(
                    target=self._pump, args=(src, dst, way), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, way: str) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.watch is not None:
                    self.watch(way, data)
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._conns.discard(src)
            self._conns.discard(dst)
        _hard_close(src)
        _hard_close(dst)


def _hard_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class NotifyListener:
    """A bound AF_UNIX datagram socket collecting sd_notify messages."""

    def __init__(self) -> None:
        # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be long.
        self.dir = tempfile.mkdtemp(prefix="notify-", dir="/tmp")
        self.path = f"{self.dir}/notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(data.decode())

    def statuses(self) -> list[str]:
        """Every STATUS= value received, in order."""
        return [
            line.removeprefix("STATUS=")
            for msg in list(self.messages)
            for line in msg.splitlines()
            if line.startswith("STATUS=")
        ]

    def has(self, line: str) -> bool:
        return any(line in msg.splitlines() for msg in list(self.messages))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


SF_PASSWORD_ENV = "MAILSYNC_TEST_SF_PASSWORD"
SF_TOKEN_ENV = "MAILSYNC_TEST_SF_TOKEN"


def survival_config(
    tmp: Path,
    *,
    imap: ImapUser | None = None,
    imap_port: int | None = None,
    imap_extra: dict[str, object] | None = None,
    salesforce: tuple[str, str] | None = None,
    sqs: tuple[str, str] | None = None,
    state: Path | None = None,
    pause_seconds: int = 1800,
) -> Path:
    """A config: IMAP and/or SQS (queue URL, endpoint) sources; the CRM is
    Salesforce at (endpoint URL, username) when given, else SQLite; the CRM
    flush runs every second."""
    parts = [
        f'[state]\npath = "{state or tmp / "state.sqlite3"}"\n',
        "[security]\nrequire_dkim = false\n",
        "[crm]",
        f'backend = "{"salesforce" if salesforce else "sqlite"}"',
        "flush_interval = 1",
        f"pause_seconds = {pause_seconds}\n",
        f'[crm.sqlite]\npath = "{tmp / "crm.sqlite3"}"\n',
    ]
    if salesforce:
        url, user = salesforce
        parts.append(
            f'[crm.salesforce]\nusername = "{user}"\nendpoint_url = "{url}"\n'
            f'password_env = "{SF_PASSWORD_ENV}"\n'
            f'security_token_env = "{SF_TOKEN_ENV}"\ntimeout = 5\n'
        )
    if imap is not None:
        table = imap.imap_table(**(imap_extra or {}))
        if imap_port is not None:  # e.g. through a TcpProxy
            table = table.replace(
                f"port = {imap.server.port}\n", f"port = {imap_port}\n"
            )
        parts.append(table)
    if sqs:
        queue, endpoint = sqs
        parts.append(
            f'[source.sqs]\nqueue_url = "{queue}"\nendpoint_url = "{endpoint}"\n'
            "wait_time_seconds = 1\nverify_signatures = false\n"
            # A receive cut off by an outage leaves its messages in flight
            # until this runs out (SQS semantics): keep the catch-up short.
            "visibility_timeout = 5\n"
        )
    path = tmp / "mailsync.toml"
    path.write_text("\n".join(parts))
    path.chmod(0o600)  # as deployed; a world-readable config draws a warning
    return path


def daemon_env(
    *, sf: tuple[str, str] | None = None, notify: NotifyListener | None = None
) -> dict[str, str]:
    """The daemon's environment: IMAP password, Salesforce secrets (password,
    token), fake AWS credentials for moto, and `$NOTIFY_SOCKET`."""
    env = mailsync_env()
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    if sf:
        env[SF_PASSWORD_ENV], env[SF_TOKEN_ENV] = sf
    if notify is not None:
        env["NOTIFY_SOCKET"] = notify.path
    return env


def status_of(cfg: Path, env: dict[str, str]) -> str:
    """`mailsync status` output (asserting it succeeded)."""
    result = run_mailsync("status", "--config", str(cfg), env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def count(state: Path, sql: str) -> int:
    """One integer from the state store (0 while its tables do not exist)."""
    if not state.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def outbox_total(state: Path) -> int:
    return count(state, "SELECT count(*) FROM outbox")


def outbox_pending(state: Path) -> int:
    return count(state, "SELECT count(*) FROM outbox WHERE flushed_at IS NULL")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def eventbridge_created(n: int) -> dict[str, Any]:
    """An EventBridge "Purchase Agreement Created - Proposer" event (the shape
    documented for aws.agreement-marketplace) for agreement number `n`."""
    agreement = f"agmt-eb{n:023d}"
    return {
        "version": "0",
        "id": f"eb-survival-{n}",
        "detail-type": "Purchase Agreement Created - Proposer",
        "source": "aws.agreement-marketplace",
        "account": "123456789012",
        "time": "2026-04-15T17:22:41Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:aws-marketplace::aws:agreement:{agreement}"],
        "detail": {
            "requestId": f"req-survival-{n}",
            "catalog": "AWSMarketplace",
            "agreement": {
                "id": agreement,
                "intent": "NEW",
                "status": "ACTIVE",
                "acceptanceTime": "2026-04-15T17:22:30Z",
                "startTime": "2026-05-01T00:00:00Z",
                "endTime": "2029-04-30T23:59:59Z",
            },
            "acceptor": {"accountId": f"{320000000000 + n:012d}"},
            "proposer": {"accountId": "123456789012"},
            "offer": {"id": "offer-b2xk7m4q9d1zs"},
        },
    }


def outbox_agreements(state: Path) -> list[str]:
    """Agreement IDs of the outbox events, one per row, sorted."""
    if not state.exists():
        return []
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5) as conn:
            rows = conn.execute(
                "SELECT json_extract(event, '$.agreement_id') FROM outbox"
            ).fetchall()
    except sqlite3.OperationalError:
        return []
    return sorted(str(r[0]) for r in rows)
