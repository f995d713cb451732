"""The metrics endpoint (mailsync.metrics), scraped over real HTTP."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailsync import metrics
from mailsync.config import MetricsSettings, from_dict
from mailsync.errors import ConfigError


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
def server() -> Iterator[metrics.MetricsServer]:
    running = metrics.start_metrics(MetricsSettings(enabled=True, port=0))
    assert running is not None
    yield running
    running.close()


def test_disabled_by_default_and_loopback() -> None:
    settings = from_dict({}).metrics
    assert (settings.enabled, settings.listen, settings.port) == (
        False,
        "127.0.0.1",
        9464,
    )
    assert metrics.start_metrics(settings) is None


def test_counters_and_gauges_over_http(server: metrics.MetricsServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    before = scrape(server.url)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return scrape_now.get(key, 0.0) - before.get(key, 0.0)

    metrics.fetched("imap-test", 3)
    metrics.fetched("imap-test")
    metrics.unrecognized("imap-test")
    metrics.rejected("imap-test", 2)
    metrics.quarantined("imap-test")
    metrics.synced("sqlite", 5)
    metrics.crm_call("sqlite", 7)
    metrics.crm_error("sqlite", "transient")
    metrics.outbox_depth(42)
    metrics.source_succeeded("imap-test", when=1_700_000_000.0)

    scrape_now = scrape(server.url)
    assert delta("mailsync_fetched_total", source="imap-test") == 4
    assert delta("mailsync_unrecognized_total", source="imap-test") == 1
    assert delta("mailsync_rejected_total", source="imap-test") == 2
    assert delta("mailsync_quarantined_total", source="imap-test") == 1
    assert delta("mailsync_synced_total", backend="sqlite") == 5
    assert delta("mailsync_crm_calls_total", backend="sqlite") == 7
    assert delta("mailsync_crm_errors_total", backend="sqlite", error="transient") == 1
    assert scrape_now[("mailsync_outbox_depth", ())] == 42
    key = ("mailsync_last_success_timestamp_seconds", (("source", "imap-test"),))
    assert scrape_now[key] == 1_700_000_000.0
    assert metrics.value("mailsync_outbox_depth") == 42
    # A dedicated registry: no default process/platform collectors.
    assert not any(name.startswith("process_") for name, _ in scrape_now)


def test_port_in_use_is_a_config_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        port = sock.getsockname()[1]
        with pytest.raises(ConfigError, match=r"^\[metrics\] listen/port: .*"):
            metrics.start_metrics(MetricsSettings(enabled=True, port=port))
    finally:
        sock.close()


def test_server_close_stops_serving(server: metrics.MetricsServer) -> None:
    url = server.url
    assert scrape(url)
    server.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)
