"""The daemon behind `mailsync run`.

`Daemon(path, settings).run()` runs until SIGTERM/SIGINT (one pass only:
`mailsync.once.run_once`):

- one thread per IMAP mailbox: pass → IDLE (or poll) → pass …; on a network or
  login failure it reconnects with capped exponential backoff and jitter
  (tenacity's `wait_exponential_jitter`) and always does a full search after a
  reconnect, so mail that arrived meanwhile is not missed;
- APScheduler 3.11 interval jobs (coalesce, max_instances=1,
  misfire_grace_time) for Maildir polls and the CRM flush every
  `[crm] flush_interval` s; the flushes share one `CrmConnection`, so one
  Salesforce login serves them all (a new one after an expired session or a
  failed flush; see `mailsync.crm.connection`);
- the main thread handles signals and talks to systemd: READY=1 once started,
  WATCHDOG=1 only while every worker shows progress, STATUS=…, STOPPING=1.

SIGTERM/SIGINT: workers finish their current message, commit, and the process
exits 0 within a few seconds. SIGHUP: the config is read again; an invalid one
is logged and the running one kept. Stopping and a reload close the CRM
session (the next flush with work logs in with the new settings). Each thread
or job opens its own SQLite connection (sqlite3 connections are not shared
across threads).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import tenacity
from apscheduler.schedulers.background import BackgroundScheduler

from mailsync import config
from mailsync.config import ImapSettings, Settings
from mailsync.crm.connection import CrmConnection
from mailsync.crm.outbox import Outbox
from mailsync.crm.sync import CrmSync
from mailsync.errors import ConfigError, MailsyncError, StateError
from mailsync.ledger import Ledger
from mailsync.log import configure, kv
from mailsync.metrics import start_metrics
from mailsync.notify import sd_notify, watchdog_period
from mailsync.pipeline import Pipeline
from mailsync.sources.base import PassResult
from mailsync.sources.imap import ImapSource
from mailsync.sources.imap_conn import AuthError
from mailsync.sources.maildir import MaildirSource
from mailsync.statedb import explain, open_db

log = logging.getLogger(__name__)
BACKOFF_MAX = 300.0


def backoff(attempt: int, *, auth: bool = False) -> float:
    """Seconds to wait before reconnect `attempt` (1, 2, …): 1, 2, 4 … s plus
    up to 1 s jitter, capped at 5 min; a refused login starts at 30 s."""
    wait = tenacity.wait_exponential_jitter(
        multiplier=30 if auth else 1, max=BACKOFF_MAX, jitter=1
    )
    state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return float(wait(state))


@dataclass
class _Worker:
    name: str
    thread: threading.Thread
    source: ImapSource | None = None
    beat: float = field(default_factory=time.monotonic)


class Daemon:
    """The long-running service; `run()` returns the exit code."""

    def __init__(self, path: Path | None, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self.stop = threading.Event()  #: the whole process stops
        self.reload = threading.Event()
        self.fatal: str | None = None
        self._workers_stop = threading.Event()
        self._workers: list[_Worker] = []
        self._scheduler: BackgroundScheduler | None = None
        #: the CRM backend (Salesforce session) the flushes of the running
        #: configuration share; closed by `_halt`
        self._crm: CrmConnection | None = None
        #: what is wrong right now, per worker ("imap:NAME", "sqs", "crm");
        #: shown in systemd's STATUS= and cleared when the part recovers
        self.problems: dict[str, str] = {}

    # -- signals ---------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload.set()
        else:
            self.stop.set()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        metrics_server = start_metrics(self.settings.metrics)
        self._start()
        sd_notify(f"READY=1\nSTATUS={self._status()}")
        period = watchdog_period()
        next_ping = 0.0
        shown = self._status()
        while not self.stop.is_set():
            self.stop.wait(1.0)
            if self._status() != shown:  # an outage began or ended
                shown = self._status()
                sd_notify(f"STATUS={shown}")
            if self.reload.is_set():
                self.reload.clear()
                self._reload()
            if self.fatal:
                break
            if period is not None and time.monotonic() >= next_ping and self.healthy():
                sd_notify("WATCHDOG=1")
                next_ping = time.monotonic() + period
        sd_notify("STOPPING=1")
        log.info("stopping")
        self._halt()
        if metrics_server is not None:
            metrics_server.close()
        if self.fatal:
            log.critical(explain(self.fatal, self.settings.state.path))
            return 1
        log.info("stopped")
        return 0

    def _status(self) -> str:
        names = [w.name for w in self._workers] + [
            f"maildir:{m.path}" for m in self.settings.maildir
        ]
        text = "watching " + (", ".join(names) or "no sources")
        problems = dict(self.problems)
        if problems:
            text += "; " + "; ".join(f"{k}: {v}" for k, v in sorted(problems.items()))
        return text

    def healthy(self) -> bool:
        """Every worker thread alive and showing progress recently."""
        limit = max(
            120.0, max((s.read_timeout for s in self.settings.imap), default=0) + 60
        )
        now = time.monotonic()
        for w in self._workers:
            if not w.thread.is_alive() or now - w.beat > limit:
                return False
        return self._scheduler is None or self._scheduler.running

    def _reload(self) -> None:
        try:
            new = config.load(self.path)
        except ConfigError as err:
            log.error(f"config reload failed, keeping the running config: {err}")
            return
        sd_notify("RELOADING=1")
        self._halt()
        self.settings = new
        configure(new.log)
        self._start()
        log.info("config reloaded", extra=kv(path=self.path))
        sd_notify(f"READY=1\nSTATUS={self._status()}")

    # -- workers ---------------------------------------------------------------

    def _start(self) -> None:
        self._workers_stop = stop = threading.Event()
        self._workers = []
        self.problems.clear()  # the new workers report afresh
        for imap in self.settings.imap:
            worker = _Worker(f"imap:{imap.name}", threading.Thread())
            worker.thread = threading.Thread(
                target=self._imap_loop,
                args=(imap, worker, stop),
                name=worker.name,
                daemon=True,
            )
            self._workers.append(worker)
            worker.thread.start()
        if self.settings.sqs is not None:
            worker = _Worker("sqs", threading.Thread())
            worker.thread = threading.Thread(
                target=self._sqs_loop, args=(worker, stop), name="sqs", daemon=True
            )
            self._workers.append(worker)
            worker.thread.start()
        # A flush still retrying when its next run is due makes APScheduler
        # warn "skipped: maximum number of running instances" every interval;
        # that is the intended coalescing, not news for the journal.
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
        sched = BackgroundScheduler(
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": 60,
            },
            timezone="UTC",
        )
        now = datetime.now(UTC)
        for md in self.settings.maildir:
            sched.add_job(
                self._job,
                "interval",
                seconds=md.poll_interval,
                next_run_time=now,
                args=(self._maildir_pass, md, stop),
                id=f"maildir:{md.path}",
            )
        if self.settings.sdds is not None:
            sched.add_job(
                self._job,
                "interval",
                seconds=self.settings.sdds.poll_interval,
                next_run_time=now,
                args=(self._sdds_pass, self.settings, stop),
                id="sdds",
            )
        self._crm = CrmConnection(self.settings)
        sched.add_job(
            self._job,
            "interval",
            seconds=self.settings.crm.flush_interval,
            next_run_time=now,
            args=(self._flush, self._crm, stop),
            id="crm",
        )
        sched.start()
        self._scheduler = sched

    def _halt(self) -> None:
        self._workers_stop.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        if self._crm is not None:  # no flush runs any more: log out of the CRM
            self._crm.close()
            self._crm = None
        for w in self._workers:
            w.thread.join(timeout=10)

    def _job(
        self,
        fn: Callable[[Any, threading.Event], None],
        arg: Any,
        stop: threading.Event,
    ) -> None:
        if stop.is_set():
            return
        try:
            fn(arg, stop)
        except StateError as err:
            self.fatal = str(err)
        except Exception as err:  # a job failure must not kill the scheduler
            log.error(f"job failed: {err}", exc_info=not isinstance(err, MailsyncError))

    def _maildir_pass(self, md: Any, stop: threading.Event) -> None:
        conn = open_db(self.settings.state.path)
        try:
            ledger = Ledger(conn)
            source = MaildirSource(md, Pipeline(self.settings, ledger))
            try:
                result = source.run_pass(Outbox(conn), stop)
            except MailsyncError as err:
                ledger.source_error(source.name, str(err))
                raise
            if result.fetched:
                log.info("pass done", extra=kv(source=source.name, **_counts(result)))
        finally:
            conn.close()

    def _sdds_pass(self, settings: Settings, stop: threading.Event) -> None:
        from mailsync.aws.sdds_source import SddsSource

        conn = open_db(settings.state.path)
        try:
            ledger = Ledger(conn)
            source = SddsSource(settings)
            try:
                source.run_pass(Outbox(conn), stop)
                self.problems.pop("sdds", None)
            except MailsyncError as err:
                ledger.source_error(source.name, str(err))
                self.problems["sdds"] = str(err)
                raise
        finally:
            conn.close()

    def _flush(self, crm: CrmConnection, stop: threading.Event) -> None:
        conn = open_db(self.settings.state.path)
        try:
            sync = CrmSync(self.settings, conn, connection=crm)
            try:
                result = sync.flush()
            finally:
                sync.close()
            if result.paused_reason:
                self.problems["crm"] = (
                    f"writes paused, {result.pending} pending: {result.paused_reason}"
                )
                log.warning(
                    "crm flush paused",
                    extra=kv(pending=result.pending, reason=result.paused_reason),
                )
            else:
                self.problems.pop("crm", None)
            if result.written:
                log.info(
                    "crm flush",
                    extra=kv(
                        written=result.written,
                        pending=result.pending,
                        paused=result.paused_reason,
                    ),
                )
        finally:
            conn.close()

    def _sqs_loop(self, worker: _Worker, stop: threading.Event) -> None:
        from mailsync.aws import sqs

        def beat() -> None:
            worker.beat = time.monotonic()

        def problem(message: str | None) -> None:
            if message is None:
                self.problems.pop(worker.name, None)
            else:
                self.problems[worker.name] = message

        fatal = sqs.serve(self.settings, stop, on_beat=beat, on_error=problem)
        if fatal:
            self.fatal = fatal

    def _imap_loop(
        self, imap: ImapSettings, worker: _Worker, stop: threading.Event
    ) -> None:
        try:
            conn = open_db(self.settings.state.path)
        except StateError as err:
            self.fatal = str(err)
            return
        ledger = Ledger(conn)
        source = ImapSource(imap, Pipeline(self.settings, ledger))
        worker.source = source
        outbox = Outbox(conn)
        attempt = 0
        try:
            while not stop.is_set():
                worker.beat = time.monotonic()
                try:
                    result = source.run_pass(outbox, stop)
                    attempt = 0
                    self.problems.pop(worker.name, None)
                    if result.fetched or result.failed:
                        log.info(
                            "pass done",
                            extra=kv(mailbox=source.name, **_counts(result)),
                        )
                    worker.beat = source.last_beat = time.monotonic()
                    timeout = (
                        imap.idle_renew_seconds if imap.idle else imap.poll_interval
                    )
                    source.wait_for_input(timeout, stop)
                    worker.beat = source.last_beat
                except StateError as err:
                    self.fatal = str(err)
                    return
                except MailsyncError as err:
                    source.close()
                    attempt += 1
                    delay = backoff(attempt, auth=isinstance(err, AuthError))
                    self.problems[worker.name] = str(err)
                    ledger.source_error(source.name, str(err))
                    log.error(
                        f"{err}; retrying in {delay:.0f} s",
                        extra=kv(mailbox=source.name, attempt=attempt),
                    )
                    _sleep(delay, stop, worker)
                except Exception as err:  # a bug must not end the mailbox's thread
                    source.close()
                    attempt += 1
                    log.exception(
                        f"unexpected error: {err}", extra=kv(mailbox=source.name)
                    )
                    _sleep(backoff(attempt), stop, worker)
        finally:
            source.close()
            conn.close()


def _sleep(delay: float, stop: threading.Event, worker: _Worker) -> None:
    """Wait `delay` s in 1 s steps, staying visibly alive for the watchdog."""
    end = time.monotonic() + delay
    while not stop.is_set() and time.monotonic() < end:
        stop.wait(min(1.0, end - time.monotonic()))
        worker.beat = time.monotonic()


def _counts(r: PassResult) -> dict[str, int]:
    return {
        "fetched": r.fetched,
        "synced": r.synced,
        "duplicates": r.duplicates,
        "unrecognized": r.unrecognized,
        "rejected": r.rejected,
        "failed": r.failed,
    }
