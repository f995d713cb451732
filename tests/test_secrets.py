"""Secrets never leak: not to stdout/stderr, not into the state database.

`mailsync run --once`, `check` and `status` run as real subprocesses with
distinctive secret values in the environment, against a real Dovecot (IMAP
login with the password) and the Salesforce emulator (login with password,
token and consumer secret); every byte they print and every byte of the state
and CRM databases is then searched for the secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ImapUser, mailsync_env, run_mailsync
from sfemu import Emulator

from mailsync.config import from_dict, warn_about_permissions

IMAP_SECRET = "imap-Pw-7f3a9c1e-LEAK"
SF_PASSWORD = "sf-Pw-2b8d4e6f-LEAK"
SF_TOKEN = "sfTok-91c0ffee-LEAK"
SF_CONSUMER_SECRET = "sfCs-5eed1e55-LEAK"
SECRETS = (IMAP_SECRET, SF_PASSWORD, SF_TOKEN, SF_CONSUMER_SECRET)

FIXTURES = Path(__file__).parent / "fixtures" / "email" / "offer.accepted"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator()
    emu.password = SF_PASSWORD
    emu.security_token = SF_TOKEN
    emu.consumer_secret = SF_CONSUMER_SECRET
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def _config(tmp: Path, user: ImapUser, emu: Emulator) -> Path:
    path = tmp / "mailsync.toml"
    path.write_text(
        f'[state]\npath = "{tmp}/state.sqlite3"\n\n'
        # Unsigned fixtures must reach the CRM, so its login runs for real.
        "[security]\nrequire_dkim = false\n\n"
        '[log]\nlevel = "DEBUG"\n\n'
        + user.imap_table()
        + '\n[crm]\nbackend = "salesforce"\n\n'
        "[crm.salesforce]\n"
        f'username = "{emu.username}"\n'
        'password_env = "MAILSYNC_SECRET_SF_PASSWORD"\n'
        'security_token_env = "MAILSYNC_SECRET_SF_TOKEN"\n'
        'consumer_secret_env = "MAILSYNC_SECRET_SF_CONSUMER"\n'
        f'endpoint_url = "{emu.url}"\n'
        "timeout = 10.0\n"
    )
    path.chmod(0o600)
    return path


def _env(imap_password: str) -> dict[str, str]:
    env = mailsync_env()
    env["MAILSYNC_TEST_IMAP_PASSWORD"] = imap_password
    env["MAILSYNC_SECRET_SF_PASSWORD"] = SF_PASSWORD
    env["MAILSYNC_SECRET_SF_TOKEN"] = SF_TOKEN
    env["MAILSYNC_SECRET_SF_CONSUMER"] = SF_CONSUMER_SECRET
    return env


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [s for s in SECRETS if s.encode() in data]


def test_no_secret_in_output_or_state(
    tmp_path: Path, imap_user: ImapUser, emulator: Emulator
) -> None:
    imap_user.append([p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))[:2]])
    # The Dovecot test user's password is fixed; the run with the right one
    # exercises a real login, the run with the distinctive wrong one makes the
    # login fail, so error paths get their chance to print it.
    config = _config(tmp_path, imap_user, emulator)
    outputs = []
    for imap_password in (imap_user.password, IMAP_SECRET):
        env = _env(imap_password)
        for args in (("run", "--once"), ("check",), ("status",)):
            done = run_mailsync(*args, "--config", str(config), env=env)
            outputs.append((args, done.returncode, done.stdout, done.stderr))
    for args, _code, out, err in outputs:
        assert "Traceback" not in err, (args, err)
        assert _leaks(out) == [], (args, out)
        assert _leaks(err) == [], (args, err)
    # The commands ran for real: the pass fetched the mail, status reports it.
    run_codes = [code for args, code, _, _ in outputs if args[0] == "run"]
    assert run_codes == [0, 1]  # the wrong IMAP password fails the pass
    assert "fetched 2, synced 2" in outputs[0][3]
    assert emulator.records("AWS_Agreement__c")  # the CRM login really happened
    status_out = outputs[2][2]
    assert "imap" in status_out
    for db in tmp_path.glob("*.sqlite3*"):
        assert _leaks(db.read_bytes()) == [], db


def test_config_permission_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Root 0644 is the installed mode (the dynamic user must read it): no
    warning. Others able to write it, or a world-readable token_command: a
    warning that says what to run."""
    path = tmp_path / "mailsync.toml"
    path.write_text("")
    with_command = from_dict(
        {
            "source": {
                "imap": {
                    "host": "imap.example.com",
                    "username": "u",
                    "auth": "xoauth2",
                    "token_command": "get-token --secret s3cr3t",
                }
            }
        }
    )
    with caplog.at_level(logging.WARNING, logger="mailsync.config"):
        path.chmod(0o644)
        assert warn_about_permissions(path, from_dict({})) is False
        assert warn_about_permissions(path) is False
        path.chmod(0o640)
        assert warn_about_permissions(path, with_command) is False
        path.chmod(0o664)
        assert warn_about_permissions(path) is True
        path.chmod(0o644)
        assert warn_about_permissions(path, with_command) is True
    assert [r.getMessage() for r in caplog.records] == [
        f"config file {path} can be changed by other users (mode -rw-rw-r--); "
        f"run: chmod go-w {path}",
        f"config file {path} is readable by every user (mode -rw-r--r--) and "
        "holds a token_command (mailbox imap), whose arguments may be secret; "
        "let the command read its secret from a credential file, or run: "
        f"chmod o-r {path}",
    ]
    assert warn_about_permissions(tmp_path / "missing.toml") is False


def test_run_command_warns_about_a_writable_config_only(tmp_path: Path) -> None:
    path = tmp_path / "mailsync.toml"
    path.write_text(f'[state]\npath = "{tmp_path}/state.sqlite3"\n')
    path.chmod(0o666)
    done = run_mailsync("run", "--once", "--config", str(path))
    assert "can be changed by other users" in done.stderr
    path.chmod(0o644)  # the README's install mode
    done = run_mailsync("run", "--once", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr
