"""Start-up checks that need no network: every configured secret is there.

`check_secrets(settings)` reads each secret the configuration names (IMAP
password, Microsoft 365 secret or certificate, the Salesforce secrets of the
chosen auth mode) exactly as the sources and the CRM will, and raises one
`ConfigError` (exit 2) listing every one that is missing or empty. `mailsync
run` calls it before any processing, so a missing secret stops the start
instead of failing each pass (or retrying a login forever). The values are
read and dropped; they never appear in a message.
"""

from __future__ import annotations

from mailsync.config import ImapSettings, Settings, read_secret
from mailsync.errors import ConfigError


def _imap_secret(imap: ImapSettings) -> tuple[str, str, str] | None:
    """(env, file, what) of the one secret a mailbox logs in with, if any."""
    if imap.auth == "password":
        what = f"[source.imap] password for {imap.name}"
        return imap.password_env, imap.password_file, what
    if imap.token_command or not (imap.ms365_tenant or imap.ms365_client_id):
        return None  # the command's own business, or a config error later
    if imap.ms365_certificate_file:
        what = "[source.imap] ms365_certificate_file"
        return "", imap.ms365_certificate_file, what
    return imap.ms365_secret_env, imap.ms365_secret_file, "[source.imap] ms365_secret"


def check_secrets(settings: Settings) -> None:
    """Raise `ConfigError` naming every configured secret that cannot be read."""
    problems: list[str] = []
    for imap in settings.imap:
        secret = _imap_secret(imap)
        if secret is None:
            continue
        env, file, what = secret
        try:
            read_secret(env=env, file=file, what=what)
        except ConfigError as err:
            problems.append(str(err))
    if settings.crm.backend == "salesforce":
        from mailsync.crm.salesforce.auth import login_arguments

        try:
            login_arguments(settings.crm.salesforce)
        except ConfigError as err:
            problems.append(str(err))
    if problems:
        raise ConfigError("; ".join(problems))
