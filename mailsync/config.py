"""Configuration: one TOML file read into frozen, typed settings.

`load(path)` returns a `Settings` or raises `ConfigError` naming the bad key
(for example ``[source.imap] port: expected an integer, got "abc"``). Relative
paths in the file are resolved against the current directory. Secrets are never
read from the file: only the *names* of environment variables or files are.
Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from mailsync.errors import ConfigError

DEFAULT_CONFIG = "config/mailsync.toml"
SYSTEM_CONFIG = "/etc/mailsync/mailsync.toml"
T = TypeVar("T")


class _Section:
    """Typed reads from one TOML table, with errors that name the key."""

    def __init__(self, name: str, data: Mapping[str, Any]) -> None:
        self.name = name
        self.data = dict(data)
        self.used: set[str] = set()

    def _get(self, key: str, default: Any, typ: type | tuple[type, ...]) -> Any:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) and typ is int:
            raise self.error(key, f"expected an integer, got {value!r}")
        if not isinstance(value, typ):
            want = (
                typ.__name__
                if isinstance(typ, type)
                else "/".join(t.__name__ for t in typ)
            )
            raise self.error(key, f"expected {want}, got {value!r}")
        return value

    def text(self, key: str, default: str = "") -> str:
        return str(self._get(key, default, str))

    def integer(self, key: str, default: int) -> int:
        return int(self._get(key, default, int))

    def number(self, key: str, default: float) -> float:
        return float(self._get(key, default, (int, float)))

    def flag(self, key: str, default: bool) -> bool:
        return bool(self._get(key, default, bool))

    def texts(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key, list(default), list)
        if not all(isinstance(v, str) for v in value):
            raise self.error(key, "expected a list of strings")
        return tuple(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def table(self, key: str) -> dict[str, Any]:
        return dict(self._get(key, {}, dict))

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"[{self.name}] {key}: {message}")

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(
                f"[{self.name}] unknown key {unknown[0]!r}; check the spelling "
                "against config/mailsync.example.toml"
            )


@dataclass(frozen=True)
class StateSettings:
    path: Path = Path("var/state.sqlite3")


@dataclass(frozen=True)
class ImapSettings:
    name: str
    host: str
    port: int
    tls: str  # implicit | starttls | none
    username: str
    folder: str = "INBOX"
    password_env: str = ""
    password_file: str = ""
    auth: str = "password"  # password | xoauth2
    token_command: str = ""  # prints an OAuth2 access token
    ms365_tenant: str = ""  # built-in Microsoft 365 client credentials
    ms365_client_id: str = ""
    ms365_secret_env: str = ""
    ms365_secret_file: str = ""
    ms365_certificate_file: str = ""
    ms365_certificate_thumbprint: str = ""
    ca_file: str = ""
    verify_certificate: bool = True
    connect_timeout: float = 30.0
    read_timeout: float = 120.0
    idle: bool = True
    idle_renew_seconds: int = 540
    poll_interval: int = 300
    batch_size: int = 100
    batch_bytes: int = 20_000_000
    processed_keyword: str = "$MailsyncProcessed"
    processed_folder: str = ""
    quarantine_folder: str = ""


@dataclass(frozen=True)
class MaildirSettings:
    path: Path
    poll_interval: int = 60


@dataclass(frozen=True)
class SqsSettings:
    queue_url: str
    region: str = "us-east-1"
    endpoint_url: str = ""
    raw_delivery: bool = False
    verify_signatures: bool = True
    topic_arns: tuple[str, ...] = ()
    eventbridge_sources: tuple[str, ...] = (
        "aws.agreement-marketplace",
        "aws.marketplacecatalog",
        "aws.marketplace",
    )
    eventbridge_accounts: tuple[str, ...] = ()
    wait_time_seconds: int = 20
    visibility_timeout: int = 120
    max_receives: int = 5
    poll_interval: int = 1
    max_message_age_days: int = 30  # older SNS Timestamps are stale; 0 = off


@dataclass(frozen=True)
class AgreementsSettings:
    """`[source.agreements]`: the Agreement API poller (contract section 6)."""

    region: str = "us-east-1"
    endpoint_url: str = ""
    poll_interval: int = 3600
    since: str = ""  #: YYYY-MM-DD; "" = every agreement
    role: str = "isv"  #: "isv" | "channel_partner"
    names: bool = False  #: offer / product names from DescribeEntity
    overlap_seconds: int = 300  #: re-read this much before the cursor


@dataclass(frozen=True)
class SddsSettings:
    """`[source.sdds]`: the Seller Data Feeds bucket (contract section 7)."""

    bucket: str = ""
    #: instead of `bucket`: a local folder laid out like the bucket (a copy
    #: kept by other means, the bundled demo); read like `mailsync import`
    path: Path | None = None
    prefix: str = ""
    region: str = "us-east-1"
    endpoint_url: str = ""
    poll_interval: int = 3600
    #: logical feed -> folder name in the bucket
    folders: tuple[tuple[str, str], ...] = (
        ("billing_event", "billingeventfeed_v1"),
        ("agreements", "agreementfeed_v1"),
        ("account", "accountfeed_v1"),
    )

    def folder(self, feed: str) -> str:
        return dict(self.folders)[feed]


@dataclass(frozen=True)
class SecuritySettings:
    require_dkim: bool = True
    allowed_sender_domains: tuple[str, ...] = ("marketplace.aws", "aws.com")
    dns_servers: tuple[str, ...] = ()
    dns_timeout: float = 5.0
    sns_certificate_dir: str = ""
    forwarded: str = "reject"  # reject | accept_unverified
    internal_forwarders: tuple[str, ...] = ()
    max_message_bytes: int = 10_000_000
    parse_timeout_seconds: float = 10.0
    #: when set, a verified email must be addressed (signed To/Cc) to one of these
    expected_recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class SalesforceSettings:
    auth: str = "password"  # password | client_credentials | jwt
    username: str = ""
    password_env: str = "MAILSYNC_SF_PASSWORD"
    password_file: str = ""
    security_token_env: str = "MAILSYNC_SF_TOKEN"
    security_token_file: str = ""
    consumer_key: str = ""
    consumer_secret_env: str = "MAILSYNC_SF_CONSUMER_SECRET"
    consumer_secret_file: str = ""
    private_key_file: str = ""
    domain: str = "login"
    endpoint_url: str = ""
    api_version: str = "59.0"
    timeout: float = 30.0
    batch_size: int = 200
    max_relogins: int = 3
    opportunity_stage: str = ""  # "" = do not touch Opportunities
    mapping: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CrmSettings:
    backend: str = "sqlite"
    sqlite_path: Path = Path("var/crm.sqlite3")
    salesforce: SalesforceSettings = field(default_factory=SalesforceSettings)
    flush_interval: int = 30
    #: new events flush this many seconds after the last of a burst
    flush_debounce: float = 0.5
    pause_seconds: int = 1800  # CRM writes pause this long after an API limit


@dataclass(frozen=True)
class EnrichmentSettings:
    enabled: bool = False
    region: str = "us-east-1"
    endpoint_url: str = ""


@dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"
    format: str = "text"  # text | json


@dataclass(frozen=True)
class MetricsSettings:
    enabled: bool = False
    listen: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True)
class Settings:
    path: Path | None
    state: StateSettings = field(default_factory=StateSettings)
    imap: tuple[ImapSettings, ...] = ()
    maildir: tuple[MaildirSettings, ...] = ()
    sqs: SqsSettings | None = None
    agreements: AgreementsSettings | None = None
    sdds: SddsSettings | None = None
    security: SecuritySettings = field(default_factory=SecuritySettings)
    crm: CrmSettings = field(default_factory=CrmSettings)
    enrichment: EnrichmentSettings = field(default_factory=EnrichmentSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


def locate(given: Path | None = None) -> tuple[Path, str]:
    """The config file to use and why, like other system daemons: `given`
    (``--config``), else `$MAILSYNC_CONFIG`, else ``./config/mailsync.toml``
    when it exists, else ``/etc/mailsync/mailsync.toml``."""
    if given is not None:
        return given, "--config"
    env = os.environ.get("MAILSYNC_CONFIG")
    if env:
        return Path(env), "$MAILSYNC_CONFIG"
    local = Path(DEFAULT_CONFIG)
    if local.is_file():
        return local, "the current directory"
    return Path(SYSTEM_CONFIG), "the system default"


def default_path() -> Path:
    """The config file when no ``--config`` is given (see `locate`)."""
    return locate(None)[0]


def load(path: Path | None = None) -> Settings:
    """Read and validate the config file; raise `ConfigError` naming the key."""
    path = path or default_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found; copy config/mailsync.example.toml "
            "there or pass --config PATH"
        ) from None
    except OSError as err:
        raise ConfigError(
            f"config file {path} cannot be read: {err.strerror}"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    return from_dict(data, path=path)


def from_dict(data: Mapping[str, Any], *, path: Path | None = None) -> Settings:
    """Build `Settings` from parsed TOML (used by `load` and by tests)."""
    top = _Section("top level", data)
    state = _state(_Section("state", top.table("state")))
    sources = _Section("source", top.table("source"))
    imap = _imaps(sources)
    maildir = _maildirs(sources)
    sqs_table = sources.table("sqs")
    sqs = _sqs(_Section("source.sqs", sqs_table)) if sqs_table else None
    agreements = None
    if "agreements" in sources.data:
        table = sources.table("agreements")
        agreements = _agreements(_Section("source.agreements", table))
    sdds_table = sources.table("sdds")
    sdds = _sdds(_Section("source.sdds", sdds_table)) if sdds_table else None
    sources.finish()
    security = _security(_Section("security", top.table("security")))
    crm = _crm(_Section("crm", top.table("crm")))
    enrichment = _enrichment(_Section("enrichment", top.table("enrichment")))
    log = _log(_Section("log", top.table("log")))
    metrics = _metrics(_Section("metrics", top.table("metrics")))
    top.finish()
    return Settings(
        path=path,
        state=state,
        imap=imap,
        maildir=maildir,
        sqs=sqs,
        agreements=agreements,
        sdds=sdds,
        security=security,
        crm=crm,
        enrichment=enrichment,
        log=log,
        metrics=metrics,
    )


def _state(s: _Section) -> StateSettings:
    out = StateSettings(path=Path(s.text("path", "var/state.sqlite3")))
    s.finish()
    return out


def _as_tables(sources: _Section, key: str) -> list[dict[str, Any]]:
    sources.used.add(key)
    value = sources.data.get(key)
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return list(value)
    raise sources.error(key, f"expected a table [source.{key}] or [[source.{key}]]")


def _imaps(sources: _Section) -> tuple[ImapSettings, ...]:
    out = []
    for i, table in enumerate(_as_tables(sources, "imap")):
        s = _Section("source.imap", table)
        host = s.text("host")
        if not host:
            raise s.error("host", "required: the IMAP server's host name")
        tls = s.choice("tls", "implicit", ("implicit", "starttls", "none"))
        if (
            tls == "none"
            and host not in ("localhost", "::1")
            and not host.startswith("127.")
        ):
            raise s.error(
                "tls",
                '"none" sends the password in clear text and is only allowed '
                'for a loopback host; use "implicit" or "starttls"',
            )
        username = s.text("username")
        if not username:
            raise s.error("username", "required: the mailbox login name")
        if "password" in s.data:
            raise s.error(
                "password",
                "secrets are not read from the config file; set password_env "
                "(an environment variable name) or password_file",
            )
        default_port = 993 if tls == "implicit" else 143
        settings = ImapSettings(
            name=s.text("name", f"imap{i}" if i else "imap"),
            host=host,
            port=s.integer("port", default_port),
            tls=tls,
            username=username,
            folder=s.text("folder", "INBOX"),
            password_env=s.text("password_env"),
            password_file=s.text("password_file"),
            auth=s.choice("auth", "password", ("password", "xoauth2")),
            token_command=s.text("token_command"),
            ms365_tenant=s.text("ms365_tenant"),
            ms365_client_id=s.text("ms365_client_id"),
            ms365_secret_env=s.text("ms365_secret_env"),
            ms365_secret_file=s.text("ms365_secret_file"),
            ms365_certificate_file=s.text("ms365_certificate_file"),
            ms365_certificate_thumbprint=s.text("ms365_certificate_thumbprint"),
            ca_file=s.text("ca_file"),
            verify_certificate=s.flag("verify_certificate", True),
            connect_timeout=s.number("connect_timeout", 30.0),
            read_timeout=s.number("read_timeout", 120.0),
            idle=s.flag("idle", True),
            idle_renew_seconds=s.integer("idle_renew_seconds", 540),
            poll_interval=s.integer("poll_interval", 300),
            batch_size=s.integer("batch_size", 100),
            batch_bytes=s.integer("batch_bytes", 20_000_000),
            processed_keyword=s.text("processed_keyword", "$MailsyncProcessed"),
            processed_folder=s.text("processed_folder"),
            quarantine_folder=s.text("quarantine_folder"),
        )
        if not 1 <= settings.batch_size <= 500:
            raise s.error("batch_size", "must be between 1 and 500")
        if settings.idle_renew_seconds > 600:
            raise s.error("idle_renew_seconds", "must be 600 or less (RFC 2177)")
        s.finish()
        out.append(settings)
    return tuple(out)


def _maildirs(sources: _Section) -> tuple[MaildirSettings, ...]:
    out = []
    for table in _as_tables(sources, "maildir"):
        s = _Section("source.maildir", table)
        path = s.text("path")
        if not path:
            raise s.error("path", "required: a folder of .eml files or a Maildir")
        out.append(MaildirSettings(Path(path), s.integer("poll_interval", 60)))
        s.finish()
    return tuple(out)


def _sqs(s: _Section) -> SqsSettings:
    queue_url = s.text("queue_url")
    if not queue_url:
        raise s.error("queue_url", "required: the SQS queue URL")
    out = SqsSettings(
        queue_url=queue_url,
        region=s.text("region", "us-east-1"),
        endpoint_url=s.text("endpoint_url"),
        raw_delivery=s.flag("raw_delivery", False),
        verify_signatures=s.flag("verify_signatures", True),
        topic_arns=s.texts("topic_arns"),
        eventbridge_sources=s.texts(
            "eventbridge_sources",
            ("aws.agreement-marketplace", "aws.marketplacecatalog", "aws.marketplace"),
        ),
        eventbridge_accounts=s.texts("eventbridge_accounts"),
        wait_time_seconds=s.integer("wait_time_seconds", 20),
        visibility_timeout=s.integer("visibility_timeout", 120),
        max_receives=s.integer("max_receives", 5),
        poll_interval=s.integer("poll_interval", 1),
        max_message_age_days=s.integer("max_message_age_days", 30),
    )
    if out.max_message_age_days < 0:
        raise s.error("max_message_age_days", "must be 0 (no limit) or more days")
    if not 0 <= out.wait_time_seconds <= 20:
        raise s.error("wait_time_seconds", "must be between 0 and 20 (SQS limit)")
    s.finish()
    return out


def _agreements(s: _Section) -> AgreementsSettings:
    since = s.text("since")
    if since:
        try:
            date.fromisoformat(since)
        except ValueError:
            raise s.error(
                "since", f'expected YYYY-MM-DD or "", got {since!r}'
            ) from None
    endpoint = s.text("endpoint_url")
    if endpoint and not endpoint.startswith(("https://", "http://")):
        raise s.error("endpoint_url", "must be an http(s):// URL, as in boto3")
    out = AgreementsSettings(
        region=s.text("region", "us-east-1"),
        endpoint_url=endpoint,
        poll_interval=s.integer("poll_interval", 3600),
        since=since,
        role=s.choice("role", "isv", ("isv", "channel_partner")),
        names=s.flag("names", False),
        overlap_seconds=s.integer("overlap_seconds", 300),
    )
    if out.poll_interval < 1:
        raise s.error("poll_interval", "must be at least 1 second")
    if not 0 <= out.overlap_seconds <= 86400:
        raise s.error("overlap_seconds", "must be between 0 and 86400")
    s.finish()
    return out


def _sdds(s: _Section) -> SddsSettings:
    bucket = s.text("bucket")
    local = s.text("path")
    if bool(bucket) == bool(local):
        raise s.error(
            "bucket",
            "required: the S3 bucket the Seller Data Feeds go to (or `path`, a "
            "local folder laid out like the bucket; not both)",
        )
    defaults = dict(SddsSettings.folders)
    f = _Section("source.sdds.folders", s.table("folders"))
    folders = tuple((k, f.text(k, v).strip("/")) for k, v in defaults.items())
    f.finish()
    if any(not v for _, v in folders):
        raise ConfigError("[source.sdds.folders]: a folder name cannot be empty")
    out = SddsSettings(
        bucket=bucket,
        path=Path(local) if local else None,
        prefix=s.text("prefix"),
        region=s.text("region", "us-east-1"),
        endpoint_url=s.text("endpoint_url"),
        poll_interval=s.integer("poll_interval", 3600),
        folders=folders,
    )
    if out.poll_interval < 1:
        raise s.error("poll_interval", "must be at least 1 (seconds)")
    s.finish()
    return out


def _security(s: _Section) -> SecuritySettings:
    out = SecuritySettings(
        require_dkim=s.flag("require_dkim", True),
        allowed_sender_domains=s.texts(
            "allowed_sender_domains", ("marketplace.aws", "aws.com")
        ),
        dns_servers=s.texts("dns_servers"),
        dns_timeout=s.number("dns_timeout", 5.0),
        sns_certificate_dir=s.text("sns_certificate_dir"),
        forwarded=s.choice("forwarded", "reject", ("reject", "accept_unverified")),
        internal_forwarders=s.texts("internal_forwarders"),
        max_message_bytes=s.integer("max_message_bytes", 10_000_000),
        parse_timeout_seconds=s.number("parse_timeout_seconds", 10.0),
        expected_recipients=s.texts("expected_recipients"),
    )
    if out.max_message_bytes <= 0:
        raise s.error("max_message_bytes", "must be a positive number of bytes")
    s.finish()
    return out


def _crm(s: _Section) -> CrmSettings:
    backend = s.choice("backend", "sqlite", ("sqlite", "salesforce"))
    sq = _Section("crm.sqlite", s.table("sqlite"))
    sqlite_path = Path(sq.text("path", "var/crm.sqlite3"))
    sq.finish()
    sf_table = s.table("salesforce")
    sf = _salesforce(_Section("crm.salesforce", sf_table))
    if backend == "salesforce" and not sf_table:
        raise s.error("backend", '"salesforce" needs a [crm.salesforce] table')
    out = CrmSettings(
        backend=backend,
        sqlite_path=sqlite_path,
        salesforce=sf,
        flush_interval=s.integer("flush_interval", 30),
        flush_debounce=s.number("flush_debounce", 0.5),
        pause_seconds=s.integer("pause_seconds", 1800),
    )
    if out.flush_interval < 1:
        raise s.error("flush_interval", "must be at least 1 (seconds)")
    if not 0 <= out.flush_debounce <= 60:
        raise s.error("flush_debounce", "must be between 0 and 60 (seconds)")
    s.finish()
    return out


def _salesforce(s: _Section) -> SalesforceSettings:
    endpoint = s.text("endpoint_url")
    if endpoint.startswith("http://"):
        host = endpoint[len("http://") :].split("/")[0].rsplit(":", 1)[0]
        if host not in ("localhost", "[::1]") and not host.startswith("127."):
            raise s.error("endpoint_url", "http:// is only allowed for a loopback host")
    elif endpoint and not endpoint.startswith("https://"):
        raise s.error(
            "endpoint_url", "must start with https:// (or http:// on loopback)"
        )
    for secret in ("password", "security_token", "consumer_secret"):
        if secret in s.data:
            raise s.error(
                secret,
                f"secrets are not read from the config file; set {secret}_env "
                f"or {secret}_file",
            )
    out = SalesforceSettings(
        auth=s.choice("auth", "password", ("password", "client_credentials", "jwt")),
        username=s.text("username"),
        password_env=s.text("password_env", "MAILSYNC_SF_PASSWORD"),
        password_file=s.text("password_file"),
        security_token_env=s.text("security_token_env", "MAILSYNC_SF_TOKEN"),
        security_token_file=s.text("security_token_file"),
        consumer_key=s.text("consumer_key"),
        consumer_secret_env=s.text(
            "consumer_secret_env", "MAILSYNC_SF_CONSUMER_SECRET"
        ),
        consumer_secret_file=s.text("consumer_secret_file"),
        private_key_file=s.text("private_key_file"),
        domain=s.text("domain", "login"),
        endpoint_url=endpoint,
        api_version=s.text("api_version", "59.0"),
        timeout=s.number("timeout", 30.0),
        batch_size=s.integer("batch_size", 200),
        max_relogins=s.integer("max_relogins", 3),
        opportunity_stage=s.text("opportunity_stage"),
        mapping=s.table("mapping"),
    )
    if not 1 <= out.batch_size <= 200:
        raise s.error("batch_size", "must be between 1 and 200 (sObject Collections)")
    s.finish()
    return out


def _enrichment(s: _Section) -> EnrichmentSettings:
    out = EnrichmentSettings(
        enabled=s.flag("enabled", False),
        region=s.text("region", "us-east-1"),
        endpoint_url=s.text("endpoint_url"),
    )
    s.finish()
    return out


def _log(s: _Section) -> LogSettings:
    out = LogSettings(
        level=s.choice("level", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        format=s.choice("format", "text", ("text", "json")),
    )
    s.finish()
    return out


def _metrics(s: _Section) -> MetricsSettings:
    out = MetricsSettings(
        enabled=s.flag("enabled", False),
        listen=s.text("listen", "127.0.0.1"),
        port=s.integer("port", 9464),
    )
    s.finish()
    return out


def read_secret(*, env: str, file: str, what: str) -> str:
    """Return a secret from the environment variable `env` or the file `file`.

    A relative `file` is looked up in `$CREDENTIALS_DIRECTORY` first (systemd
    `LoadCredential=`), then in the current directory. Raise `ConfigError`
    saying which to set when neither yields a value, naming every place looked
    in; an empty file is an error naming the file. The secret itself never
    appears in a message.
    """
    if file:
        candidates = [Path(file)]
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if cred_dir and not Path(file).is_absolute():
            candidates.insert(0, Path(cred_dir) / file)
        for candidate in candidates:
            if candidate.is_file():
                try:
                    value = candidate.read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError) as err:
                    reason = getattr(err, "strerror", None) or "not UTF-8 text"
                    raise ConfigError(
                        f"{what}: secret file {candidate} cannot be read: {reason}"
                    ) from None
                if not value:
                    raise ConfigError(
                        f"{what}: secret file {candidate} is empty; write the "
                        "secret into it"
                    )
                return value
        looked = " and ".join(str(c.absolute()) for c in candidates)
        hint = (
            ""
            if cred_dir or Path(file).is_absolute()
            else " ($CREDENTIALS_DIRECTORY is not set: under systemd, add a "
            "LoadCredential= line to the unit)"
        )
        raise ConfigError(
            f"{what}: secret file {file} not found (looked for {looked}){hint}"
        )
    if env:
        found = os.environ.get(env)
        if found:
            return found
        raise ConfigError(f"{what}: environment variable {env} is not set")
    raise ConfigError(f"{what}: set a *_env or *_file key for this secret")


def warn_about_permissions(path: Path | None, settings: Settings | None = None) -> bool:
    """Log a warning when the config file at `path` is unsafe; True if logged.

    The file holds no secrets (secret keys are refused; only names of env
    vars and credential files are allowed), so it may be world-readable: the
    service's dynamic user (``DynamicUser=yes``) has to read a root-owned
    0644 file. Two things are unsafe: a file others can write (they could
    point mailsync at another CRM or run a command), and a world-readable
    file with a `token_command`, whose command line may carry a secret.
    """
    import logging
    import stat

    if path is None:
        return False
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    warn = logging.getLogger("mailsync.config").warning
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        warn(
            "config file %s can be changed by other users (mode %s); run: "
            "chmod go-w %s",
            path,
            stat.filemode(mode),
            path,
        )
        return True
    commands = [s.name for s in (settings.imap if settings else ()) if s.token_command]
    if mode & stat.S_IROTH and commands:
        warn(
            "config file %s is readable by every user (mode %s) and holds a "
            "token_command (mailbox %s), whose arguments may be secret; let "
            "the command read its secret from a credential file, or run: "
            "chmod o-r %s",
            path,
            stat.filemode(mode),
            commands[0],
            path,
        )
        return True
    return False
