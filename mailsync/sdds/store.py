"""The compact per-key store of current feed revisions, in the state DB.

A month file may hold hundreds of thousands of rows and invoices span months
(billed in one file, disbursed in a later one), so recomputing needs every
current row, not only the rows of the file just read. Rather than Python
objects per row, the rows live here: one row per billing event (only the
columns the computation reads), one per agreement and account revision. The
versioning rule of `mailsync.sdds.versioning` is applied by the upsert itself
(`ON CONFLICT … WHERE newer`), so reading a file again, or a grown file from
its start, leaves the same rows. Every method runs inside the caller's
transaction (`mailsync.sdds.feedsync` commits rows, file cursors and the
records they produce together).
"""

from __future__ import annotations

import functools
import operator
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from mailsync.sdds.compute import Agreement, Billing
from mailsync.sdds.csvfeed import ACCOUNT, AGREEMENTS, BILLING
from mailsync.sdds.versioning import checksum
from mailsync.statedb import ensure

_DDL = """
CREATE TABLE IF NOT EXISTS sdds_billing (
    id TEXT PRIMARY KEY, vf TEXT NOT NULL, ud TEXT NOT NULL, del INTEGER NOT NULL,
    tie INTEGER NOT NULL, agreement TEXT NOT NULL, line TEXT NOT NULL,
    dis INTEGER NOT NULL,
    action TEXT, ttype TEXT, amount TEXT, currency TEXT, bi TEXT, invoice_id TEXT,
    invoice_date TEXT, due TEXT, tref TEXT, bref TEXT, disb_id TEXT, from_acct TEXT,
    product_id TEXT, broker TEXT, buyer_invoice_id TEXT, buyer_invoice_date TEXT,
    offer_id TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sdds_agreements (
    id TEXT NOT NULL, vf TEXT NOT NULL, ud TEXT NOT NULL, del INTEGER NOT NULL,
    tie INTEGER NOT NULL, status TEXT, acceptor TEXT, value TEXT, currency TEXT,
    offer_id TEXT, start_time TEXT, end_time TEXT, acceptance_time TEXT,
    preceding TEXT, PRIMARY KEY (id, vf)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sdds_accounts (
    id TEXT NOT NULL, vf TEXT NOT NULL, ud TEXT NOT NULL, del INTEGER NOT NULL,
    tie INTEGER NOT NULL, aws_account_id TEXT, PRIMARY KEY (id, vf)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sdds_files (
    key TEXT PRIMARY KEY, signature TEXT NOT NULL, rows INTEGER NOT NULL,
    read_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sdds_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sdds_published (
    obj TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (obj, key)
) WITHOUT ROWID;
"""

_NEWER = "WHERE (excluded.vf, excluded.ud, excluded.del, excluded.tie) > "


def _upsert(table: str, cols: list[str], key: list[str]) -> str:
    sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
        f"({', '.join('?' * len(cols))}) ON CONFLICT ({', '.join(key)}) DO UPDATE "
        f"SET {sets} {_NEWER}({table}.vf, {table}.ud, {table}.del, {table}.tie)"
    )


_B = BILLING.index
_BILLING_COLS = (
    "id vf ud del tie agreement line dis action ttype amount currency bi "
    "invoice_id invoice_date due tref bref disb_id from_acct product_id broker "
    "buyer_invoice_id buyer_invoice_date offer_id"
).split()
_BILLING_SQL = _upsert("sdds_billing", _BILLING_COLS, ["id"])
_B_ID, _B_VF, _B_UD, _B_DEL = (
    _B("billing_event_id"),
    _B("valid_from"),
    _B("update_date"),
    _B("delete_date"),
)
_B_FIELDS = [
    _B(n)
    for n in (
        "action transaction_type amount currency balance_impacting invoice_id "
        "invoice_date payment_due_date transaction_reference_id "
        "buyer_transaction_reference_id disbursement_billing_event_id "
        "from_account_id product_id broker_id buyer_invoice_id buyer_invoice_date "
        "offer_id"
    ).split()
]
_B_AGR, _B_TT, _B_TREF, _B_BREF, _B_BINV, _B_BLINE = (
    _B("agreement_id"),
    _B("transaction_type"),
    _B("transaction_reference_id"),
    _B("buyer_transaction_reference_id"),
    _B("buyer_invoice_id"),
    _B("buyer_line_item_id"),
)

_A = AGREEMENTS.index
_AGR_COLS = (
    "id vf ud del tie status acceptor value currency offer_id start_time "
    "end_time acceptance_time preceding"
).split()
_AGR_SQL = _upsert("sdds_agreements", _AGR_COLS, ["id", "vf"])
_A_FIELDS = [
    _A(n)
    for n in (
        "status acceptor_account_id estimated_agreement_value currency_code "
        "offer_id start_time end_time acceptance_time preceding_agreement_id"
    ).split()
]
_b_fields = operator.itemgetter(*_B_FIELDS)
_a_fields = operator.itemgetter(*_A_FIELDS)
_as_billing: Any = functools.partial(tuple.__new__, Billing)
_ACC_SQL = _upsert(
    "sdds_accounts", "id vf ud del tie aws_account_id".split(), ["id", "vf"]
)
_C_AWS = ACCOUNT.index("aws_account_id")


