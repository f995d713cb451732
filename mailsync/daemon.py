"""The daemon behind `mailsync run`.

`Daemon(path, settings).run()` runs until SIGTERM/SIGINT (one pass only:
`mailsync.once.run_once`):

- one thread per IMAP mailbox: pass → IDLE (or poll) → pass …; on a network or
  login failure it reconnects with capped exponential backoff and jitter
  (tenacity's `wait_exponential_jitter`) and always does a full search after a
  reconnect, so mail that arrived meanwhile is not missed;
- APScheduler 3.11 interval jobs (coalesce, max_instances=1,
  misfire_grace_time) for Maildir polls and Agreement API passes every
  `[source.agreements] poll_interval` s;
- one CRM flush thread (`mailsync.crm.flusher`): a pass that made new events
  durable pokes it, and it flushes at once or, when events keep coming,
  `[crm] flush_debounce` s after the last one, in one batch; every
  `[crm] flush_interval` s it flushes anyway (catch-up and retries; after a
  failure pokes wait for that clock). The flushes share one `CrmConnection`,
  so one Salesforce login serves them all (a new one after an expired session
  or a failed flush; see `mailsync.crm.connection`);
- a long pass (a backfill) reports its progress in STATUS= and in log lines
  (`mailsync.progress`);
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

import functools
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
from mailsync.aws.agreements_source import AgreementsSource
from mailsync.config import ImapSettings, Settings
from mailsync.crm.connection import CrmConnection
from mailsync.crm.flusher import Flusher
from mailsync.crm.outbox import Outbox
from mailsync.crm.sync import CrmSync
from mailsync.errors import ConfigError, MailsyncError, StateError
from mailsync.ledger import Ledger
from mailsync.log import configure, kv
from mailsync.metrics import start_metrics
from mailsync.notify import sd_notify, watchdog_period
from mailsync.pipeline import Pipeline
from mailsync.preflight import check_secrets
from mailsync.progress import Progress
from mailsync.sources.base import PassResult
from mailsync.sources.imap import ImapSource
from mailsync.sources.imap_conn import AuthError
from mailsync.sources.maildir import MaildirSource
from mailsync.statedb import explain, open_db
from mailsync.textsafe import escape

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
        self._flusher: Flusher | None = None
        #: what is wrong right now, per worker ("imap:NAME", "sqs", "crm");
        #: shown in systemd's STATUS= and cleared when the part recovers
        self.problems: dict[str, str] = {}
        #: the reason CRM writes are paused, as last logged (None: not paused)
        self._crm_paused: str | None = None
        #: long work in progress, per worker (a backfill's count); in STATUS=
        self.activity: dict[str, str] = {}

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
        activity = dict(self.activity)
        if activity:
            text += "; " + "; ".join(f"{k}: {v}" for k, v in sorted(activity.items()))
        problems = dict(self.problems)
        if problems:
            text += "; " + "; ".join(f"{k}: {v}" for k, v in sorted(problems.items()))
        # One line for `systemctl status`: a newline in an error text would
        # start a new sd_notify assignment.
        return escape(text)

    def healthy(self) -> bool:
        """Every worker thread alive and showing progress recently."""
        limit = max(
            120.0, max((s.read_timeout for s in self.settings.imap), default=0) + 60
        )
        now = time.monotonic()
        for w in self._workers:
            if not w.thread.is_alive() or now - w.beat > limit:
                return False
        if self._flusher is not None and not self._flusher.alive():
            return False
        return self._scheduler is None or self._scheduler.running

    def _reload(self) -> None:
        try:
            new = config.load(self.path)
            check_secrets(new)
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
        self.activity.clear()
        crm = self._crm = CrmConnection(self.settings)
        self._flusher = Flusher(
            lambda: self._flush(crm, stop),
            interval=self.settings.crm.flush_interval,
            debounce=self.settings.crm.flush_debounce,
        ).start()
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
        if self.settings.agreements is not None:
            sched.add_job(
                self._job,
                "interval",
                seconds=self.settings.agreements.poll_interval,
                next_run_time=now,
                args=(self._agreements_pass, self.settings.agreements, stop),
                id="agreements",
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
        sched.start()
        self._scheduler = sched

    def _halt(self) -> None:
        self._workers_stop.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        if self._flusher is not None:  # after the flush in progress, if any
            self._flusher.stop()
            self._flusher = None
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
            if result.synced:
                self._poke()
            if result.fetched:
                log.info("pass done", extra=kv(source=source.name, **_counts(result)))
        finally:
            conn.close()

    def _agreements_pass(self, settings: Any, stop: threading.Event) -> None:
        conn = open_db(self.settings.state.path)
        try:
            source = AgreementsSource(settings, conn)
            result = source.run_pass(Outbox(conn), stop)
            if result.failed:
                self.problems["agreements"] = "; ".join(result.errors[:3])
            else:
                self.problems.pop("agreements", None)
            if result.fetched or result.failed:
                log.info("pass done", extra=kv(source=source.name, **_counts(result)))
            if result.synced:
                self._poke()
        finally:
            conn.close()

    def _sdds_pass(self, settings: Settings, stop: threading.Event) -> None:
        from mailsync.aws.sdds_source import SddsSource

        conn = open_db(settings.state.path)
        try:
            ledger = Ledger(conn)
            source = SddsSource(settings)
            try:
                result = source.run_pass(Outbox(conn), stop)
                self.problems.pop("sdds", None)
                if result.synced:
                    self._poke()
            except MailsyncError as err:
                ledger.source_error(source.name, str(err))
                self.problems["sdds"] = str(err)
                raise
        finally:
            conn.close()

    def _poke(self) -> None:
        """A pass made new outbox events durable: let the flusher know."""
        flusher = self._flusher
        if flusher is not None:
            flusher.poke()

    def _flush(self, crm: CrmConnection, stop: threading.Event) -> bool:
        """One flush for the flusher thread; False when the CRM failed or
        writes are paused (the flusher then waits `flush_interval`)."""
        if stop.is_set():
            return True
        try:
            return self._flush_once(crm)
        except StateError as err:
            self.fatal = str(err)
        except Exception as err:  # logged; the flusher retries on its clock
            log.error(
                f"crm flush failed: {err}", exc_info=not isinstance(err, MailsyncError)
            )
        return False

    def _flush_once(self, crm: CrmConnection) -> bool:
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
                # News once per reason (WARNING); the flushes that find it
                # still paused are INFO.
                first = self._crm_paused != result.paused_reason
                self._crm_paused = result.paused_reason
                log.log(
                    logging.WARNING if first else logging.INFO,
                    "crm flush paused",
                    extra=kv(pending=result.pending, reason=result.paused_reason),
                )
            else:
                if self._crm_paused is not None:
                    log.info("crm writes resumed", extra=kv(pending=result.pending))
                self._crm_paused = None
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
            return result.paused_reason is None
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

        fatal = sqs.serve(
            self.settings, stop, on_beat=beat, on_error=problem, on_synced=self._poke
        )
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

        def status(text: str | None) -> None:  # a backfill's count in STATUS=
            if text is None:
                self.activity.pop(worker.name, None)
            else:
                self.activity[worker.name] = text
            # at once (Progress sends at most one a second): a backfill that
            # ends within the main loop's tick still shows its start and end
            sd_notify(f"STATUS={self._status()}")

        source = ImapSource(
            imap,
            Pipeline(self.settings, ledger),
            progress=functools.partial(Progress, bar=False, on_status=status),
        )
        worker.source = source
        outbox = Outbox(conn)
        attempt = 0
        try:
            while not stop.is_set():
                worker.beat = time.monotonic()
                try:
                    result = source.run_pass(outbox, stop)
                    attempt = 0
                    if result.synced:
                        self._poke()
                    self.problems.pop(worker.name, None)
                    if result.fetched or result.failed:
                        log.info(
                            "pass done",
                            extra=kv(source=source.name, **_counts(result)),
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
                    # An outage is news once (WARNING); its retries are INFO.
                    log.log(
                        logging.WARNING if attempt == 1 else logging.INFO,
                        f"{err}; retrying in {delay:.0f} s",
                        extra=kv(source=source.name, attempt=attempt),
                    )
                    _sleep(delay, stop, worker)
                except Exception as err:  # a bug must not end the mailbox's thread
                    source.close()
                    attempt += 1
                    log.exception(
                        f"unexpected error: {err}", extra=kv(source=source.name)
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
