"""CRM sync benchmark: API calls and throughput against the Salesforce emulator.

Syncs N events (default 10,000: 2,000 agreements x 5 events - offer accepted
and agreement started by email, agreement created by EventBridge (a
cross-channel duplicate), a cancellation by email or an EventBridge "ended",
and the offer's publication - shuffled) through the real flusher
(`CrmSync.flush` -> `SalesforceBackend`, sObject Collections) into the HTTP
emulator, then runs a naive baseline in the same process: one simple-salesforce
``sf.<Obj>.upsert`` per record per event, on a sample. Prints API calls per
1,000 events, events/s and the ratios. Goal: <= 15 API calls per 1,000 events.

Usage: .venv/bin/python bench/crm.py [--agreements 2000] [--baseline-events 2000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sfemu import Emulator  # noqa: E402
from simple_salesforce.format import format_external_id  # noqa: E402

from mailsync.config import from_dict  # noqa: E402
from mailsync.crm import mapping as m  # noqa: E402
from mailsync.crm import merge  # noqa: E402
from mailsync.crm.outbox import Outbox  # noqa: E402
from mailsync.crm.salesforce import SalesforceBackend, open_salesforce  # noqa: E402
from mailsync.crm.sync import CrmSync  # noqa: E402
from mailsync.event import Channel, Event, Kind, Money  # noqa: E402
from mailsync.statedb import open_db  # noqa: E402


def make_events(agreements: int, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    for i in range(agreements):
        agmt, offer, buyer = (
            f"agmt-{i:06d}",
            f"offer-{i:06d}",
            f"{100000000000 + i // 2}",
        )
        t = base + timedelta(hours=i)
        common = {
            "agreement_id": agmt,
            "offer_id": offer,
            "customer_account_id": buyer,
            "customer_account_ids": (buyer,),
        }
        out += [
            Event(
                Kind.OFFER_PUBLISHED,
                source_id=f"pub-{i}@x",
                occurred_at=t,
                offer_id=offer,
                offer_name=f"Offer {i}",
                customer_account_ids=(buyer,),
            ),
            Event(
                Kind.OFFER_ACCEPTED,
                source_id=f"acc-{i}@x",
                occurred_at=t + timedelta(hours=1),
                customer_name=f"Buyer {i // 2}",
                purchase_amount=Money(Decimal("1200.00"), "USD"),
                acceptance_date=date(2024, 1, 1),
                **common,
            ),
            Event(
                Kind.AGREEMENT_CREATED,
                channel=Channel.EVENTBRIDGE,
                source_id=f"eb-{i}",
                occurred_at=t + timedelta(hours=1),
                agreement_status="ACTIVE",
                **common,
            ),
            Event(
                Kind.AGREEMENT_STARTED,
                source_id=f"start-{i}@x",
                occurred_at=t + timedelta(hours=2),
                start_date=date(2024, 1, 2),
                **common,
            ),
            Event(
                Kind.AGREEMENT_CANCELLED,
                source_id=f"end-{i}@x",
                occurred_at=t + timedelta(days=30),
                **common,
            )
            if i % 2
            else Event(
                Kind.AGREEMENT_ENDED,
                channel=Channel.EVENTBRIDGE,
                source_id=f"ended-{i}",
                occurred_at=t + timedelta(days=30),
                agreement_status="EXPIRED",
                **common,
            ),
        ]
    rng.shuffle(out)
    return out


def settings(tmp: Path, emu: Emulator):  # type: ignore[no-untyped-def]
    return from_dict(
        {
            "state": {"path": str(tmp / "state.sqlite3")},
            "crm": {
                "backend": "salesforce",
                "salesforce": {
                    "username": emu.username,
                    "endpoint_url": emu.url,
                    "password_env": "BENCH_SF_PASSWORD",
                    "security_token_env": "BENCH_SF_TOKEN",
                },
            },
        }
    )


def start(api_max: int) -> Emulator:
    emu = Emulator(api_max=api_max).start()
    os.environ["BENCH_SF_PASSWORD"], os.environ["BENCH_SF_TOKEN"] = (
        emu.password,
        emu.security_token,
    )
    return emu


def run_flusher(events: list[Event]) -> tuple[int, float, int]:
    emu = start(10_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = settings(Path(tmp), emu)
        backend = open_salesforce(cfg.crm.salesforce)
        conn = open_db(cfg.state.path)
        outbox = Outbox(conn)
        for event in events:
            outbox.submit(event)
        before = emu.api_calls
        t0 = time.perf_counter()
        result = CrmSync(cfg, conn, backend=backend).flush()
        elapsed = time.perf_counter() - t0
        assert result.pending == 0 and result.dead_lettered == 0, result
        records = sum(len(emu.records(o)) for o in m.OBJECTS)
    emu.stop()
    return emu.api_calls - before, elapsed, records


def run_naive(events: list[Event]) -> tuple[int, float]:
    """One upsert call per record an event touches (no batching, no merge)."""
    emu = start(10_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        backend: SalesforceBackend = open_salesforce(
            settings(Path(tmp), emu).crm.salesforce
        )
        sf, mapping = backend.sf, m.CrmMapping()
        before = emu.api_calls
        t0 = time.perf_counter()
        for event in events:
            touches = sorted(m.touches(event), key=lambda t: m.OBJECTS.index(t.obj))
            for touch in touches:
                record = merge.MirrorRecord(touch.obj, touch.key)
                merge.apply(record, touch, m.event_version(event))
                body = mapping.to_crm(touch.obj, merge.render(record))
                ext = m.EXTERNAL_ID[touch.obj]
                value = body.pop(ext)
                body = {
                    k: (float(v) if isinstance(v, Decimal) else v)
                    for k, v in body.items()
                }
                getattr(sf, touch.obj).upsert(format_external_id(ext, value), body)
        elapsed = time.perf_counter() - t0
    emu.stop()
    return emu.api_calls - before, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agreements", type=int, default=2000)
    parser.add_argument("--baseline-events", type=int, default=2000)
    args = parser.parse_args()
    events = make_events(args.agreements)
    calls, secs, records = run_flusher(events)
    sample = events[: args.baseline_events]
    naive_calls, naive_secs = run_naive(sample)
    per_k = calls / len(events) * 1000
    naive_per_k = naive_calls / len(sample) * 1000
    rate, naive_rate = len(events) / secs, len(sample) / naive_secs
    print(
        f"events: {len(events)} ({args.agreements} agreements), CRM records: {records}"
    )
    print(
        f"flusher (collections): {calls} API calls = {per_k:.1f} per 1,000 events; "
        f"{rate:,.0f} events/s"
    )
    print(
        f"naive (one upsert per record, {len(sample)}-event sample): {naive_calls} API "
        f"calls = {naive_per_k:.1f} per 1,000 events; {naive_rate:,.0f} events/s"
    )
    goal = "met" if per_k <= 15 else "MISSED"
    print(
        f"ratio: {naive_per_k / per_k:.1f}x fewer API calls, "
        f"{rate / naive_rate:.1f}x the throughput; "
        f"goal <= 15 calls per 1,000 events: {goal}"
    )


if __name__ == "__main__":
    main()