class FeedStore:
    """The current revisions of every feed row read so far."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        ensure(conn, _DDL)

    # -- rows in ---------------------------------------------------------------

    def add(self, feed: str, rows: Iterable[tuple[str | None, ...]]) -> tuple[int, str]:
        """Apply `rows` of `feed` (csvfeed order); return (rows read, the
        greatest `update_date` among them, "" when none)."""
        seen: list[Any] = [0, ""]

        def count(
            it: Iterable[tuple[str | None, ...]],
        ) -> Iterator[tuple[str | None, ...]]:
            top = ""
            n = 0
            for r in it:
                n += 1
                ud = r[2]
                if ud and ud > top:
                    top = ud
                if r[0]:
                    yield r
            seen[0], seen[1] = n, top

        if feed == BILLING.name:
            self.conn.executemany(_BILLING_SQL, map(_billing_row, count(rows)))
        elif feed == AGREEMENTS.name:
            self.conn.executemany(_AGR_SQL, map(_agreement_row, count(rows)))
        else:
            self.conn.executemany(_ACC_SQL, map(_account_row, count(rows)))
        return int(seen[0]), str(seen[1])

    # -- file cursors and small state ------------------------------------------

    def signature(self, key: str) -> str | None:
        row = self.conn.execute(
            "SELECT signature FROM sdds_files WHERE key = ?", (key,)
        ).fetchone()
        return str(row[0]) if row else None

    def set_file(self, key: str, signature: str, rows: int, at: str) -> None:
        self.conn.execute(
            "INSERT INTO sdds_files (key, signature, rows, read_at) VALUES (?,?,?,?) "
            "ON CONFLICT (key) DO UPDATE SET signature = excluded.signature, "
            "rows = excluded.rows, read_at = excluded.read_at",
            (key, signature, rows, at),
        )

    def files(self) -> list[tuple[str, str, int, str]]:
        return [
            (str(k), str(s), int(n), str(a))
            for k, s, n, a in self.conn.execute(
                "SELECT key, signature, rows, read_at FROM sdds_files ORDER BY key"
            )
        ]

    def meta(self, key: str) -> str | None:
        row = self.conn.execute(
            "SELECT value FROM sdds_meta WHERE key = ?", (key,)
        ).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO sdds_meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
            "DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- rows out (for `mailsync.sdds.compute`) --------------------------------

    def agreements(self) -> dict[str, Agreement]:
        """The current revision per agreement: the latest non-deleted
        `valid_from` (its newest `update_date` already won the upsert)."""
        out: dict[str, Agreement] = {}
        for row in self.conn.execute(
            "SELECT id, vf, ud, status, acceptor, value, currency, offer_id, "
            "start_time, end_time, acceptance_time, preceding FROM sdds_agreements "
            "WHERE del = 0 ORDER BY id, vf"
        ):
            out[row[0]] = Agreement._make((*row[:2], row[2] or None, *row[3:]))
        return out

    def accounts(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for guid, number in self.conn.execute(
            "SELECT id, aws_account_id FROM sdds_accounts WHERE del = 0 ORDER BY id, vf"
        ):
            if number:
                out[guid] = number.zfill(12) if number.isdigit() else number
        return out

    def disbursements(self) -> dict[str, str]:
        """Disbursement event ID -> its `invoice_date` (the disbursement date)."""
        return {
            str(i): str(d)
            for i, d in self.conn.execute(
                "SELECT id, invoice_date FROM sdds_billing "
                "WHERE del = 0 AND dis = 1 AND invoice_date IS NOT NULL"
            )
        }

    def billing(self) -> Iterator[Billing]:
        """Current line rows sorted by (agreement, line), streamed (SQLite's
        sorter spills to temporary files, so memory stays bounded)."""
        cur = self.conn.execute(
            "SELECT agreement, line, action, ttype, amount, currency, bi, invoice_id, "
            "invoice_date, due, tref, bref, disb_id, from_acct, product_id, broker, "
            "buyer_invoice_id, buyer_invoice_date, offer_id FROM sdds_billing "
            "WHERE del = 0 AND dis = 0 ORDER BY agreement, line"
        )
        # tuple.__new__ straight from C (`Billing._make` is a Python call per
        # row); the SELECT above gives exactly Billing's fields in order.
        return map(_as_billing, cur)


def _billing_row(r: tuple[str | None, ...]) -> tuple[object, ...]:
    ttype = r[_B_TT] or ""
    binv, bline = r[_B_BINV], r[_B_BLINE]
    line = f"{binv}:{bline}" if binv and bline else (r[_B_BREF] or r[_B_TREF] or "")
    return (
        r[_B_ID],
        r[_B_VF] or "",
        r[_B_UD] or "",
        1 if r[_B_DEL] else 0,
        checksum(r),
        r[_B_AGR] or "",
        line,
        1 if ttype.startswith("DISBURSEMENT") else 0,
        *_b_fields(r),
    )


def _agreement_row(r: tuple[str | None, ...]) -> tuple[object, ...]:
    return (
        r[0],
        r[1] or "",
        r[2] or "",
        1 if r[3] else 0,
        checksum(r),
        *_a_fields(r),
    )


def _account_row(r: tuple[str | None, ...]) -> tuple[object, ...]:
    return (r[0], r[1] or "", r[2] or "", 1 if r[3] else 0, checksum(r), r[_C_AWS])
