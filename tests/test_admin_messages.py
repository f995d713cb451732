"""Messages an admin can act on: journald priorities and terminal timestamps,
and network/login failures in words rather than Python reprs (real Dovecot,
the Salesforce emulator, a closed port)."""

from __future__ import annotations

import os
import pty
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, ImapUser, mailsync_env, run_mailsync, write_config
from sfemu import Emulator

FIXTURES = Path(__file__).parent / "fixtures"
OFFER = FIXTURES / "email/offer.accepted/isv_public_plain_no_end_date.eml"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator().start()
    try:
        yield emu
    finally:
        emu.stop()


def _maildir(tmp: Path, *extra: str) -> Path:
    inbox = tmp / "inbox"
    inbox.mkdir()
    (inbox / "a.eml").write_bytes(OFFER.read_bytes())
    return write_config(tmp, f'[source.maildir]\npath = "{inbox}"\n', *extra)


def test_journal_lines_carry_syslog_priorities(tmp_path: Path) -> None:
    """stderr is the journal ($JOURNAL_STREAM names its device:inode): every
    log line starts with <N>, and carries no timestamp of its own."""
    cfg = _maildir(tmp_path)
    cfg.chmod(0o666)  # a WARNING (writable by others) next to the INFO lines
    err = tmp_path / "stderr"
    with err.open("w") as stream:
        st = os.fstat(stream.fileno())
        env = mailsync_env()
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mailsync",
                "run",
                "--once",
                "-v",
                *["--config", str(cfg)],
            ],
            stderr=stream,
            stdout=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
    assert done.returncode == 0
    lines = err.read_text().splitlines()
    logged = [x for x in lines if not x.startswith("mailsync: ")]  # not logs
    prefixes = {line[:3] for line in logged}
    assert {"<4>", "<6>", "<7>"} <= prefixes, logged
    assert all(re.match(r"<[2-7]>(DEBUG|INFO|WARNING|ERROR) ", x) for x in logged)
    assert any(x.startswith("<4>WARNING config file") for x in logged)
    assert any(x.startswith("<6>INFO synced source=maildir:") for x in logged)
    # Another stream in $JOURNAL_STREAM (inherited by a child): no prefixes.
    env["JOURNAL_STREAM"] = "1:1"
    done2 = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailsync",
            "replay",
            "--dry-run",
            "-v",
            *["--config", str(cfg), str(OFFER)],
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert not re.search(r"^<\d>", done2.stderr, re.M), done2.stderr


