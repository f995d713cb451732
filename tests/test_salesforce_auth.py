"""Salesforce login modes and the endpoint seam, against the HTTP emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sfemu import Emulator
from sfemu.testing import emulator, sf_secrets, sf_settings

from mailsync.config import from_dict
from mailsync.crm.salesforce import open_salesforce
from mailsync.crm.salesforce.auth import SalesforceAdapter, build_session
from mailsync.errors import ConfigError

__all__ = ["emulator", "sf_secrets"]


def _account_roundtrip(emu: Emulator, settings_kw: dict[str, object]) -> None:
    backend = open_salesforce(sf_settings(emu, **settings_kw))
    answer = backend.upsert(
        "Account",
        "AWS_Account_ID__c",
        [{"AWS_Account_ID__c": "111122223333", "Name": "Acme"}],
    )
    assert [(r.ok, r.created) for r in answer] == [(True, True)]
    assert [r["Name"] for r in emu.records("Account")] == ["Acme"]


def test_password_login_uses_soap_and_token(
    emulator: Emulator, sf_secrets: None
) -> None:
    _account_roundtrip(emulator, {})
    assert emulator.calls["soap_login"] == 1
    assert emulator.calls["oauth_token"] == 0


def test_wrong_password_is_a_config_error(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSYNC_TEST_SF_PASSWORD", "wrong")
    monkeypatch.setenv("MAILSYNC_TEST_SF_TOKEN", emulator.security_token)
    with pytest.raises(ConfigError, match="INVALID_LOGIN"):
        open_salesforce(sf_settings(emulator))


def test_missing_secret_names_the_variable(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILSYNC_TEST_SF_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="MAILSYNC_TEST_SF_PASSWORD"):
        open_salesforce(sf_settings(emulator))


def test_client_credentials(emulator: Emulator, sf_secrets: None) -> None:
    _account_roundtrip(
        emulator,
        {
            "auth": "client_credentials",
            "consumer_key": emulator.consumer_key,
            "domain": "acme.my",
        },
    )
    assert emulator.calls["oauth_token"] == 1
    assert emulator.calls["soap_login"] == 0


def test_client_credentials_needs_my_domain(
    emulator: Emulator, sf_secrets: None
) -> None:
    with pytest.raises(ConfigError, match="My Domain"):
        open_salesforce(
            sf_settings(
                emulator, auth="client_credentials", consumer_key=emulator.consumer_key
            )
        )


def test_client_credentials_wrong_secret(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, sf_secrets: None
) -> None:
    monkeypatch.setenv("MAILSYNC_TEST_SF_SECRET", "nope")
    with pytest.raises(ConfigError, match="invalid_client"):
        open_salesforce(
            sf_settings(
                emulator,
                auth="client_credentials",
                consumer_key=emulator.consumer_key,
                domain="acme.my",
            )
        )


def _rsa_pem() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_jwt_key_from_credentials_directory(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = _rsa_pem()
    emulator.jwt_public_key = public
    (tmp_path / "sf-jwt.key").write_bytes(private)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    _account_roundtrip(
        emulator,
        {
            "auth": "jwt",
            "consumer_key": emulator.consumer_key,
            "private_key_file": "sf-jwt.key",
        },
    )
    assert emulator.calls["oauth_token"] == 1


def test_jwt_signed_by_another_key_is_refused(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.jwt_public_key = _rsa_pem()[1]
    key = tmp_path / "other.key"
    key.write_bytes(_rsa_pem()[0])
    with pytest.raises(ConfigError, match="invalid_grant"):
        open_salesforce(
            sf_settings(
                emulator,
                auth="jwt",
                consumer_key=emulator.consumer_key,
                private_key_file=str(key),
            )
        )


def test_adapter_rewrites_scheme_host_and_sets_timeout(emulator: Emulator) -> None:
    session = build_session(sf_settings(emulator, timeout=7.5))
    adapter = session.get_adapter("https://login.salesforce.com/")
    assert isinstance(adapter, SalesforceAdapter)
    assert adapter.timeout == 7.5
    answer = session.get("https://na1.salesforce.com/services/data")
    assert answer.status_code == 200
    assert answer.url.startswith(emulator.url + "/services/data")
    assert emulator.calls["versions"] == 1


@pytest.mark.parametrize(
    ("endpoint", "ok"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://localhost:8080", True),
        ("https://proxy.example.com", True),
        ("http://proxy.example.com", False),
        ("http://10.0.0.5:8080", False),
        ("ftp://127.0.0.1", False),
    ],
)
def test_endpoint_url_http_only_on_loopback(endpoint: str, ok: bool) -> None:
    data = {"crm": {"backend": "salesforce", "salesforce": {"endpoint_url": endpoint}}}
    if ok:
        assert from_dict(data).crm.salesforce.endpoint_url == endpoint
    else:
        with pytest.raises(ConfigError, match="endpoint_url"):
            from_dict(data)
