"""Connecting to Salesforce: the HTTP session and the login arguments.

simple-salesforce 1.12 builds every URL itself (``https://{domain}.salesforce.com``
for login, ``https://{instance}`` for REST), so a proxy or a local emulator
cannot be reached by changing a base URL. Instead mailsync hands the client a
`requests.Session` whose transport adapter:

- rewrites the scheme and host of every request to ``[crm.salesforce]
  endpoint_url`` when it is set (login, token, REST and re-login alike), and
- decides the proxy for the *rewritten* URL: requests picks proxies from
  ``HTTPS_PROXY`` / ``NO_PROXY`` for the URL the client addressed
  (``login.salesforce.com``) before the adapter runs, so without this a
  loopback ``endpoint_url`` listed in ``NO_PROXY`` would still receive the
  login (password and token) through the proxy;
- applies the configured timeout to every request, because simple-salesforce's
  DML calls take no ``timeout`` argument and would otherwise wait forever on a
  hung connection.

`login_arguments` turns the settings into the keyword arguments of
`simple_salesforce.Salesforce` for the three supported auth modes; secrets are
read through `mailsync.config.read_secret` (environment variable or file, with
``$CREDENTIALS_DIRECTORY`` for systemd credentials) and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

from mailsync.config import SalesforceSettings, read_secret
from mailsync.errors import ConfigError

#: The domains simple-salesforce treats as the generic login hosts; the OAuth
#: client credentials flow needs the org's own My Domain instead.
GENERIC_DOMAINS = ("login", "test")


class SalesforceAdapter(HTTPAdapter):
    """Transport adapter: default timeout and optional endpoint rewrite.

    ``endpoint`` is ``""`` (send requests where the client addressed them) or a
    base URL such as ``http://127.0.0.1:8080``; its scheme and host replace the
    request's, and its path (if any) is put in front of the request path.
    """

    def __init__(
        self,
        *,
        endpoint: str = "",
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__()
        self.endpoint = urlsplit(endpoint) if endpoint else None
        self.timeout = timeout
        # the session's own proxies and trust_env decide, as requests would
        self.session = session

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        if self.endpoint is not None and request.url:
            url = urlsplit(request.url)
            prefix = self.endpoint.path.rstrip("/")
            request.url = urlunsplit(
                (
                    self.endpoint.scheme,
                    self.endpoint.netloc,
                    prefix + url.path,
                    url.query,
                    "",
                )
            )
            kwargs["proxies"] = self.proxies_for(request.url)
        return super().send(request, **kwargs)

    def proxies_for(self, url: str) -> dict[str, str]:
        """The proxies requests would choose for `url` itself (as
        `Session.merge_environment_settings` does): the session's configured
        ones, plus the environment's when the session trusts it and
        ``NO_PROXY`` (or a ``no_proxy`` entry) does not cover `url`."""
        configured = dict(self.session.proxies) if self.session is not None else {}
        trust_env = self.session.trust_env if self.session is not None else True
        if trust_env:
            no_proxy = configured.get("no_proxy")
            for key, value in get_environ_proxies(url, no_proxy=no_proxy).items():
                configured.setdefault(key, value)
        return configured


def build_session(
    settings: SalesforceSettings, session: requests.Session | None = None
) -> requests.Session:
    """Return `session` (or a new one) with the mailsync adapter mounted on
    ``https://`` and ``http://``."""
    session = session or requests.Session()
    adapter = SalesforceAdapter(
        endpoint=settings.endpoint_url, timeout=settings.timeout, session=session
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def login_arguments(settings: SalesforceSettings) -> dict[str, Any]:
    """Keyword arguments for `simple_salesforce.Salesforce` (without
    ``session``), or raise `ConfigError` naming the missing key."""
    common: dict[str, Any] = {
        "version": settings.api_version,
        "domain": settings.domain or "login",
    }
    if settings.auth == "password":
        _need(settings.username, "username", "the integration user's login")
        return {
            **common,
            "username": settings.username,
            "password": read_secret(
                env=settings.password_env,
                file=settings.password_file,
                what="[crm.salesforce] password",
            ),
            # An org that trusts the daemon's IP range needs no token; an
            # empty token is what Salesforce expects then.
            "security_token": _optional_secret(
                settings.security_token_env,
                settings.security_token_file,
                "[crm.salesforce] security_token",
            ),
        }
    if settings.auth == "client_credentials":
        _need(settings.consumer_key, "consumer_key", "the connected app's key")
        if common["domain"] in GENERIC_DOMAINS:
            raise ConfigError(
                "[crm.salesforce] domain: the client_credentials flow needs the "
                'org\'s My Domain (for example "mycorp.my"), not '
                f"{common['domain']!r}"
            )
        return {
            **common,
            "consumer_key": settings.consumer_key,
            "consumer_secret": _consumer_secret(settings),
        }
    # jwt: the private key signs the assertion; the connected app holds the
    # matching certificate (help.salesforce.com: remoteaccess_oauth_jwt_flow).
    _need(settings.username, "username", "the integration user's login")
    _need(settings.consumer_key, "consumer_key", "the connected app's key")
    _need(settings.private_key_file, "private_key_file", "the JWT signing key")
    return {
        **common,
        "username": settings.username,
        "consumer_key": settings.consumer_key,
        "privatekey": read_secret(
            env="",
            file=settings.private_key_file,
            what="[crm.salesforce] private_key_file",
        ),
    }


def _consumer_secret(settings: SalesforceSettings) -> str:
    return read_secret(
        env=settings.consumer_secret_env,
        file=settings.consumer_secret_file,
        what="[crm.salesforce] consumer_secret",
    )


def _optional_secret(env: str, file: str, what: str) -> str:
    if not file and env:
        return os.environ.get(env, "")
    return read_secret(env=env, file=file, what=what)


def _need(value: str, key: str, meaning: str) -> None:
    if not value:
        raise ConfigError(f"[crm.salesforce] {key}: required: {meaning}")


def redact(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """`arguments` with secret values replaced, for debug logging."""
    secret = {"password", "security_token", "consumer_secret", "privatekey"}
    return {k: ("***" if k in secret else v) for k, v in arguments.items()}
