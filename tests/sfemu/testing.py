"""pytest fixtures and helpers around the emulator (import into a test module)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mailsync.config import SalesforceSettings

from .server import Emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator().start()
    try:
        yield emu
    finally:
        emu.stop()


def sf_settings(emu: Emulator, **overrides: Any) -> SalesforceSettings:
    """Password-auth settings pointing at `emu` (secrets via env names)."""
    values: dict[str, Any] = {
        "auth": "password",
        "username": emu.username,
        "password_env": "MAILSYNC_TEST_SF_PASSWORD",
        "security_token_env": "MAILSYNC_TEST_SF_TOKEN",
        "consumer_secret_env": "MAILSYNC_TEST_SF_SECRET",
        "endpoint_url": emu.url,
        "timeout": 10.0,
    }
    values.update(overrides)
    return SalesforceSettings(**values)


@pytest.fixture
def sf_secrets(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> None:
    monkeypatch.setenv("MAILSYNC_TEST_SF_PASSWORD", emulator.password)
    monkeypatch.setenv("MAILSYNC_TEST_SF_TOKEN", emulator.security_token)
    monkeypatch.setenv("MAILSYNC_TEST_SF_SECRET", emulator.consumer_secret)
