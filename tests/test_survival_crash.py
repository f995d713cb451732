"""Crash survival: `kill -9` the daemon again and again during a backfill.

`mailsync run` reads a real Dovecot mailbox of 2,000 distinct seller emails
(made from the real fixtures) and writes to the Salesforce emulator over real
HTTP. It is killed with SIGKILL 12 times (the issue asks for at least 10) and
restarted after each kill. The kills rotate through three phases (fetch,
submit, flush, fetch, ...), each triggered by what the daemon does soon after
its restart rather than by a clock, so the schedule holds however fast the
daemon gets:

- fetch: while a ``UID FETCH ... BODY.PEEK[]`` response is streaming (seen by
  a TCP proxy in front of Dovecot), in the first or second FETCH after the
  restart, after a random number of response bytes within that batch;
- submit: right after the outbox has grown by a random number of events
  (between sink commits, before the batch is marked in IMAP);
- flush: inside the k-th sObject Collections upsert after the restart (k of
  1-3), after the emulator applied the write and before the daemon could
  record it (the worst moment for exactly-once: the CRM has the data, the
  state store does not).

The thresholds are random (fixed seed) fractions of the work still left, so
every kill lands while there is work to interrupt; once every message is in
the outbox (a flush cycle on a slow machine may get that far), the remaining
kills are flush kills. How many kills happened, in which phase and when is
printed. After the last kill `mailsync run --once`
finishes the work. Then every agreement is in the CRM exactly once (one
AWS_Agreement__c per agreement ID, one AWS_Marketplace_Event__c per business
event), the outbox holds exactly one event per message, and every message
carries ``$MailsyncProcessed``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import ImapUser, run_mailsync, start_mailsync
from sfemu import Emulator
from sfemu.testing import emulator, sf_settings
from survival_helpers import (
    SF_PASSWORD_ENV,
    SF_TOKEN_ENV,
    Seller,
    TcpProxy,
    daemon_env,
    outbox_pending,
    outbox_total,
    seller_emails,
    survival_config,
)
from test_salesforce_e2e import normalized

from mailsync.config import from_dict
from mailsync.crm import mapping as m
from mailsync.crm.outbox import Outbox
from mailsync.crm.salesforce import open_salesforce
from mailsync.crm.sqlite_store import SqliteStore
from mailsync.crm.sync import CrmSync
from mailsync.event import Channel, Event, Kind
from mailsync.parsers import parse_email
from mailsync.security.email_gate import clamp_occurred
from mailsync.statedb import open_db

SEED = 20260401
MESSAGES = 2000
BATCH = 100  #: [source.imap] batch_size
PHASES = ("fetch", "submit", "flush")
KILLS = 12  #: planned 4 per phase, interleaved (the issue asks for at least 10)
FALLBACK = 30.0  #: s; a trigger that never fires is a test failure

__all__ = ["emulator"]  # the shared fixture, used by name


class Killer:
    """SIGKILLs the daemon when the armed trigger fires; remembers when."""

    def __init__(
        self, emu: Emulator, proxy: TcpProxy, state: Path, smallest: int
    ) -> None:
        self.emu, self.proxy, self.state = emu, proxy, state
        self.smallest = smallest  #: bytes of the smallest message
        self.fired = threading.Event()
        self.pid = 0
        self.phase = ""
        self.lock = threading.Lock()
        self.fetches = self.fetch_target = self.streamed = self.byte_target = 0
        self.upserts = self.upsert_target = 0
        rest = emu.rest

        def watched_rest(method: str, path: str, *args: Any) -> tuple[int, Any]:
            answer = rest(method, path, *args)
            if self.phase == "flush" and "/composite/sobjects/" in path:
                with self.lock:
                    self.upserts += 1
                    hit = self.upserts == self.upsert_target
                if hit:  # the write is applied; the daemon never sees the answer
                    self.kill()
            return answer

        emu.rest = watched_rest  # type: ignore[assignment]
        # The killed daemon never reads its answer: no broken-pipe noise.
        if emu._server is not None:
            emu._server.handle_error = lambda *_: None  # type: ignore[method-assign]
        proxy.watch = self._watch

    def arm(self, pid: int, phase: str, rng: random.Random, kills_left: int) -> str:
        """Arm the trigger of `phase` for the daemon just started as `pid`.

        Every phase draws the same two numbers (so the draws stay in step
        with the seed). The fetch and submit thresholds are scaled to a share
        of the messages not yet submitted: up to twice `left / (kills_left +
        1)`, so the kills spread over the backfill on average and the last
        one still finds work to interrupt."""
        left = MESSAGES - outbox_total(self.state)
        share = max(2 * left // (kills_left + 1), 1)
        u, v = rng.random(), rng.random()
        self.fired.clear()
        if phase == "fetch":
            self.fetches, self.streamed = 0, 0
            # FETCH #n exists: (n - 1) * BATCH <= share < left
            self.fetch_target = 1 + int(u * (share // BATCH))
            # within the bytes this FETCH streams, however small its messages
            batch_bytes = min(BATCH, max(left, 1)) * self.smallest
            self.byte_target = 1 + int(v * batch_bytes * 0.9)
            self.pid, self.phase = pid, phase
            return f"FETCH #{self.fetch_target} after {self.byte_target} bytes"
        if phase == "flush":
            # A flush of pending events upserts at least AWS_Agreement__c and
            # AWS_Marketplace_Event__c; Account too while the backfill runs.
            self.upserts = 0
            self.upsert_target = 1 + int(u * (3 if left > 3 * BATCH else 2))
            self.pid, self.phase = pid, phase
            return f"upsert call #{self.upsert_target}"
        grow = 1 + int(u * share)
        target = MESSAGES - left + grow
        self.pid, self.phase = pid, phase
        threading.Thread(target=self._poll_outbox, args=(target,), daemon=True).start()
        return f"outbox +{grow}"

    def _poll_outbox(self, target: int) -> None:
        while not self.fired.is_set() and self.phase == "submit":
            if outbox_total(self.state) >= target:
                self.kill()
                return
            time.sleep(0.002)

    def _watch(self, way: str, data: bytes) -> None:
        if self.phase != "fetch" or self.fired.is_set():
            return
        if way == "up" and b"BODY.PEEK[]" in data:
            self.fetches += 1
        elif way == "down" and self.fetches >= self.fetch_target:
            self.streamed += len(data)
            if self.streamed >= self.byte_target:
                self.kill()

    def kill(self) -> None:
        with self.lock:
            if self.fired.is_set() or not self.pid:
                return
            os.kill(self.pid, signal.SIGKILL)
            self.phase = ""
            self.fired.set()


def test_kill9_ten_times_during_backfill_loses_and_duplicates_nothing(
    tmp_path: Path, imap_user: ImapUser, emulator: Emulator
) -> None:
    began = time.monotonic()
    sellers = seller_emails(MESSAGES, seed=SEED)
    imap_user.append([s.raw for s in sellers])  # MULTIAPPEND, 200 per command
    with imap_user.client() as c:  # when the server received each (UID order)
        c.select_folder("INBOX", readonly=True)
        fetched = c.fetch(c.search("ALL"), ["INTERNALDATE"])
    received = [fetched[uid][b"INTERNALDATE"] for uid in sorted(fetched)]
    proxy = TcpProxy(imap_user.server.port)
    cfg = survival_config(
        tmp_path,
        imap=imap_user,
        imap_port=proxy.port,
        imap_extra={"batch_size": BATCH, "poll_interval": 3600},
        salesforce=(emulator.url, emulator.username),
    )
    env = daemon_env(sf=(emulator.password, emulator.security_token))
    state = tmp_path / "state.sqlite3"
    killer = Killer(emulator, proxy, state, min(len(s.raw) for s in sellers))
    rng = random.Random(SEED)
    landed: Counter[str] = Counter()
    print(f"\nbackfill of {MESSAGES} messages, seed {SEED}")
    try:
        for cycle in range(1, KILLS + 1):
            planned = PHASES[(cycle - 1) % len(PHASES)]
            phase = feasible(planned, state)
            assert phase is not None, f"cycle {cycle}: the backfill is already over"
            log = tmp_path / f"daemon-{cycle}.log"
            proc = start_mailsync("run", "--config", str(cfg), log=log, env=env)
            start = time.monotonic()
            trigger = killer.arm(proc.pid, phase, rng, KILLS - cycle + 1)
            if phase != planned:
                trigger += f", instead of {planned}: every message submitted"
            fired = killer.fired.wait(FALLBACK)
            if not fired:
                proc.kill()
            code = _reap(proc)
            at = time.monotonic() - start
            assert fired, (
                f"cycle {cycle}: the {phase} trigger ({trigger}) never fired; "
                f"daemon exit {code}\n{log.read_text()[-3000:]}"
            )
            assert code == -signal.SIGKILL, log.read_text()[-3000:]
            assert "Traceback" not in log.read_text()
            landed[phase] += 1
            print(
                f"kill {cycle:2d}: {phase:6s} {at:5.2f} s after start "
                f"(t={time.monotonic() - began:5.1f} s; {trigger}); outbox "
                f"{outbox_total(state)} events, {outbox_pending(state)} pending, "
                f"CRM agreements {len(emulator.records('AWS_Agreement__c'))}"
            )
        killer.phase = ""
        left = MESSAGES - outbox_total(state)
        print(f"{sum(landed.values())} kills {dict(landed)}; {left} messages left")
        final = run_mailsync("run", "--once", "--config", str(cfg), env=env,
                             timeout=180)  # fmt: skip
    finally:
        proxy.down()
    assert sum(landed.values()) == KILLS >= 10
    assert set(landed) == set(PHASES)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "pending 0" in final.stderr
    assert "Traceback" not in final.stderr

    # The state store: one outbox event per message, all written to the CRM.
    assert (outbox_total(state), outbox_pending(state)) == (MESSAGES, 0)
    # The CRM: each agreement and each business event exactly once.
    agreements = emulator.records("AWS_Agreement__c")
    by_id = Counter(a["Agreement_ID__c"] for a in agreements)
    assert len(agreements) == MESSAGES
    assert by_id == Counter(s.agreement_id for s in sellers)
    accounts = {
        a["Agreement_ID__c"]: a["Customer_AWS_Account_ID__c"] for a in agreements
    }
    assert accounts == {s.agreement_id: s.account_id for s in sellers}
    events = emulator.records("AWS_Marketplace_Event__c")
    assert len(events) == MESSAGES
    assert Counter(e["Event_Key__c"] for e in events) == Counter(
        s.event_key for s in sellers
    )
    buyers = Counter(a["AWS_Account_ID__c"] for a in emulator.records("Account"))
    assert buyers == Counter({s.account_id for s in sellers})
    # IMAP: every message marked processed.
    flags = imap_user.flags()
    assert len(flags) == MESSAGES
    unmarked = [uid for uid, f in flags.items() if b"$MailsyncProcessed" not in f]
    assert unmarked == []
    # Differential check: the records equal those of the same inputs written
    # without any crash (to the embedded SQLite store; contract section 4:
    # the merge rules are the same for every backend).
    reference = uninterrupted(tmp_path / "reference", sellers, received)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SF_PASSWORD_ENV, emulator.password)
        mp.setenv(SF_TOKEN_ENV, emulator.security_token)
        sf = open_salesforce(sf_settings(emulator))
    for obj in m.OBJECTS:
        assert normalized(sf, obj) == normalized(reference, obj), obj
    print(
        f"survived {sum(landed.values())} kill cycles ({dict(landed)}); checked "
        f"{len(agreements)} agreements, {len(events)} events, {len(buyers)} "
        f"accounts, {len(flags)} IMAP flags; {time.monotonic() - began:.1f} s"
    )


def feasible(planned: str, state: Path) -> str | None:
    """The phase to kill in: `planned`, or "flush" once every message is in
    the outbox (a flush cycle may finish the backfill: the IMAP pass runs on
    until the k-th upsert, and the daemon's start-up time varies with the
    machine's load), or None when nothing is left to interrupt. A killed
    flush always leaves its batch pending, so the kills never run out."""
    if planned == "flush" or outbox_total(state) < MESSAGES:
        return planned
    return "flush" if outbox_pending(state) else None


def uninterrupted(
    tmp: Path, sellers: list[Seller], received: list[datetime]
) -> SqliteStore:
    """The same emails parsed and written in one go, no crash; `received` is
    each one's INTERNALDATE (a date later than it is clamped to it)."""
    tmp.mkdir()
    settings = from_dict(
        {
            "state": {"path": str(tmp / "state.sqlite3")},
            "crm": {"sqlite": {"path": str(tmp / "crm.sqlite3")}},
        }
    )
    conn = open_db(settings.state.path)
    outbox = Outbox(conn)
    for s, at in zip(sellers, received, strict=True):
        outbox.submit(clamp_occurred(parse_email(s.raw), at.astimezone(UTC)))
    store = SqliteStore(settings.crm.sqlite_path)
    result = CrmSync(settings, conn, backend=store).flush()
    assert (result.pending, result.dead_lettered) == (0, 0)
    return store


def _reap(proc: subprocess.Popen[str]) -> int | None:
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


class CrashAfter:
    """The real SQLite store; the process "dies" (an exception no flush
    catches) right after the CRM applied the first upsert of `obj`."""

    def __init__(self, store: SqliteStore, obj: str) -> None:
        self.store, self.obj, self.armed = store, obj, True
        self.name = store.name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.store, attr)

    def upsert(self, obj: str, ext: str, records: Any) -> Any:
        answer = self.store.upsert(obj, ext, records)
        if self.armed and obj == self.obj:
            self.armed = False
            raise SystemExit("killed after the CRM applied the write")
        return answer


