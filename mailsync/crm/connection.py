"""Opening the configured CRM backend, and keeping it open across flushes.

`make_backend(settings)` opens the backend once (for Salesforce: one login).
That is right for the one-shot commands (`run --once`, `replay`,
`quarantine retry`, `check`, `records`), which flush at most a few times.

The daemon flushes whenever new events are durable and at least every
``[crm] flush_interval`` seconds (30 by default, `mailsync.crm.flusher`);
logging in to Salesforce for each of those would cost at least 120 logins an
hour, each one an entry in the integration user's login history and an extra
round trip. So the daemon holds one `CrmConnection` per configuration and
hands it to every `CrmSync`:

- the backend is opened lazily, by the first flush that has work (an idle
  daemon never logs in);
- later flushes reuse it, with its authenticated session and its pooled HTTP
  connections;
- an expired session is handled inside the backend: INVALID_SESSION_ID makes
  simple-salesforce log in again, at most ``[crm.salesforce] max_relogins``
  times per call (`mailsync.crm.salesforce`);
- a flush that failed for an outage (`TransientError`: the CRM unreachable,
  5xx, locks that outlasted the retries) or for an unexpected error calls
  `discard()`, so the next flush with work logs in afresh: after a restart of
  the endpoint, a proxy or the network, the old connections and the session
  are suspect, and one login per failed flush is cheap;
- `close()` on shutdown and before a SIGHUP reload (the credentials, endpoint
  or backend may have changed).

Only the Salesforce backend is kept between flushes. The embedded SQLite store
is a local file whose connection belongs to the thread that opened it, and the
daemon's flushes run on the flusher thread, which a reload replaces, so it is
opened and closed by each flush, as before (it costs no login).

One flush at a time: the daemon runs every flush on its one flusher thread;
the lock only guards `close()` against a flush still finishing.
"""

from __future__ import annotations

import logging
import threading

from mailsync.config import Settings
from mailsync.crm.backend import CrmBackend
from mailsync.log import kv

log = logging.getLogger(__name__)


def make_backend(settings: Settings) -> CrmBackend:
    """Open the configured backend; `TransientError` when unreachable,
    `ConfigError` when the CRM refuses the credentials."""
    if settings.crm.backend == "salesforce":
        from mailsync.crm.salesforce import open_salesforce

        return open_salesforce(settings.crm.salesforce)
    from mailsync.crm.sqlite_store import SqliteStore

    return SqliteStore(settings.crm.sqlite_path)


class CrmConnection:
    """The CRM backend a long-running process keeps between flushes (see the
    module docstring). `keep` defaults to True for Salesforce only."""

    def __init__(self, settings: Settings, *, keep: bool | None = None) -> None:
        self.settings = settings
        self.keep = settings.crm.backend == "salesforce" if keep is None else keep
        self.opened = 0  #: backends opened so far (logins, for Salesforce)
        self._backend: CrmBackend | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._backend is not None

    def acquire(self) -> CrmBackend:
        """The open backend, opening it first if needed (may raise
        `TransientError` / `ConfigError` like `make_backend`)."""
        with self._lock:
            if self._backend is None:
                self._backend = make_backend(self.settings)
                self.opened += 1
                if self.keep:
                    log.info(
                        "crm session opened",
                        extra=kv(backend=self.settings.crm.backend, n=self.opened),
                    )
            return self._backend

    def release(self) -> None:
        """A flush is over: keep the backend for the next one, or close it
        when it is not kept between flushes."""
        if not self.keep:
            self._drop()

    def discard(self, reason: str) -> None:
        """Close the backend after a failure; the next flush opens a new one."""
        if self._drop() and self.keep:
            log.info(
                "crm session closed after a failed flush; the next flush logs in",
                extra=kv(backend=self.settings.crm.backend, reason=reason),
            )

    def close(self) -> None:
        """Shutdown or reload: close the backend (and its session)."""
        self._drop()

    def _drop(self) -> bool:
        with self._lock:
            backend, self._backend = self._backend, None
        if backend is None:
            return False
        try:
            backend.close()
        except Exception as err:  # closing a broken transport must not fail
            log.debug(f"closing the CRM backend failed: {err}")
        return True
