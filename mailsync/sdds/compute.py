"""The money computation of contract section 7, pure: rows in, records out.

No I/O, no clock: every value is a function of the current feed rows given
(`mailsync.sdds.versioning` decided which rows are current). The rules, with
AWS's own report SQL (`billed_revenue_report.sql`,
`collections_and_disbursements_report.sql`, aws-samples/aws-marketplace-
api-samples) as the basis:

- A billing row belongs to a buyer invoice *line*: ``buyer_invoice_id:
  buyer_line_item_id`` when the feed has them, else
  `buyer_transaction_reference_id` (else `transaction_reference_id`).
  `DISBURSED` rows carry the line of the rows they settle. Disbursement events
  themselves (`transaction_type` DISBURSEMENT / DISBURSEMENT_FAILURE) are not
  line rows; they give the disbursement date through
  `disbursement_billing_event_id`.
- Rows of an agreement absent from the agreements feed are skipped (as AWS's
  reports do), and so are rows with no line reference.
- The buyer invoice of a line: `buyer_invoice_id`, else the invoice of its
  INVOICED/FORGIVEN rows whose `transaction_reference_id` is the buyer's
  (a listing fee on a separate AWS_EUROPE seller invoice has another one).
  One record per (buyer invoice, agreement) sums its lines.
- Amounts keep the feed's signs until the field definitions make them
  positive (`Invoice`); sums are exact `Decimal`s, rounded to cents
  (half up, like Athena's `round`) only by `cents()`.
- `as_of` is the greatest `update_date` day of the billing feed read: days
  past due are counted to it, never to today.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

ZERO = Decimal(0)
_CENT = Decimal("0.01")
_INVOICED = frozenset({"INVOICED", "FORGIVEN"})
_REFUND = frozenset({"SELLER_REV_SHARE_REFUND", "SELLER_REV_SHARE_CREDIT"})


class Billing(NamedTuple):
    """One current billing row, as the store hands it over (this order)."""

    agreement_id: str
    line: str
    action: str | None
    transaction_type: str | None
    amount: str | None
    currency: str | None
    balance_impacting: str | None
    invoice_id: str | None
    invoice_date: str | None
    payment_due_date: str | None
    transaction_reference_id: str | None
    buyer_transaction_reference_id: str | None
    disbursement_billing_event_id: str | None
    from_account_id: str | None
    product_id: str | None
    broker_id: str | None
    buyer_invoice_id: str | None
    buyer_invoice_date: str | None
    offer_id: str | None


class Agreement(NamedTuple):
    """The current revision of one agreement (agreements feed)."""

    agreement_id: str
    valid_from: str
    update_date: str | None
    status: str | None
    acceptor_account_id: str | None
    estimated_agreement_value: str | None
    currency_code: str | None
    offer_id: str | None
    start_time: str | None
    end_time: str | None
    acceptance_time: str | None
    preceding_agreement_id: str | None


@dataclass
class Invoice:
    """One buyer invoice of one agreement; amounts exact, positive figures."""

    invoice_id: str
    agreement_id: str
    customer_account_id: str | None = None
    payer_account_id: str | None = None
    offer_id: str | None = None
    product_id: str | None = None
    transaction_reference_id: str | None = None
    invoice_date: str | None = None  #: YYYY-MM-DD
    payment_due_date: str | None = None
    currency: str | None = None
    broker: str | None = None
    invoiced: Decimal = ZERO
    refunded: Decimal = ZERO
    listing_fee: Decimal = ZERO
    seller_tax: Decimal = ZERO
    aws_tax: Decimal = ZERO
    net: Decimal = ZERO
    disbursed: Decimal = ZERO
    disbursement_date: str | None = None
    has_disbursement: bool = False
    status_as_of: str | None = None

    @property
    def key(self) -> str:
        return f"{self.invoice_id}:{self.agreement_id}"

    @property
    def outstanding(self) -> Decimal:
        return self.net - self.disbursed

    @property
    def disbursement_status(self) -> str:
        """Contract section 7: the first that applies (AWS's SQL
        `disbursement_flag`, with "Over" reported as Disbursed)."""
        out = self.outstanding
        if not self.has_disbursement:
            return "Not disbursed"
        if out <= 0:
            return "Disbursed"
        if self.disbursed != 0:
            return "Partially disbursed"
        return "Disbursement reversed"

    @property
    def days_past_due(self) -> int | None:
        if self.outstanding <= 0 or not self.payment_due_date or not self.status_as_of:
            return None
        days = (
            date.fromisoformat(self.status_as_of)
            - date.fromisoformat(self.payment_due_date)
        ).days
        return max(0, days)


@dataclass
class Rollup:
    """Per-agreement sums over its invoices (0 when it has none)."""

    agreement: Agreement
    customer_account_id: str | None = None
    invoiced: Decimal = ZERO
    refunded: Decimal = ZERO
    net: Decimal = ZERO
    disbursed: Decimal = ZERO
    outstanding: Decimal = ZERO
    last_invoice_date: str | None = None
    next_payment_due_date: str | None = None
    last_disbursement_date: str | None = None
    invoices: int = 0

    def add(self, inv: Invoice) -> None:
        self.invoices += 1
        self.invoiced += inv.invoiced
        self.refunded += inv.refunded
        self.net += inv.net
        self.disbursed += inv.disbursed
        self.outstanding += inv.outstanding
        self.last_invoice_date = _max(self.last_invoice_date, inv.invoice_date)
        self.last_disbursement_date = _max(
            self.last_disbursement_date, inv.disbursement_date
        )
        if inv.outstanding > 0 and inv.payment_due_date:
            due = self.next_payment_due_date
            if due is None or inv.payment_due_date < due:
                self.next_payment_due_date = inv.payment_due_date


@dataclass
class Stats:
    skipped_no_agreement: int = 0
    skipped_no_line: int = 0
    rows: int = 0
    agreements_with_rows: set[str] = field(default_factory=set)


def cents(value: Decimal) -> Decimal:
    """Round to cents, half up."""
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def day(ts: str | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` -> ``YYYY-MM-DD``; year 9999 ("no end") -> None."""
    if not ts or ts.startswith("9999"):
        return None
    return ts[:10]