def test_account_name_written_just_before_a_crash_stays_mailsyncs(
    tmp_path: Path,
) -> None:
    """Found by the kill -9 test: after a crash between the CRM applying an
    Account upsert and the state commit, mailsync took the Name it had written
    for someone else's and never updated it again."""
    settings = from_dict(
        {
            "state": {"path": str(tmp_path / "state.sqlite3")},
            "crm": {"sqlite": {"path": str(tmp_path / "crm.sqlite3")}},
        }
    )
    conn = open_db(settings.state.path)
    store = SqliteStore(settings.crm.sqlite_path)
    first, renamed = (
        Event(
            kind=Kind.OFFER_ACCEPTED,
            channel=Channel.EMAIL,
            source_id=f"crash-{n}@example",
            occurred_at=datetime(2026, 3, n, tzinfo=UTC),
            agreement_id=f"agmt-crash{n}",
            customer_account_id="111122223333",
            customer_account_ids=("111122223333",),
            customer_name=name,
        )
        for n, name in ((1, "Acme"), (2, "Acme Corp"))
    )
    Outbox(conn).submit(first)
    with pytest.raises(SystemExit):
        CrmSync(settings, conn, backend=CrashAfter(store, m.ACCOUNT)).flush()
    assert [a["Name"] for a in store.fetch_all(m.ACCOUNT)] == ["Acme"]
    Outbox(conn).submit(renamed)
    result = CrmSync(settings, conn, backend=store).flush()
    assert (result.written, result.pending) == (2, 0)
    assert [a["Name"] for a in store.fetch_all(m.ACCOUNT)] == ["Acme Corp"]
