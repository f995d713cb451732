"""The Salesforce client's proxy choice is made for the URL it really talks
to (`endpoint_url`), so `NO_PROXY` keeps the login away from a proxy."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from sfemu import Emulator
from sfemu.testing import emulator, sf_secrets, sf_settings

from mailsync.crm.salesforce import open_salesforce

__all__ = ["emulator", "sf_secrets"]


class ProxyRecorder:
    """A listener standing in for a proxy: records each request's first bytes
    and answers 502, so a client that used it fails and is seen."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(65536))
                    conn.sendall(
                        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                        b"Connection: close\r\n\r\n"
                    )
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProxyRecorder]:
    recorder = ProxyRecorder()
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, recorder.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield recorder
    recorder.close()


def test_no_proxy_covering_the_endpoint_keeps_the_login_direct(
    emulator: Emulator,
    sf_secrets: None,
    proxy: ProxyRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    backend = open_salesforce(sf_settings(emulator))
    answer = backend.upsert(
        "Account",
        "AWS_Account_ID__c",
        [{"AWS_Account_ID__c": "111122223333", "Name": "Acme"}],
    )
    assert [r.ok for r in answer] == [True], answer
    assert emulator.calls["soap_login"] == 1
    assert proxy.seen == []  # the password and token never went to the proxy


def test_proxy_still_used_when_no_proxy_does_not_cover_the_endpoint(
    emulator: Emulator, sf_secrets: None, proxy: ProxyRecorder
) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the proxy answers 502
        open_salesforce(sf_settings(emulator))
    assert proxy.seen, "the configured proxy was bypassed"
    assert emulator.calls["soap_login"] == 0
