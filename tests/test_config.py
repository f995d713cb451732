"""config/mailsync.example.toml is valid, complete and shows the defaults;
the embedded default config keeps working."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, run_mailsync

from mailsync import config
from mailsync.errors import ConfigError

EXAMPLE = ROOT / "config" / "mailsync.example.toml"

#: dataclass -> (TOML table in the example, fields that are not plain keys)
TABLES: dict[type, tuple[str, set[str]]] = {
    config.StateSettings: ("state", set()),
    config.ImapSettings: ("source.imap", set()),
    config.MaildirSettings: ("source.maildir", set()),
    config.SqsSettings: ("source.sqs", set()),
    config.SddsSettings: ("source.sdds", {"path", "folders"}),
    config.SecuritySettings: ("security", set()),
    config.CrmSettings: ("crm", {"sqlite_path", "salesforce"}),
    config.SalesforceSettings: ("crm.salesforce", set()),
    config.EnrichmentSettings: ("enrichment", set()),
    config.LogSettings: ("log", set()),
    config.MetricsSettings: ("metrics", set()),
}
#: keys the example fills with a sample value instead of the default
REQUIRED = {
    "host",
    "username",
    "queue_url",
    "bucket",
    "path",
    "name",
    "port",
    "tls",
    "password_env",
}


def table(data: dict[str, Any], dotted: str) -> dict[str, Any]:
    for part in dotted.split("."):
        data = data[part]
    return data


def test_example_is_valid():
    data = tomllib.loads(EXAMPLE.read_text())
    settings = config.from_dict(data, path=EXAMPLE)
    assert settings.imap[0].host == "imap.example.com"
    assert settings.maildir[0].path == Path("examples/inbox")
    assert settings.sqs is not None and settings.sqs.region == "us-east-1"
    assert settings.crm.sqlite_path == Path("var/crm.sqlite3")


def test_example_has_every_key_with_its_default():
    data = tomllib.loads(EXAMPLE.read_text())
    for cls, (name, special) in TABLES.items():
        section = table(data, name)
        for f in dataclasses.fields(cls):
            if f.name in special:
                continue
            assert f.name in section, f"[{name}] {f.name} missing from the example"
            if f.name in REQUIRED or f.default is dataclasses.MISSING:
                continue
            default = f.default
            value = section[f.name]
            if isinstance(default, tuple):
                value = tuple(value)
            if isinstance(default, Path):
                value = Path(value)
            assert value == default, f"[{name}] {f.name}: {value!r} != {default!r}"
    assert table(data, "crm.sqlite")["path"] == "var/crm.sqlite3"
    assert "mapping" in table(data, "crm.salesforce")
    assert set(data["source"]) == {"imap", "maildir", "sqs", "sdds"}
    assert tuple(table(data, "source.sdds")["folders"].items()) == (
        config.SddsSettings.folders
    )


def test_embedded_default_config_runs(tmp_path):
    result = run_mailsync("check", "--config", str(ROOT / "config" / "mailsync.toml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   maildir:examples/inbox: folder with" in result.stdout


def test_sdds_needs_a_bucket_or_a_path_and_known_folder_keys():
    with pytest.raises(ConfigError, match=r"\[source.sdds\] bucket: required"):
        config.from_dict({"source": {"sdds": {"prefix": "x/"}}})
    with pytest.raises(ConfigError, match=r"not both"):
        config.from_dict({"source": {"sdds": {"bucket": "b", "path": "p"}}})
    with pytest.raises(
        ConfigError, match=r"\[source.sdds.folders\] unknown key 'billing'"
    ):
        config.from_dict(
            {"source": {"sdds": {"bucket": "b", "folders": {"billing": "x"}}}}
        )
    s = config.from_dict(
        {"source": {"sdds": {"bucket": "b", "folders": {"account": "acct_v2"}}}}
    )
    assert s.sdds is not None and s.sdds.folder("account") == "acct_v2"
