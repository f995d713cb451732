"""The shipped unit file passes systemd's own lint and hardening analysis."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "mailsync.service"

# CI must lint the unit for real; elsewhere a missing analyzer only skips.
pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and not os.environ.get("CI"),
    reason="systemd-analyze not installed (apt-get install systemd)",
)


def local_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an existing binary (verify checks
    that the executable exists); everything else unchanged."""
    text = UNIT.read_text()
    assert "ExecStart=/opt/mailsync/venv/bin/mailsync run" in text
    text = text.replace("/opt/mailsync/venv/bin/mailsync", str(Path(sys.executable)))
    out = tmp_path / "mailsync.service"
    out.write_text(text)
    return out


def test_unit_verifies_without_any_warning(tmp_path):
    unit = local_unit(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--generators=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on unknown keys and bad values; they only show on stderr.
    assert (result.returncode, result.stderr) == (0, "")


def test_unit_exposure_score_at_most_2(tmp_path):
    unit = local_unit(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    assert float(match.group(1)) <= 2.0


def test_unit_has_the_required_settings():
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=120",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=mailsync",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=",
        "LoadCredential=imap-password:/etc/mailsync/credentials/imap-password",
    ):
        assert line in text.splitlines(), line


def test_unit_does_not_restart_on_a_config_error():
    # exit 2 = configuration error (contract section 1): a restart cannot fix it
    assert "RestartPreventExitStatus=2" in UNIT.read_text().splitlines()


# Every config key that names a secret file (config.py), and its credential.
SECRET_FILE_KEYS = {
    ("source.imap", "password_file"),
    ("source.imap", "ms365_secret_file"),
    ("source.imap", "ms365_certificate_file"),
    ("crm.salesforce", "password_file"),
    ("crm.salesforce", "security_token_file"),
    ("crm.salesforce", "consumer_secret_file"),
    ("crm.salesforce", "private_key_file"),
}


def _readme_credentials() -> dict[str, tuple[str, str]]:
    """credential name -> (table, key) from the README's credentials table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| `([a-z0-9-]+)` \| `\[([a-z.]+)\] ([a-z0-9_]+)` \|", readme, re.M
    )
    return {name: (table, key) for name, table, key in rows}


def _script_credentials() -> set[str]:
    script = (ROOT / "systemd" / "credentials-setup.sh").read_text()
    names: set[str] = set()
    for var in ("SECRETS", "KEYFILES"):
        match = re.search(rf'^{var}="([^"]*)"$', script, re.M)
        assert match, var
        names.update(match.group(1).split())
    return names


def test_credentials_agree_in_unit_script_and_readme():
    """The unit loads, the setup script creates and the README documents the
    same credential files, one for every secret-file key the config has."""
    unit = {
        m.group(1): m.group(2)
        for m in re.finditer(
            r"^LoadCredential=([^:\s]+):(\S+)$", UNIT.read_text(), re.M
        )
    }
    for name, path in unit.items():
        assert path == f"/etc/mailsync/credentials/{name}", (name, path)
    readme = _readme_credentials()
    assert set(readme.values()) == SECRET_FILE_KEYS
    assert set(unit) == set(readme) == _script_credentials()
    assert len(unit) == len(SECRET_FILE_KEYS)


def test_every_secret_file_key_is_a_config_key():
    """SECRET_FILE_KEYS follows config.py: each key exists, and no *_file secret
    key of the config is missing from it."""
    from mailsync.config import ImapSettings, SalesforceSettings

    fields = {
        "source.imap": set(ImapSettings.__dataclass_fields__),
        "crm.salesforce": set(SalesforceSettings.__dataclass_fields__),
    }
    for table, key in SECRET_FILE_KEYS:
        assert key in fields[table], (table, key)
    secret_files = {
        (table, key)
        for table, keys in fields.items()
        for key in keys
        if key.endswith("_file") and key != "ca_file"
    }
    assert secret_files == SECRET_FILE_KEYS