def test_terminal_lines_start_with_a_timestamp(tmp_path: Path) -> None:
    cfg = _maildir(tmp_path)
    master, slave = pty.openpty()
    env = mailsync_env()
    env.pop("JOURNAL_STREAM", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailsync", "run", "--once", "--config", str(cfg)],
        stderr=slave,
        stdout=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    text = b"".join(chunks).decode()
    assert re.search(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO synced source=maildir:", text, re.M
    ), text


# -- network and login failures -------------------------------------------------


def test_imap_tls_on_a_plain_port_gives_a_tls_hint(
    tmp_path: Path, imap_user: ImapUser
) -> None:
    table = imap_user.imap_table().replace('tls = "none"', 'tls = "implicit"')
    cfg = write_config(tmp_path, table)
    done = run_mailsync("run", "--once", "--config", str(cfg))
    assert done.returncode == 1
    assert (
        f"cannot reach IMAP server 127.0.0.1:{imap_user.server.port}: TLS handshake"
        " failed (WRONG_VERSION_NUMBER): the server did not answer with TLS;"
        " check [source.imap] tls and port (implicit: 993, starttls: 143)"
    ) in done.stderr
    assert "[SSL:" not in done.stderr and "_ssl.c" not in done.stderr


def test_imap_refused_login_shows_the_server_text(
    tmp_path: Path, imap_user: ImapUser
) -> None:
    cfg = write_config(tmp_path, imap_user.imap_table())
    done = run_mailsync(
        "run", "--once", "--config", str(cfg), env=mailsync_env("wrong")
    )
    assert done.returncode == 1
    assert "refused ([AUTHENTICATIONFAILED] Authentication failed.)" in done.stderr
    assert "b'" not in done.stderr and 'b"' not in done.stderr


def _salesforce(tmp: Path, endpoint: str, username: str) -> Path:
    cfg = _maildir(tmp)
    text = cfg.read_text().replace('backend = "sqlite"', 'backend = "salesforce"')
    cfg.write_text(
        text
        + f'\n[crm.salesforce]\nusername = "{username}"\nendpoint_url = "{endpoint}"\n'
        'password_env = "MAILSYNC_TEST_SF_PASSWORD"\n'
        'security_token_env = "MAILSYNC_TEST_SF_TOKEN"\ntimeout = 5.0\n'
    )
    return cfg


def test_salesforce_refused_login_shows_salesforces_reason(
    tmp_path: Path, emulator: Emulator
) -> None:
    cfg = _salesforce(tmp_path, emulator.url, emulator.username)
    env = mailsync_env()
    env.update(MAILSYNC_TEST_SF_PASSWORD="wrong", MAILSYNC_TEST_SF_TOKEN="x")
    done = run_mailsync("check", "--config", str(cfg), env=env)
    assert done.returncode == 1
    assert (
        "Salesforce refused the password login (INVALID_LOGIN:"
        " Invalid username, password, security token; or user locked out.)"
    ) in done.stdout
    assert "{content}" not in done.stdout and "Response content" not in done.stdout


def test_unreachable_salesforce_names_the_host(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = _salesforce(tmp_path, f"http://127.0.0.1:{port}", "u@example.com")
    env = mailsync_env()
    env.update(MAILSYNC_TEST_SF_PASSWORD="p", MAILSYNC_TEST_SF_TOKEN="t")
    done = run_mailsync("check", "--config", str(cfg), env=env)
    assert done.returncode == 1
    assert "cannot reach Salesforce at 127.0.0.1: connection refused" in done.stdout
    for internal in ("HTTPConnectionPool", "NewConnectionError", "Max retries"):
        assert internal not in done.stdout + done.stderr


def test_debug_shows_the_imap_protocol_steps(
    tmp_path: Path, imap_user: ImapUser
) -> None:
    imap_user.append([OFFER.read_bytes()])
    cfg = write_config(tmp_path, imap_user.imap_table())
    done = run_mailsync("run", "--once", "-v", "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    steps = [
        line.split()[1]
        for line in done.stderr.splitlines()
        if line.startswith("DEBUG ") and "source=imap:imap" in line
    ]
    for step in ("connecting", "LOGIN", "logged", "SELECT", "UID"):
        assert step in steps, done.stderr
    assert steps.index("connecting") < steps.index("LOGIN") < steps.index("SELECT")
    assert imap_user.password not in done.stderr


def test_an_outage_is_a_warning_once_then_info(tmp_path: Path) -> None:
    from conftest import start_mailsync, wait_for

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    table = (
        f'[source.imap]\nhost = "127.0.0.1"\nport = {port}\ntls = "none"\n'
        'username = "u"\npassword_env = "MAILSYNC_TEST_IMAP_PASSWORD"\n'
    )
    cfg = write_config(tmp_path, table)
    log = tmp_path / "daemon.log"
    proc = start_mailsync("run", "--config", str(cfg), log=log)
    try:
        wait_for(lambda: log.read_text().count("retrying in") >= 3, 30, "three retries")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    retries = [x for x in log.read_text().splitlines() if "retrying in" in x]
    assert retries[0].startswith(
        f"WARNING cannot reach IMAP server 127.0.0.1:{port}: connection refused;"
    )
    assert all(x.startswith("INFO cannot reach IMAP server") for x in retries[1:])
    assert all("source=imap:imap attempt=" in x for x in retries)
