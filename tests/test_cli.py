"""The command line an admin uses: options in both positions, config discovery,
--version/-v/-q/--help, one daemon per state store, read-only commands,
secrets checked at start-up, exit codes for refused records."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, mailsync_env, start_mailsync, wait_for, write_config

from mailsync.crm.sqlite_store import SqliteStore

FIXTURES = Path(__file__).parent / "fixtures"
OFFER = FIXTURES / "email/offer.accepted/isv_public_plain_no_end_date.eml"


def cli(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m mailsync ARGS` in `cwd`, without $MAILSYNC_CONFIG unless
    `env` sets it."""
    environ = env or mailsync_env()
    environ.setdefault("PYTHONPATH", str(ROOT))
    if env is None:
        environ.pop("MAILSYNC_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "mailsync", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=120,
    )


def maildir_config(tmp: Path, *extra: str) -> Path:
    inbox = tmp / "inbox"
    inbox.mkdir(exist_ok=True)
    table = f'[source.maildir]\npath = "{inbox}"\npoll_interval = 1\n'
    return write_config(tmp, table, *extra)


# -- --config before or after the command, and discovery ------------------------


def test_config_before_or_after_the_command(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    cfg_a, cfg_b = maildir_config(a), maildir_config(b)
    env = mailsync_env()
    env["MAILSYNC_CONFIG"] = str(cfg_b)  # the wrong one, if --config were lost
    for args in (
        ("--config", str(cfg_a), "status"),
        ("status", "--config", str(cfg_a)),
    ):
        done = cli(*args, env=dict(env))
        assert done.returncode == 0, done.stderr
        assert done.stdout == (
            f"no state yet: {a}/state.sqlite3 does not exist; `mailsync run`"
            " creates it\n"
        )
    # A subcommand of a subcommand: the config given first is the one used.
    done = cli("--config", str(cfg_a), "quarantine", "retry", "1", env=dict(env))
    assert done.returncode == 2
    assert done.stderr == (
        "mailsync: no quarantine entry 1; see `mailsync quarantine list`\n"
    )
    assert (a / "state.sqlite3").exists() and not (b / "state.sqlite3").exists()
    done = cli("-v", "quarantine", "--config", str(cfg_a), "list", env=dict(env))
    assert done.returncode == 0
    assert f"mailsync: config file {cfg_a} (from --config)" in done.stderr


def test_config_discovery_order(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    if Path("/etc/mailsync/mailsync.toml").exists():
        pytest.skip("this machine has an /etc/mailsync/mailsync.toml")
    # Nothing given, nothing local: the system default.
    done = cli("status", cwd=work)
    assert done.returncode == 2
    assert done.stderr.startswith(
        "mailsync: config file /etc/mailsync/mailsync.toml not found"
    )
    # ./config/mailsync.toml when it exists.
    local = work / "config" / "mailsync.toml"
    local.write_text(maildir_config(tmp_path).read_text())
    done = cli("check", cwd=work)
    assert done.stdout.splitlines()[0] == (
        "ok   config: config/mailsync.toml (from the current directory) is valid"
    )
    # $MAILSYNC_CONFIG wins over the local file, --config over both.
    other = tmp_path / "other.toml"
    other.write_text(local.read_text())
    env = mailsync_env()
    env["MAILSYNC_CONFIG"] = str(other)
    done = cli("check", cwd=work, env=dict(env))
    assert done.stdout.splitlines()[0] == (
        f"ok   config: {other} (from $MAILSYNC_CONFIG) is valid"
    )
    done = cli("check", "--config", str(local), cwd=work, env=dict(env))
    assert done.stdout.splitlines()[0] == (
        f"ok   config: {local} (from --config) is valid"
    )


# -- --version, --help, -v/-q, OBJECT ------------------------------------------


def test_version_names_the_key_libraries() -> None:
    done = cli("--version")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"mailsync \d+\.\d+\.\d+\S*", lines[0])
    names = [line.split()[0] for line in lines[1:]]
    assert names == [
        "python",
        "imapclient",
        "mail-parser",
        "simple-salesforce",
        "APScheduler",
        "tenacity",
        "boto3",
        "dkimpy",
        "cryptography",
    ]
    assert all(re.fullmatch(r"\S+ \d+(\.\w+)+", line) for line in lines[1:]), lines


def test_help_shows_arguments_examples_and_exit_codes() -> None:
    records = cli("records", "--help").stdout
    assert (
        "AWS_Agreement__c, AWS_Invoice__c, AWS_Offer__c, AWS_Subscription__c"
        in records
    )
    assert "mailsync records aws_agreement__c --format csv" in records
    assert "exit codes: 0 success, 1 runtime failure, 2 usage" in records
    retry = cli("quarantine", "retry", "--help").stdout
    assert "an ID from `mailsync quarantine list`" in retry
    assert "mailsync quarantine retry --dead-letters" in retry
    run = cli("run", "--help").stdout
    assert "another daemon holds the state store" in run
    for command in ("parse", "replay", "check", "status", "quarantine"):
        text = cli(command, "--help").stdout
        assert "example" in text and "exit codes:" in text, command


def test_object_name_in_any_case_and_no_crm_file_created(tmp_path: Path) -> None:
    cfg = maildir_config(tmp_path)
    done = cli("records", "aws_agreement__C", "--format", "json", "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"
    assert "no records yet" in done.stderr
    assert not (tmp_path / "crm.sqlite3").exists()
    done = cli("records", "Agreement", "--config", str(cfg))
    assert done.returncode == 2
    assert "unknown OBJECT 'Agreement'; valid objects: Account" in done.stderr


def test_verbose_shows_debug_quiet_only_warnings(tmp_path: Path) -> None:
    cfg = maildir_config(tmp_path)
    (tmp_path / "inbox" / "a.eml").write_bytes(OFFER.read_bytes())
    verbose = cli("run", "--once", "-v", "--config", str(cfg))
    assert verbose.returncode == 0, verbose.stderr
    assert f"mailsync: config file {cfg} (from --config)" in verbose.stderr
    assert re.search(r"^DEBUG config loaded .*origin=--config", verbose.stderr, re.M)
    assert re.search(r"^INFO synced source=maildir:", verbose.stderr, re.M)
    (tmp_path / "inbox" / "b.eml").write_bytes(
        OFFER.read_bytes().replace(b"Message-ID: <", b"Message-ID: <b")
    )
    quiet = cli("-q", "run", "--once", "--config", str(cfg))
    assert quiet.returncode == 0, quiet.stderr
    assert not re.search(r"^(DEBUG|INFO) ", quiet.stderr, re.M), quiet.stderr
    assert quiet.stderr.startswith("mailsync: fetched ")  # the summary stays


# -- read-only commands --------------------------------------------------------


def test_read_only_commands_create_no_files(tmp_path: Path) -> None:
    cfg = maildir_config(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    status = cli("status", "--config", str(cfg))
    assert (status.returncode, status.stdout) == (
        0,
        f"no state yet: {tmp_path}/state.sqlite3 does not exist; `mailsync run`"
        " creates it\n",
    )
    records = cli("records", "--config", str(cfg))
    assert records.returncode == 0
    assert records.stderr == (
        f"mailsync: no records yet: {tmp_path}/crm.sqlite3 does not exist;"
        " `mailsync run` creates it\n"
    )
    check = cli("check", "--config", str(cfg))
    assert check.returncode == 0, check.stdout
    lines = check.stdout.splitlines()
    assert lines[1].startswith("ok   state: no state yet: ")
    assert lines[-1].startswith("ok   crm sqlite: no records yet: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# -- one daemon per state store -----------------------------------------------


def test_second_daemon_on_the_same_state_exits_2_naming_the_pid(
    tmp_path: Path,
) -> None:
    cfg = maildir_config(tmp_path)
    lock = tmp_path / "state.sqlite3.lock"
    first = start_mailsync("run", "--config", str(cfg), log=tmp_path / "first.log")
    try:
        wait_for(
            lambda: lock.exists() and lock.read_text().strip() == str(first.pid),
            30,
            "the first daemon's lock",
        )
        log = tmp_path / "second.log"
        second = start_mailsync("run", "--config", str(cfg), log=log)
        assert second.wait(timeout=60) == 2
        assert log.read_text() == (
            f"mailsync: another mailsync daemon (PID {first.pid}) is already"
            f" running on the state store {tmp_path}/state.sqlite3 (lock file"
            f" {lock}); stop it first, or give this one its own [state] path\n"
        )
        # One pass and the read-only commands may run beside the daemon.
        (tmp_path / "inbox" / "a.eml").write_bytes(OFFER.read_bytes())
        once = cli("run", "--once", "--config", str(cfg))
        assert once.returncode == 0, once.stderr
        assert cli("status", "--config", str(cfg)).returncode == 0
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    # The lock goes with its holder: a new daemon starts (and stops) fine.
    again = start_mailsync("run", "--config", str(cfg), log=tmp_path / "again.log")
    try:
        wait_for(lambda: lock.read_text().strip() == str(again.pid), 30, "the lock")
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=30) == 0


# -- secrets at start-up -------------------------------------------------------


def test_missing_secret_stops_the_start_before_any_processing(
    tmp_path: Path,
) -> None:
    imap = (
        '[source.imap]\nhost = "127.0.0.1"\nport = 1\ntls = "none"\n'
        'username = "u"\npassword_file = "imap-password"\n'
    )
    cfg = maildir_config(tmp_path, imap)
    (tmp_path / "inbox" / "a.eml").write_bytes(OFFER.read_bytes())
    creds = tmp_path / "creds"
    creds.mkdir()
    env = mailsync_env()
    env["CREDENTIALS_DIRECTORY"] = str(creds)
    for args in (("run", "--once"), ("run",)):
        started = time.monotonic()
        done = cli(*args, "--config", str(cfg), env=dict(env))
        assert done.returncode == 2, (args, done.stderr)
        assert time.monotonic() - started < 30  # no retry loop
        assert done.stderr == (
            "mailsync: [source.imap] password for imap: secret file imap-password"
            f" not found (looked for {creds}/imap-password and"
            f" {ROOT}/imap-password)\n"
        )
        assert not (tmp_path / "state.sqlite3").exists()  # nothing processed
    (creds / "imap-password").write_text("\n")
    done = cli("run", "--once", "--config", str(cfg), env=dict(env))
    assert done.returncode == 2
    assert done.stderr == (
        "mailsync: [source.imap] password for imap: secret file"
        f" {creds}/imap-password is empty; write the secret into it\n"
    )
    # Without $CREDENTIALS_DIRECTORY the message says how systemd provides it.
    env.pop("CREDENTIALS_DIRECTORY")
    done = cli("run", "--once", "--config", str(cfg), env=dict(env))
    assert "$CREDENTIALS_DIRECTORY is not set" in done.stderr


def test_every_missing_salesforce_secret_is_named(tmp_path: Path) -> None:
    cfg = maildir_config(tmp_path)
    text = cfg.read_text().replace('backend = "sqlite"', 'backend = "salesforce"')
    text += (
        '\n[crm.salesforce]\nusername = "u@example.com"\n'
        'password_env = "MAILSYNC_TEST_NO_SUCH_VAR"\n'
        'security_token_file = "/nonexistent/sf-token"\n'
    )
    cfg.write_text(text)
    (tmp_path / "inbox" / "a.eml").write_bytes(OFFER.read_bytes())
    done = cli("run", "--once", "--config", str(cfg))
    assert done.returncode == 2
    assert done.stderr == (
        "mailsync: [crm.salesforce] password: environment variable"
        " MAILSYNC_TEST_NO_SUCH_VAR is not set\n"
    )
    assert "synced" not in done.stderr
    assert not (tmp_path / "state.sqlite3").exists()


# -- exit codes and plurals ----------------------------------------------------


def test_replay_of_a_refused_record_exits_1(tmp_path: Path) -> None:
    cfg = maildir_config(tmp_path)
    SqliteStore(tmp_path / "crm.sqlite3").close()
    crm = sqlite3.connect(tmp_path / "crm.sqlite3", isolation_level=None)
    crm.execute(
        'CREATE TRIGGER hold BEFORE INSERT ON "AWS_Agreement__c" BEGIN SELECT '
        "RAISE(ABORT, 'FIELD_CUSTOM_VALIDATION_EXCEPTION: needs approval'); END"
    )
    crm.close()
    done = cli("replay", str(OFFER), "--config", str(cfg))
    assert done.returncode == 1, done.stderr
    assert done.stdout == (
        "replayed 1 input (1 new): 2 CRM records written, 1 refused, 0 pending\n"
    )


def test_plural() -> None:
    from mailsync.wording import plural

    assert [plural(n, "entry", "entries") for n in (0, 1, 2)] == [
        "0 entries",
        "1 entry",
        "2 entries",
    ]
    assert plural(1, "record") == "1 record" and plural(3, "record") == "3 records"


def test_check_reports_an_uncreatable_state_store(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    cfg = maildir_config(tmp_path)
    state = f"{tmp_path}/state.sqlite3"
    cfg.write_text(cfg.read_text().replace(state, f"{blocker}/state.sqlite3"))
    done = cli("check", "--config", str(cfg))
    assert done.returncode == 1
    assert done.stdout.splitlines()[1] == (
        f"FAIL state: {blocker}/state.sqlite3 does not exist and cannot be"
        f" created: {blocker} is not a writable folder; fix [state] path or the"
        " folder's permissions"
    )
    assert blocker.read_text() == ""
