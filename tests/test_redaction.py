"""Error bodies from an echoing CRM endpoint never put credentials into the
state store, `status`, dead letters or logs: redacted and clipped by one
function (`mailsync.redact`), whose patterns are linear."""

from __future__ import annotations

import io
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sfemu import Emulator
from sfemu.testing import emulator, sf_secrets
from test_salesforce_session import Flusher, accepted, settings

from mailsync.cli import main
from mailsync.config import LogSettings
from mailsync.log import JsonFormatter, TextFormatter, configure, kv
from mailsync.redact import MAX_ERROR_CHARS, redact, safe_error

__all__ = ["emulator", "sf_secrets"]

SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261204/us-east-1/sqs/"
    "aws4_request, SignedHeaders=host;x-amz-date, Signature=fe5f80f77d5fa3beca"
)
SECRETS = ("AKIAIOSFODNN7EXAMPLE", "fe5f80f77d5fa3beca", "FQoGZXIvYXdzEXAMPLETOKEN")


def dump(path: Path) -> str:
    conn = sqlite3.connect(path)
    text = "\n".join(conn.iterdump())
    conn.close()
    return text


def write_cli_config(tmp: Path, emu: Emulator) -> Path:
    path = tmp / "mailsync.toml"
    path.write_text(
        f'[state]\npath = "{tmp / "state.sqlite3"}"\n'
        '[crm]\nbackend = "salesforce"\n'
        f'[crm.salesforce]\nusername = "{emu.username}"\n'
        f'endpoint_url = "{emu.url}"\npassword_env = "MAILSYNC_TEST_SF_PASSWORD"\n'
        'security_token_env = "MAILSYNC_TEST_SF_TOKEN"\ntimeout = 5\n'
    )
    return path


def assert_clean(text: str, emu: Emulator) -> None:
    for token in emu.tokens:
        assert token not in text
        assert token.split("!", 1)[1] not in text
    for secret in SECRETS:
        assert secret not in text


def test_echoed_credentials_never_reach_state_status_or_dead_letters(
    tmp_path: Path,
    emulator: Emulator,
    sf_secrets: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = settings(tmp_path, "salesforce", emulator.url, emulator.username)

    def refuse(
        obj: str, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> tuple[str, str, list[str]] | None:
        if obj == "AWS_Agreement__c":
            return ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "refused " + "x" * 5000, [])
        return None

    emulator.add_validation(refuse)
    emulator.faults.echo_auth = True
    flusher = Flusher(cfg)
    try:
        result = flusher.flush(accepted(1))  # a per-record refusal: dead letter
        assert result.dead_lettered >= 1
        emulator.faults.unavailable = 100  # an outage whose HTML page echoes
        result = flusher.flush(accepted(2))
        assert result.paused_reason
    finally:
        flusher.close()
    assert emulator.tokens, "the emulator issued a session"
    state = dump(tmp_path / "state.sqlite3")
    assert "[redacted]" in state
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in state
    assert_clean(state, emulator)
    assert "x" * (MAX_ERROR_CHARS + 1) not in state
    cli = write_cli_config(tmp_path, emulator)
    capsys.readouterr()
    main(["status", "--config", str(cli)])
    out = capsys.readouterr().out
    assert "[redacted]" in out
    assert_clean(out, emulator)


def test_log_lines_are_redacted_in_text_and_json() -> None:
    token = "00D5g000004XyZaEAI!AQ8AQH.secretsessionpart"
    record = logging.LogRecord(
        "mailsync.crm",
        logging.WARNING,
        __file__,
        1,
        f"flush failed: Bearer {token}",
        None,
        None,
    )
    record.ctx = {"error": f"{SIGV4} X-Amz-Security-Token: FQoGZXIvYXdzEXAMPLETOKEN"}
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert "secretsessionpart" not in line
        for secret in SECRETS:
            assert secret not in line
        assert "Bearer [redacted]" in line and "Credential=[redacted]" in line


def test_daemon_logger_redacts(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    configure(LogSettings())
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logging.getLogger("mailsync.test").warning(
        "CRM error", extra=kv(body="<sessionId>00D000000000001!AQabc</sessionId>")
    )
    assert "AQabc" not in stream.getvalue()
    assert "<sessionId>[redacted]" in stream.getvalue()


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("Authorization: Bearer abc.def", "Authorization: [redacted]", "abc.def"),
        ('{"access_token":"tok1","id":2}', '"id":2', "tok1"),
        (SIGV4, "SignedHeaders=host", "AKIAIOSFODNN7EXAMPLE"),
        ("?X-Amz-Security-Token=FQo%2Bx&X-Amz-Date=1", "X-Amz-Date=1", "FQo%2Bx"),
        ("<n1:password>pw123TOKEN</n1:password>", "<n1:password>[redacted]", "pw123"),
        ("sid=00D000000000001!AQx; Path=/", "Path=/", "AQx"),
        (
            "session 00D000000000001AAA!AQzz.yy ended",
            "session [redacted] ended",
            "AQzz",
        ),
    ],
)
def test_redaction_patterns(text: str, kept: str, gone: str) -> None:
    out = redact(text)
    assert kept in out
    assert gone not in out


def test_clip_cuts_long_bodies() -> None:
    out = safe_error("e" * 100_000)
    assert len(out) < MAX_ERROR_CHARS + 60
    assert out.endswith("(99500 more characters cut)")


@pytest.mark.parametrize(
    "shape",
    [
        "Bearer " * 150_000,
        '"sessionId": "' * 75_000,
        "Credential=" * 100_000,
        "<sessionId>" * 100_000,
        "authorization: " * 70_000,
        "00D" + "a" * 1_000_000,
        "00D000000000001!" * 60_000,
    ],
)
def test_redaction_is_linear(shape: str) -> None:
    start = time.perf_counter()
    redact(shape)
    assert time.perf_counter() - start < 2.0  # ~1 MB: quadratic would take minutes


def test_check_output_is_redacted(
    tmp_path: Path,
    emulator: Emulator,
    sf_secrets: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emulator.faults.echo_auth = True
    emulator.faults.limit_reached = True  # the 403 answer quotes the request
    main(["check", "--config", str(write_cli_config(tmp_path, emulator))])
    out = capsys.readouterr().out
    assert "REQUEST_LIMIT_EXCEEDED" in out
    assert "[redacted]" in out
    assert_clean(out, emulator)
