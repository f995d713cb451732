"""IMAP benchmark against a local Dovecot (tests/dovecot.py).

1. Backfill of N messages (default 5,000) through the whole IMAP source into
   the outbox, against the bare rate of FETCH + parse in the same run
   (the baseline); prints messages/s and the ratio (goal >= 0.7).
2. IDLE latency from APPEND to the event being durable in the outbox over 50
   messages: p50 / p95 (goal p50 <= 1.0 s; Dovecot itself waits 0.5 s).
3. Peak RSS of this process during the backfill (goal <= 150 MB).

The backfill and the baseline alternate `ROUNDS` times (each backfill into a
fresh state store) and the best of each is kept: on a shared machine the
other load varies within seconds.

Usage: .venv/bin/python bench/imap.py [N]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from dovecot import Dovecot
from mail import offer_accepted

from mailsync import config
from mailsync.crm.outbox import Outbox
from mailsync.ledger import Ledger
from mailsync.parsers import parse_email
from mailsync.pipeline import Pipeline
from mailsync.sources.imap import ImapSource
from mailsync.statedb import open_db


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def source_for(server: Dovecot, user: str, state: Path) -> tuple[ImapSource, Outbox]:
    os.environ["BENCH_IMAP_PASSWORD"] = server.users[user]
    settings = config.from_dict(
        {
            "state": {"path": str(state)},
            "security": {"require_dkim": False},
            "source": {
                "imap": {
                    "host": "127.0.0.1",
                    "port": server.port,
                    "tls": "none",
                    "username": user,
                    "password_env": "BENCH_IMAP_PASSWORD",
                    "poll_interval": 3600,
                }
            },
        }
    )
    conn = open_db(state)
    return ImapSource(settings.imap[0], Pipeline(settings, Ledger(conn))), Outbox(conn)


def baseline(server: Dovecot, user: str, n: int) -> float:
    c = server.client(user)
    c.select_folder("INBOX", readonly=True)
    uids = c.search("ALL")
    t0 = time.perf_counter()
    parsed = 0
    for i in range(0, len(uids), 100):
        for data in c.fetch(uids[i : i + 100], ["BODY.PEEK[]"]).values():
            parsed += parse_email(data[b"BODY[]"]).recognized
    elapsed = time.perf_counter() - t0
    c.logout()
    assert parsed == n, parsed
    return n / elapsed


ROUNDS = 3


def backfill(server: Dovecot, user: str, n: int, state: Path) -> tuple[float, float]:
    source, outbox = source_for(server, user, state)
    peak = [rss_mb()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    result = source.run_pass(outbox, threading.Event())
    elapsed = time.perf_counter() - t0
    done.set()
    sampler.join()
    source.close()
    assert result.synced == n and outbox.depth() == n, result
    return n / elapsed, peak[0]


def idle_latency(server: Dovecot, user: str, tmp: Path, count: int = 50) -> list[float]:
    state = tmp / "idle.sqlite3"
    stop = threading.Event()
    ready = threading.Event()

    def loop() -> None:  # sqlite connections belong to the thread that opens them
        source, outbox = source_for(server, user, state)
        while not stop.is_set():
            source.run_pass(outbox, stop)
            ready.set()
            source.wait_for_input(540, stop)
        source.close()

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    ready.wait(10)
    time.sleep(0.2)  # in IDLE
    watcher = Outbox(open_db(state))
    latencies = []
    with server.client(user) as c:
        for i in range(count):
            t0 = time.perf_counter()
            c.append("INBOX", offer_accepted(900_000 + i))
            while watcher.depth() < i + 1:
                if time.perf_counter() - t0 > 60:
                    raise SystemExit(f"IDLE: message {i} not durable after 60 s")
                time.sleep(0.005)
            latencies.append(time.perf_counter() - t0)
    stop.set()
    worker.join(5)
    return latencies


def fmt(values: list[float]) -> str:
    return "/".join(f"{v:.0f}" for v in values)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    server = Dovecot().start()
    tmp = Path(tempfile.mkdtemp(prefix="mailsync-bench-"))
    try:
        user, idle_user = server.add_user(), server.add_user()
        with server.client(user) as c:
            msgs = [offer_accepted(i) for i in range(n)]
            for i in range(0, n, 200):
                c.multiappend("INBOX", msgs[i : i + 200])
        size = sum(len(m) for m in msgs) / n
        print(f"mailbox: {n} messages, mean {size:.0f} bytes, Dovecot on loopback")
        bases, rates, peaks = [], [], []
        for r in range(ROUNDS):
            bases.append(baseline(server, user, n))
            rate, peak = backfill(server, user, n, tmp / f"backfill{r}.sqlite3")
            rates.append(rate)
            peaks.append(peak)
        base, rate = max(bases), max(rates)
        every = f"baseline {fmt(bases)}, backfill {fmt(rates)}"
        print(f"(best of {ROUNDS} rounds; all: {every})")
        print(f"baseline FETCH+parse:  {base:8.0f} msg/s  (the reference)")
        print(f"backfill into outbox:  {rate:8.0f} msg/s")
        print(f"ratio backfill/base:   {rate / base:8.2f}        (goal >= 0.70)")
        print(f"peak RSS in backfill:  {max(peaks):8.1f} MB     (goal <= 150)")
        lat = idle_latency(server, idle_user, tmp)
        p50 = statistics.median(lat)
        p95 = statistics.quantiles(lat, n=20)[18]
        print(
            f"IDLE APPEND->durable:  p50 {p50:.3f} s  p95 {p95:.3f} s over"
            f" {len(lat)} messages (goal p50 <= 1.0; Dovecot waits 0.5)"
        )
    finally:
        server.destroy()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