def _max(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


def _dec(text: str | None, memo: dict[str, Decimal]) -> Decimal:
    if not text:
        return ZERO
    got = memo.get(text)
    if got is None:
        got = Decimal(text)
        if len(memo) > 50_000:
            memo.clear()
        memo[text] = got
    return got


def buyer_invoice(rows: list[Billing]) -> str | None:
    """The buyer invoice of one line's rows (see the module docstring)."""
    ids = [r.buyer_invoice_id for r in rows if r.buyer_invoice_id]
    if ids:
        return max(ids)
    billed = [r for r in rows if r.action in _INVOICED and r.invoice_id]
    own = [
        r.invoice_id
        for r in billed
        if r.invoice_id
        and (
            not r.buyer_transaction_reference_id
            or r.transaction_reference_id == r.buyer_transaction_reference_id
        )
    ]
    if own:
        return max(own)
    if billed:
        return max(r.invoice_id for r in billed if r.invoice_id)
    return max((r.invoice_id for r in rows if r.invoice_id), default=None)


def _fold_line(
    inv: Invoice,
    rows: list[Billing],
    accounts: Mapping[str, str],
    disbursements: Mapping[str, str],
    memo: dict[str, Decimal],
) -> None:
    """Add one line's rows to its invoice record."""
    for r in rows:
        amount = _dec(r.amount, memo)
        t = r.transaction_type or ""
        if r.action in _INVOICED:
            if t == "SELLER_REV_SHARE":
                inv.invoiced += amount
                if r.from_account_id:
                    inv.payer_account_id = _max(
                        inv.payer_account_id,
                        accounts.get(r.from_account_id, _acct(r.from_account_id)),
                    )
            elif t in _REFUND:
                inv.refunded -= amount
            elif t.startswith("AWS_REV_SHARE"):
                inv.listing_fee -= amount
            elif t.startswith("SELLER_TAX_SHARE"):
                inv.seller_tax += amount
            elif t.startswith("AWS_TAX_SHARE"):
                inv.aws_tax += amount
            if r.balance_impacting == "1":
                inv.net += amount
            if r.invoice_id == inv.invoice_id:
                inv.invoice_date = _max(
                    inv.invoice_date, day(r.buyer_invoice_date or r.invoice_date)
                )
                inv.currency = inv.currency or r.currency
                inv.broker = _max(inv.broker, r.broker_id)
                inv.transaction_reference_id = _max(
                    inv.transaction_reference_id,
                    r.buyer_transaction_reference_id or r.transaction_reference_id,
                )
        elif r.action == "DISBURSED":
            inv.disbursed -= amount
            inv.has_disbursement = True
            when = disbursements.get(r.disbursement_billing_event_id or "")
            inv.disbursement_date = _max(inv.disbursement_date, day(when))
        # AWS's reports: a line's due date is the latest of all its rows
        # (a separate listing-fee invoice's included). Inlined `_max`/`day`:
        # this runs once per billing row.
        due = r.payment_due_date
        if due and not due.startswith("9999"):
            due = due[:10]
            if inv.payment_due_date is None or due > inv.payment_due_date:
                inv.payment_due_date = due
        product = r.product_id
        if product is not None and (inv.product_id is None or product > inv.product_id):
            inv.product_id = product
        if not inv.offer_id:
            inv.offer_id = r.offer_id


def _acct(value: str) -> str | None:
    """A from/acceptor account not in the account feed: usable only when it
    already is a 12-digit AWS account number (leading zeros restored)."""
    return value.zfill(12) if value.isdigit() and len(value) <= 12 else None


def account_number(accounts: Mapping[str, str], guid: str | None) -> str | None:
    if not guid:
        return None
    return accounts.get(guid) or _acct(guid)


def compute(
    agreements: Mapping[str, Agreement],
    accounts: Mapping[str, str],
    disbursements: Mapping[str, str],
    billing: Iterable[Billing],
    as_of: str | None,
    stats: Stats | None = None,
) -> Iterator[Invoice | Rollup]:
    """Invoice records and agreement roll-ups.

    `billing` must come sorted by (agreement_id, line) and hold no
    disbursement events; `disbursements`: disbursement event ID -> its
    `invoice_date`; `accounts`: account GUID -> 12-digit number; `as_of`:
    ``YYYY-MM-DD``. Per agreement that has rows: its roll-up, then its
    invoices; then the roll-ups of agreements without rows (all zero).
    """
    stats = stats if stats is not None else Stats()
    memo: dict[str, Decimal] = {}
    seen: set[str] = set()
    current_agreement: str | None = None
    invoices: dict[str, Invoice] = {}
    line_key: str | None = None
    line_rows: list[Billing] = []

    def close_line() -> None:
        if not line_rows:
            return
        agreement = agreements[line_rows[0].agreement_id]
        invoice_id = buyer_invoice(line_rows)
        if invoice_id is None:
            stats.skipped_no_line += len(line_rows)
        else:
            inv = invoices.get(invoice_id)
            if inv is None:
                inv = invoices[invoice_id] = Invoice(
                    invoice_id,
                    agreement.agreement_id,
                    customer_account_id=account_number(
                        accounts, agreement.acceptor_account_id
                    ),
                    offer_id=agreement.offer_id,
                    status_as_of=as_of,
                )
            _fold_line(inv, line_rows, accounts, disbursements, memo)
        line_rows.clear()

    def close_agreement() -> Iterator[Invoice | Rollup]:
        close_line()
        if current_agreement is None:
            return
        rollup = Rollup(
            agreements[current_agreement],
            account_number(accounts, agreements[current_agreement].acceptor_account_id),
        )
        for key in sorted(invoices):
            rollup.add(invoices[key])
        # The roll-up first: its agreement record must exist in the CRM
        # before the invoices that look it up are written.
        yield rollup
        for key in sorted(invoices):
            yield invoices[key]
        invoices.clear()

    for row in billing:
        stats.rows += 1
        if row.agreement_id != current_agreement:
            yield from close_agreement()
            current_agreement = None
            line_key = None
            if row.agreement_id not in agreements:
                stats.skipped_no_agreement += 1
                continue
            current_agreement = row.agreement_id
            seen.add(current_agreement)
        elif current_agreement is None:
            stats.skipped_no_agreement += 1
            continue
        if not row.line:
            stats.skipped_no_line += 1
            continue
        if row.line != line_key:
            close_line()
            line_key = row.line
        line_rows.append(row)
    yield from close_agreement()
    for agreement_id in sorted(set(agreements) - seen):
        agreement = agreements[agreement_id]
        yield Rollup(agreement, account_number(accounts, agreement.acceptor_account_id))
