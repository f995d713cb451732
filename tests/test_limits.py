"""Size and parse-time limits (mailsync.security.limits) on hostile input."""

from __future__ import annotations

import re
import time
from email.message import EmailMessage

import pytest

from mailsync.config import SecuritySettings, from_dict
from mailsync.errors import ConfigError
from mailsync.event import Event, Kind
from mailsync.parsers import parse_email
from mailsync.security.limits import check_size, parse_with_timeout, shutdown

# --- functions run in the worker process (module level: sent by name) -------


def sleeps_forever(raw: bytes) -> Event:
    while True:
        time.sleep(1)


def catastrophic_regex(raw: bytes) -> Event:
    # Exponential backtracking inside the C regex engine: neither a thread nor
    # SIGALRM can interrupt this, only killing the process can.
    re.match(rb"(a+)+$", raw)
    return Event.unrecognized("finished")


def raises(raw: bytes) -> Event:
    raise ValueError(f"boom on {len(raw)} bytes")


def echo_kind(raw: bytes) -> Event:
    return Event.unrecognized(f"got {raw.decode()}", source_id="id-1")


# --- size -------------------------------------------------------------------


def test_check_size_limits() -> None:
    settings = SecuritySettings(max_message_bytes=1000)
    assert check_size(b"x" * 1000, settings) is None
    assert check_size(b"x" * 1001, settings) == (
        "message is 1001 bytes, over [security] max_message_bytes = 1000"
    )
    # A size known without the bytes (IMAP RFC822.SIZE) gets the same reason.
    assert check_size(1001, settings) == check_size(b"x" * 1001, settings)
    # The limit is literal; the configuration refuses one that is not positive.
    assert check_size(b"x", SecuritySettings(max_message_bytes=0)) is not None
    with pytest.raises(ConfigError, match="max_message_bytes: must be a positive"):
        from_dict({"security": {"max_message_bytes": 0}})


def test_default_limit_from_config() -> None:
    settings = from_dict({}).security
    assert settings.max_message_bytes == 10_000_000
    assert check_size(b"x" * 10_000_001, settings) is not None
    custom = from_dict({"security": {"max_message_bytes": 5}}).security
    assert check_size(b"123456", custom) is not None


# --- time -------------------------------------------------------------------


def test_result_crosses_the_process_boundary_intact() -> None:
    out = parse_with_timeout(echo_kind, b"hello", 30)
    assert out == Event.unrecognized("got hello", source_id="id-1")


def test_endless_parse_is_cut_off_and_the_worker_recovers() -> None:
    out = parse_with_timeout(sleeps_forever, b"x", 0.5)
    assert out.kind is Kind.UNRECOGNIZED
    assert out.reason == "parse took longer than 0.5 s"
    # A fresh worker serves the next message.
    assert parse_with_timeout(echo_kind, b"next", 30).reason == "got next"


def test_runaway_regex_in_c_is_cut_off() -> None:
    out = parse_with_timeout(catastrophic_regex, b"a" * 64 + b"!", 1)
    assert out.reason == "parse took longer than 1 s"
    assert parse_with_timeout(echo_kind, b"after", 30).reason == "got after"


def test_parser_exception_becomes_unrecognized() -> None:
    out = parse_with_timeout(raises, b"abc", 30)
    assert out.kind is Kind.UNRECOGNIZED
    assert out.reason == "parser error: ValueError: boom on 3 bytes"


def test_zero_seconds_runs_in_process() -> None:
    # In process, an exception becomes the same event the worker gives.
    out = parse_with_timeout(raises, b"a", 0)
    assert out.reason == "parser error: ValueError: boom on 1 bytes"


def test_shutdown_then_reuse() -> None:
    shutdown()
    assert parse_with_timeout(echo_kind, b"again", 30).reason == "got again"


# --- hostile messages through the real email parser ------------------------


def _repeated_label_message(size: int) -> bytes:
    head = (
        b"From: AWS Marketplace <no-reply@marketplace.aws>\r\n"
        b"To: seller@example.com\r\n"
        b"Subject: Customer accepted an AWS Marketplace offer\r\n"
        b"Date: Sat, 01 Mar 2025 12:00:00 +0000\r\n"
        b"Message-ID: <big@marketplace.aws>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    line = b"Offer ID: Offer ID: Offer ID: offer-abcdefghijklm Agreement ID:\r\n"
    return head + line * (size // len(line))


def _nested_multipart(depth: int) -> bytes:
    inner = EmailMessage()
    inner["Subject"] = "Customer accepted an AWS Marketplace offer"
    inner.set_content("Offer ID: offer-abcdefghijklm\n")
    msg = inner
    for level in range(depth):
        outer = EmailMessage()
        outer["Subject"] = f"level {level}"
        outer.make_mixed()
        outer.attach(msg)
        msg = outer
    msg["From"] = "AWS Marketplace <no-reply@marketplace.aws>"
    msg["Message-ID"] = "<nested@marketplace.aws>"
    return msg.as_bytes()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_repeated_label_message(5_000_000), id="5MB-repeated-label"),
        pytest.param(_nested_multipart(200), id="200-nested-multiparts"),
        pytest.param(
            b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            + b"--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" * 20_000,
            id="20k-self-nested-boundaries",
        ),
        pytest.param(
            b"Subject: " + b"=?utf-8?b?" + b"QUFB" * 200_000 + b"?=\r\n\r\nbody",
            id="800k-encoded-word",
        ),
    ],
)
def test_hostile_message_yields_an_event(raw: bytes) -> None:
    out = parse_with_timeout(parse_email, raw, 60)
    assert isinstance(out, Event)
    if out.kind is Kind.UNRECOGNIZED:
        assert out.reason
    else:
        # Whatever was recognized must be the same in and out of the worker.
        assert out == parse_email(raw)
