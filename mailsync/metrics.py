"""Prometheus metrics for the daemon, in a dedicated `CollectorRegistry`.

Call sites use the small functions below (never prometheus objects directly),
so a metric can be renamed in one place. All metric names start `mailsync_`:

- `mailsync_fetched_total{source}`: inputs read from a source
- `mailsync_unrecognized_total{source}`: inputs no parser recognized
- `mailsync_rejected_total{source}`: inputs failing an authenticity check
- `mailsync_quarantined_total{source}`: inputs put in quarantine
- `mailsync_synced_total{backend}`: events fully written to the CRM
- `mailsync_crm_calls_total{backend}`: CRM API calls
- `mailsync_crm_errors_total{backend,error}`: failed CRM calls, by error class
- `mailsync_outbox_depth`: events waiting to be written to the CRM (gauge)
- `mailsync_last_success_timestamp_seconds{source}`: Unix time of the last
  successful pass of a source (gauge)

`start_metrics(settings.metrics)` serves them over HTTP at `/metrics` when
`[metrics] enabled = true`, on `listen` (loopback by default) and `port`. The
endpoint has no authentication: keep it on loopback or behind a firewall.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from mailsync.config import MetricsSettings
from mailsync.errors import ConfigError

log = logging.getLogger(__name__)

#: Only mailsync's metrics: no process/platform collectors from the default
#: registry, so a scrape is small and tests see exact values.
REGISTRY = CollectorRegistry()

_FETCHED = Counter(
    "mailsync_fetched", "Inputs read from a source", ["source"], registry=REGISTRY
)
_UNRECOGNIZED = Counter(
    "mailsync_unrecognized",
    "Inputs that no parser recognized",
    ["source"],
    registry=REGISTRY,
)
_REJECTED = Counter(
    "mailsync_rejected",
    "Inputs that failed an authenticity check",
    ["source"],
    registry=REGISTRY,
)
_QUARANTINED = Counter(
    "mailsync_quarantined", "Inputs put in quarantine", ["source"], registry=REGISTRY
)
_SYNCED = Counter(
    "mailsync_synced", "Events fully written to the CRM", ["backend"], registry=REGISTRY
)
_CRM_CALLS = Counter(
    "mailsync_crm_calls", "CRM API calls", ["backend"], registry=REGISTRY
)
_CRM_ERRORS = Counter(
    "mailsync_crm_errors",
    "Failed CRM API calls, by error class",
    ["backend", "error"],
    registry=REGISTRY,
)
_OUTBOX_DEPTH = Gauge(
    "mailsync_outbox_depth",
    "Events waiting to be written to the CRM",
    registry=REGISTRY,
)
_LAST_SUCCESS = Gauge(
    "mailsync_last_success_timestamp_seconds",
    "Unix time of the last successful pass of a source",
    ["source"],
    registry=REGISTRY,
)


def fetched(source: str, count: int = 1) -> None:
    """`count` inputs were read from `source`."""
    _FETCHED.labels(source=source).inc(count)


def unrecognized(source: str, count: int = 1) -> None:
    _UNRECOGNIZED.labels(source=source).inc(count)


def rejected(source: str, count: int = 1) -> None:
    _REJECTED.labels(source=source).inc(count)


def quarantined(source: str, count: int = 1) -> None:
    _QUARANTINED.labels(source=source).inc(count)


def outcome(source: str, outcome: str) -> None:
    """Count one input's final pipeline outcome (ledger vocabulary).

    "unrecognized" and "rejected" inputs are also quarantined.
    """
    if outcome == "unrecognized":
        unrecognized(source)
        quarantined(source)
    elif outcome == "rejected":
        rejected(source)
        quarantined(source)


def synced(backend: str, count: int = 1) -> None:
    _SYNCED.labels(backend=backend).inc(count)


def crm_call(backend: str, count: int = 1) -> None:
    _CRM_CALLS.labels(backend=backend).inc(count)


def crm_error(backend: str, error: str) -> None:
    """A CRM call failed; `error` is a short class such as "transient"."""
    _CRM_ERRORS.labels(backend=backend, error=error).inc()


def flushed(backend: str, written: int, pending: int, error: str | None = None) -> None:
    """One CRM flush ended: `written` events landed, `pending` remain."""
    synced(backend, written)
    outbox_depth(pending)
    if error is not None:
        crm_error(backend, error)


def outbox_depth(depth: int) -> None:
    _OUTBOX_DEPTH.set(depth)


def source_succeeded(source: str, when: float | None = None) -> None:
    """`source` finished a pass without error (at `when`, default now)."""
    _LAST_SUCCESS.labels(source=source).set(time.time() if when is None else when)


def value(name: str, **labels: str) -> float:
    """The current value of a sample (0 when never set); for tests and status."""
    sample = REGISTRY.get_sample_value(name, labels)
    return 0.0 if sample is None else sample


@dataclass
class MetricsServer:
    """A running `/metrics` endpoint; `close()` stops it."""

    server: WSGIServer
    thread: threading.Thread
    closed: bool = False

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self.server.server_address[0])
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_metrics(settings: MetricsSettings) -> MetricsServer | None:
    """Serve `/metrics` when `[metrics] enabled`; return None when disabled.

    Raise `ConfigError` naming `[metrics] listen`/`port` when the address
    cannot be bound. `port = 0` picks a free port (see `MetricsServer.port`).
    """
    if not settings.enabled:
        return None
    if not _is_loopback(settings.listen):
        log.warning(
            "metrics endpoint listens on %s: reachable from the network and "
            "without authentication",
            settings.listen,
        )
    try:
        server, thread = start_http_server(
            settings.port, addr=settings.listen, registry=REGISTRY
        )
    except OSError as err:
        raise ConfigError(
            f"[metrics] listen/port: cannot serve metrics on "
            f"{settings.listen}:{settings.port}: {err.strerror or err}; "
            "choose another port or set enabled = false"
        ) from None
    out = MetricsServer(server, thread)
    log.info("metrics served at %s", out.url)
    return out


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
