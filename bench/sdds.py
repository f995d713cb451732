"""Seller Data Feeds benchmark: the whole feed path against a bare csv read.

Generates a billing feed of `--rows` rows (default 500,000: 50,000 invoices
of 10 rows each - seller revenue, listing fee, seller and AWS tax, a refund,
a correction, and four disbursed rows - over 5,000 agreements) plus its
agreements and account feeds, then in the same run measures

- baseline: `csv.reader` over the billing file, every field touched;
- whole path: `mailsync import`'s pass (`FeedSync.run`: streaming reader,
  versioning upsert into the feed store, the money computation, the diff and
  the record outbox) into a fresh state store, in a child process so that
  its peak RSS is its own;

and prints rows/s of both, the ratio (goal >= 0.3x the bare read) and the
path's peak RSS (goal <= 200 MB). `--crm` also times the CRM flush of the
records into the embedded SQLite store (reported on its own).

Usage: .venv/bin/python bench/sdds.py [--rows 500000] [--crm]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEADER = (
    "billing_event_id,from_account_id,to_account_id,end_user_account_id,product_id,"
    "action,transaction_type,parent_billing_event_id,disbursement_billing_event_id,"
    "amount,currency,balance_impacting,invoice_date,payment_due_date,"
    "usage_period_start_date,usage_period_end_date,invoice_id,billing_address_id,"
    "transaction_reference_id,bank_trace_id,broker_id,agreement_id,"
    "buyer_transaction_reference_id,valid_from,insert_date,update_date,delete_date"
).split(",")


def generate(root: Path, rows: int) -> Path:
    invoices = rows // 10
    agreements = max(1, invoices // 10)
    bill = root / "billingeventfeed_v1/year=2026/month=01/data.csv"
    bill.parent.mkdir(parents=True)
    with bill.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(HEADER)
        for i in range(invoices):
            agmt = f"agmt-{i % agreements:08d}"
            buyer = f"acct-{i % agreements:08d}"
            inv, tref = f"inv-{i:010d}", f"TR{i:016d}"
            day = f"2026-01-{1 + i % 28:02d}"
            ts, due = f"{day}T00:00:00Z", f"2026-02-{1 + i % 28:02d}T00:00:00Z"
            upd = f"{day} 12:00:00.0"
            disb = f"dis-{i % 28:04d}"

            def row(
                n: int,
                action: str,
                ttype: str,
                amount: str,
                bi: str = "1",
                frm: str = buyer,
                u: str = ts,
                d: str = "",
                i: int = i,
                buyer: str = buyer,
                ts: str = ts,
                due: str = due,
                inv: str = inv,
                tref: str = tref,
                agmt: str = agmt,
            ) -> list[str]:
                return [
                    f"be-{i:010d}-{n}",
                    frm,
                    "seller",
                    buyer,
                    "prod-bench",
                    action,
                    ttype,
                    "",
                    d,
                    amount,
                    "USD",
                    bi,
                    ts,
                    due,
                    ts,
                    ts,
                    inv,
                    "addr",
                    tref,
                    "",
                    "AWS_INC",
                    agmt,
                    tref,
                    ts,
                    ts,
                    u,
                    "",
                ]

            w.writerow(row(0, "INVOICED", "SELLER_REV_SHARE", "100.00"))
            w.writerow(row(1, "INVOICED", "AWS_REV_SHARE", "-3.000000", frm="seller"))
            w.writerow(row(2, "INVOICED", "SELLER_TAX_SHARE", "8.5"))
            w.writerow(row(3, "INVOICED", "AWS_TAX_SHARE", "5", bi="0"))
            w.writerow(row(4, "INVOICED", "SELLER_REV_SHARE_REFUND", "-10"))
            w.writerow(row(0, "INVOICED", "SELLER_REV_SHARE", "120.00", u=upd))
            w.writerow(row(6, "DISBURSED", "SELLER_REV_SHARE", "-120", "0", d=disb))
            w.writerow(row(7, "DISBURSED", "AWS_REV_SHARE", "3", "0", d=disb))
            w.writerow(row(8, "DISBURSED", "SELLER_TAX_SHARE", "-8.5", "0", d=disb))
            w.writerow(
                row(9, "DISBURSED", "SELLER_REV_SHARE_REFUND", "10", "0", d=disb)
            )
        for k in range(28):
            w.writerow(
                [
                    f"dis-{k:04d}",
                    "AWS",
                    "seller",
                    "",
                    "",
                    "DISBURSED",
                    "DISBURSEMENT",
                    "",
                    "",
                    "1000",
                    "USD",
                    "1",
                    f"2026-02-{1 + k:02d}T00:00:00Z",
                    "",
                    "",
                    "",
                    "",
                    "",
                    f"DTR{k}",
                    "",
                    "AWS_INC",
                    "",
                    "",
                    "2026-02-01T00:00:00Z",
                    "",
                    "2026-02-01T00:00:00Z",
                    "",
                ]
            )
    agr = root / "agreementfeed_v1/year=2026/month=01/data.csv"
    acc = root / "accountfeed_v1/year=2026/month=01/data.csv"
    agr.parent.mkdir(parents=True)
    acc.parent.mkdir(parents=True)
    with agr.open("w", newline="") as fa, acc.open("w", newline="") as fc:
        wa, wc = (
            csv.writer(fa, lineterminator="\n"),
            csv.writer(fc, lineterminator="\n"),
        )
        wa.writerow(
            "agreement_id,valid_from,update_date,delete_date,status,"
            "estimated_agreement_value,currency_code,acceptor_account_id,"
            "offer_id,start_time,end_time,acceptance_time".split(",")
        )
        wc.writerow(
            "account_id,aws_account_id,valid_from,update_date,delete_date".split(",")
        )
        for a in range(agreements):
            wa.writerow(
                [
                    f"agmt-{a:08d}",
                    "2025-12-01T00:00:00Z",
                    "",
                    "",
                    "ACTIVE",
                    "12000",
                    "USD",
                    f"acct-{a:08d}",
                    f"offer-{a}",
                    "2025-12-01T00:00:00Z",
                    "2026-11-30T23:59:59Z",
                    "2025-12-01T00:00:00Z",
                ]
            )
            wc.writerow([f"acct-{a:08d}", f"{a:012d}", "2020-01-01T00:00:00Z", "", ""])
    return bill


def baseline(path: Path) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            for _ in row:
                pass
            n += 1
    return n - 1, time.perf_counter() - start


def child(root: Path, state: Path, crm: bool) -> None:
    """The whole path, in this (child) process; prints JSON figures."""
    from mailsync.config import from_dict
    from mailsync.crm.sync import CrmSync
    from mailsync.sdds.feedsync import FeedSync
    from mailsync.sdds.files import local_files
    from mailsync.statedb import open_db

    folders = {
        "billing_event": "billingeventfeed_v1",
        "agreements": "agreementfeed_v1",
        "account": "accountfeed_v1",
    }
    conn = open_db(state / "state.sqlite3")
    start = time.perf_counter()
    report = FeedSync(conn).run(local_files([root], folders))
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "seconds": seconds,
        "rss_mb": rss,
        "invoices": report.invoices,
        "records": report.submitted,
        "rows": report.rows,
    }
    if crm:
        settings = from_dict(
            {
                "state": {"path": str(state / "state.sqlite3")},
                "crm": {"backend": "sqlite", "sqlite": {"path": str(state / "crm.db")}},
            }
        )
        start = time.perf_counter()
        sync = CrmSync(settings, conn)
        result = sync.flush()
        sync.close()
        out["crm_seconds"] = time.perf_counter() - start
        out["crm_records"] = result.records
        out["crm_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--crm", action="store_true", help="also time the CRM flush")
    ap.add_argument(
        "--child", nargs=2, metavar=("FEEDS", "STATE"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.crm)
        return 0
    with tempfile.TemporaryDirectory(prefix="mailsync-bench-sdds-") as tmp:
        root = Path(tmp) / "feeds"
        bill = generate(root, args.rows)
        rows, base_s = baseline(bill)
        state = Path(tmp) / "state"
        state.mkdir()
        cmd = [sys.executable, __file__, "--child", str(root), str(state)]
        done = subprocess.run(
            cmd + (["--crm"] if args.crm else []),
            capture_output=True,
            text=True,
            check=True,
        )
        fig = json.loads(done.stdout.strip().splitlines()[-1])
    path_rate = fig["rows"] / fig["seconds"]
    base_rate = rows / base_s
    print(f"billing rows: {rows:,} ({fig['invoices']:,} invoices)")
    print(f"bare csv read: {base_rate:,.0f} rows/s ({base_s:.2f} s)")
    print(
        f"whole path: {path_rate:,.0f} rows/s ({fig['seconds']:.2f} s, "
        f"{fig['records']:,} records to the outbox)"
    )
    print(f"ratio: {path_rate / base_rate:.2f}x the bare read (goal >= 0.3x)")
    print(f"peak RSS of the path: {fig['rss_mb']:.0f} MB (goal <= 200 MB)")
    if "crm_seconds" in fig:
        print(
            f"CRM flush (SQLite store): {fig['crm_records']:,} records in "
            f"{fig['crm_seconds']:.1f} s, peak RSS {fig['crm_rss_mb']:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
