"""Shared fixtures: a real Dovecot per session, a fresh IMAP user per test,
and helpers to write a mailsync config and run the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient

sys.path.insert(0, str(Path(__file__).parent))

from agreement_emulator import Emulator
from dovecot import Dovecot, available
from moto_server import MotoServer, shared_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    if not available():
        message = "dovecot is not installed (apt-get install dovecot-imapd)"
        if os.environ.get("CI"):
            # CI must run the real-server tests, never skip them quietly.
            pytest.fail(message)
        pytest.skip(message)
    server = Dovecot().start()
    yield server
    server.destroy()


@dataclass
class ImapUser:
    server: Dovecot
    user: str
    password: str

    def client(self) -> IMAPClient:
        return self.server.client(self.user)

    def append(self, messages: Sequence[bytes], folder: str = "INBOX") -> None:
        with self.client() as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            for i in range(0, len(messages), 200):
                c.multiappend(folder, list(messages[i : i + 200]))

    def flags(self, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        with self.client() as c:
            c.select_folder(folder, readonly=True)
            uids = c.search("ALL")
            return {u: d[b"FLAGS"] for u, d in c.fetch(uids, ["FLAGS"]).items()}

    def count(self, folder: str = "INBOX") -> int:
        with self.client() as c:
            return int(c.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])

    def imap_table(self, **extra: object) -> str:
        """A [source.imap] TOML table for this user (plaintext on loopback)."""
        lines = [
            "[source.imap]",
            'host = "127.0.0.1"',
            f"port = {self.server.port}",
            'tls = "none"',
            f'username = "{self.user}"',
            'password_env = "MAILSYNC_TEST_IMAP_PASSWORD"',
        ]
        for key, value in extra.items():
            lines.append(f"{key} = {_toml(value)}")
        return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def imap_user(dovecot: Dovecot) -> ImapUser:
    """A fresh, empty mailbox user on the session's Dovecot."""
    user = dovecot.add_user()
    return ImapUser(dovecot, user, "secret")


def write_config(tmp: Path, *tables: str, require_dkim: bool = False) -> Path:
    """A config with state and SQLite CRM under `tmp` plus the given tables."""
    text = (
        f'[state]\npath = "{tmp}/state.sqlite3"\n\n'
        f"[security]\nrequire_dkim = {'true' if require_dkim else 'false'}\n\n"
        f'[crm]\nbackend = "sqlite"\nflush_interval = 1\n\n'
        f'[crm.sqlite]\npath = "{tmp}/crm.sqlite3"\n\n' + "\n".join(tables)
    )
    path = tmp / "mailsync.toml"
    path.write_text(text)
    return path


def mailsync_env(password: str = "secret") -> dict[str, str]:
    env = dict(os.environ)
    env["MAILSYNC_TEST_IMAP_PASSWORD"] = password
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    return env


def run_mailsync(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the CLI (`python -m mailsync ARGS`) to completion."""
    return subprocess.run(
        [sys.executable, "-m", "mailsync", *args],
        capture_output=True,
        text=True,
        env=env or mailsync_env(),
        cwd=ROOT,
        timeout=timeout,
    )


def start_mailsync(
    *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start the CLI in the background (the daemon), stderr into `log` (a
    file, so a chatty daemon never blocks on a full pipe)."""
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "mailsync", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            env=env or mailsync_env(),
            cwd=ROOT,
        )


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `predicate` until true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The session's moto server (SQS/SNS), emptied, with fake AWS keys set."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    server = shared_server()
    server.reset()
    return server


@pytest.fixture
def agreement_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A fresh Agreement API emulator on loopback, with fake AWS keys set."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    emulator = Emulator().start()
    yield emulator
    emulator.stop()
