"""Connecting and logging in to an IMAP server.

TLS: ``implicit`` (IMAPS), ``starttls`` or ``none`` (config.py allows none only
on loopback). Certificates are verified against the system store or
``ca_file``; ``verify_certificate = false`` exists for lab servers only.
Connect and read timeouts are always set: IMAPClient's default is no timeout.

Auth: ``password`` (from ``password_env`` / ``password_file``) or ``xoauth2``
with an access token from ``token_command`` (its stdout, like isync's
PassCmd; covers Gmail) or from Microsoft 365 client credentials via MSAL
(scope ``https://outlook.office365.com/.default``; see Microsoft's "Authenticate
an IMAP, POP or SMTP connection using OAuth"). A fresh token is fetched before
every connect, since neither IMAPClient nor the server refreshes it.
Secrets and tokens are never logged or put in error messages.
"""

from __future__ import annotations

import logging
import shlex
import ssl
import subprocess
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from imapclient.imapclient import SocketTimeout

from mailsync.config import ImapSettings, read_secret
from mailsync.errors import ConfigError, TransientError
from mailsync.log import kv
from mailsync.neterrors import describe, server_text

log = logging.getLogger(__name__)

MS365_SCOPE = "https://outlook.office365.com/.default"


class AuthError(TransientError):
    """The server refused the credentials (retried with a long backoff, since
    an admin may fix the password or the grant while the daemon runs)."""


def ssl_context(settings: ImapSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=settings.ca_file or None)
    if not settings.verify_certificate:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def token_from_command(settings: ImapSettings) -> str:
    """Run `token_command` and return its stripped stdout (the access token)."""
    what = f"[source.imap] token_command for {settings.name}"
    try:
        proc = subprocess.run(
            shlex.split(settings.token_command),
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, ValueError) as err:
        raise ConfigError(f"{what} cannot be run: {err}") from None
    except subprocess.TimeoutExpired:
        raise TransientError(f"{what} did not finish within 60 s") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise TransientError(
            f"{what} exited with {proc.returncode}: {' '.join(tail)[:200]}"
        )
    token = proc.stdout.decode().strip()
    if not token:
        raise TransientError(f"{what} printed no token")
    return token


def token_from_ms365(settings: ImapSettings) -> str:
    """Client-credentials token for Exchange Online (app permission
    IMAP.AccessAsApp), with a client secret or a certificate."""
    import msal

    if not (settings.ms365_tenant and settings.ms365_client_id):
        raise ConfigError(
            "[source.imap] ms365_tenant and ms365_client_id are both required "
            "for Microsoft 365 client credentials"
        )
    credential: Any
    if settings.ms365_certificate_file:
        if not settings.ms365_certificate_thumbprint:
            raise ConfigError(
                "[source.imap] ms365_certificate_thumbprint is required with "
                "ms365_certificate_file"
            )
        pem = read_secret(
            env="",
            file=settings.ms365_certificate_file,
            what="[source.imap] ms365_certificate_file",
        )
        credential = {
            "private_key": pem,
            "thumbprint": settings.ms365_certificate_thumbprint,
        }
    else:
        credential = read_secret(
            env=settings.ms365_secret_env,
            file=settings.ms365_secret_file,
            what="[source.imap] ms365_secret",
        )
    try:
        app = msal.ConfidentialClientApplication(
            settings.ms365_client_id,
            authority=f"https://login.microsoftonline.com/{settings.ms365_tenant}",
            client_credential=credential,
        )
        result = app.acquire_token_for_client(scopes=[MS365_SCOPE])
    except (OSError, ValueError) as err:
        raise TransientError(f"Microsoft 365 token request failed: {err}") from None
    token = result.get("access_token") if isinstance(result, dict) else None
    if not token:
        desc = result.get("error_description") or result.get("error") or "no token"
        raise AuthError(f"Microsoft 365 token request refused: {str(desc)[:200]}")
    return str(token)


def access_token(settings: ImapSettings) -> str:
    if settings.token_command:
        return token_from_command(settings)
    if settings.ms365_client_id or settings.ms365_tenant:
        return token_from_ms365(settings)
    raise ConfigError(
        f'[source.imap] auth = "xoauth2" for {settings.name} needs token_command '
        "or ms365_tenant + ms365_client_id"
    )


def connect(settings: ImapSettings) -> IMAPClient:
    """A logged-in client. Raise `AuthError` for refused credentials,
    `TransientError` when the server cannot be reached, `ConfigError` when a
    secret is missing."""
    if settings.auth == "password":
        secret = read_secret(
            env=settings.password_env,
            file=settings.password_file,
            what=f"[source.imap] password for {settings.name}",
        )
    else:
        secret = access_token(settings)
    timeout = SocketTimeout(
        connect=settings.connect_timeout, read=settings.read_timeout
    )
    where = f"{settings.host}:{settings.port}"
    client: IMAPClient | None = None
    name = f"imap:{settings.name}"
    log.debug("connecting", extra=kv(source=name, host=where, tls=settings.tls))
    try:
        client = IMAPClient(
            settings.host,
            port=settings.port,
            ssl=settings.tls == "implicit",
            ssl_context=ssl_context(settings),
            timeout=timeout,
        )
        if settings.tls == "starttls":
            log.debug("STARTTLS", extra=kv(source=name))
            client.starttls(ssl_context(settings))
        log.debug(
            "LOGIN" if settings.auth == "password" else "AUTHENTICATE XOAUTH2",
            extra=kv(source=name, username=settings.username),
        )
        if settings.auth == "password":
            client.login(settings.username, secret)
        else:
            client.oauth2_login(settings.username, secret)
    except LoginError as err:
        _close(client)
        text = server_text(err.args[0] if err.args else err)
        raise AuthError(
            f"IMAP login to {where} as {settings.username} refused ({text});"
            " check the password/token and [source.imap] username"
        ) from None
    except ssl.SSLCertVerificationError as err:
        _close(client)
        raise TransientError(
            f"TLS certificate of {where} not trusted ({err.verify_message}); set "
            "[source.imap] ca_file to the server's CA"
        ) from None
    except OSError as err:
        _close(client)
        reason = describe(
            err, "check [source.imap] tls and port (implicit: 993, starttls: 143)"
        )
        raise TransientError(f"cannot reach IMAP server {where}: {reason}") from None
    except IMAPClient.Error as err:
        _close(client)
        raise TransientError(
            f"IMAP server {where} refused the session: {server_text(err)}"
        ) from None
    log.debug("logged in", extra=kv(source=name, host=where))
    return client


def _close(client: IMAPClient | None) -> None:
    if client is None:
        return
    try:
        client.shutdown()
    except Exception:  # already broken; nothing else to release
        pass
