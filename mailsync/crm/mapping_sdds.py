"""Seller Data Feed records -> CRM touches (contract section 7), pure.

The CRM names of the money records live here, next to the other
`mailsync.crm.mapping*` modules. Two kinds of touch come out:

- recomputed values (every `AWS_Invoice__c` field, the agreement roll-ups):
  the whole value each time, blanks included (a deleted disbursement clears
  the date again), applied with the version of the pass that computed them;
- agreements-feed facts (status, dates, buyer, offer, estimated value): facts
  like any event's, versioned by the revision's time, so the usual merge rules
  (newest fact wins, status never rolls back) decide against email, events
  and the Agreement API.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mailsync.crm.mapping_model import (
    ACCOUNT,
    AGREEMENT,
    INVOICE,
    NAME,
)
from mailsync.sdds.compute import Agreement, Invoice, Rollup, cents, day

#: Agreements feed `status` (any case; "Rolled back", the doc's "Superceded")
#: -> AWS_Agreement__c.Status__c, as for the Agreement API (section 6).
FEED_STATUS = {
    "ACTIVE": "Active",
    "ARCHIVED": "Archived",
    "CANCELLED": "Cancelled",
    "EXPIRED": "Expired",
    "RENEWED": "Renewed",
    "REPLACED": "Replaced",
    "ROLLED_BACK": "Rolled Back",
    "SUPERSEDED": "Superseded",
    "SUPERCEDED": "Superseded",
    "TERMINATED": "Terminated",
}

#: (object, key, facts, status) of one touch.
Facts = tuple[str, str, dict[str, Any], str | None]


def money(value: Decimal) -> float:
    """A CRM number with two decimals (Currency fields take JSON numbers)."""
    return float(cents(value))


def feed_status(value: str | None) -> str | None:
    if not value:
        return None
    return FEED_STATUS.get(value.strip().upper().replace(" ", "_").replace("-", "_"))


def invoice_facts(inv: Invoice) -> Facts:
    facts: dict[str, Any] = {
        NAME: inv.invoice_id,
        "Invoice_ID__c": inv.invoice_id,
        "Agreement_ID__c": inv.agreement_id,
        "Customer_AWS_Account_ID__c": inv.customer_account_id,
        "Payer_AWS_Account_ID__c": inv.payer_account_id,
        "Offer_ID__c": inv.offer_id,
        "Product_ID__c": inv.product_id,
        "Transaction_Reference_ID__c": inv.transaction_reference_id,
        "Invoice_Date__c": inv.invoice_date,
        "Payment_Due_Date__c": inv.payment_due_date,
        "Currency__c": inv.currency,
        "Broker__c": inv.broker,
        "Invoiced_Amount__c": money(inv.invoiced),
        "Refunded_Amount__c": money(inv.refunded),
        "Listing_Fee__c": money(inv.listing_fee),
        "Seller_Tax_Share__c": money(inv.seller_tax),
        "AWS_Tax_Share__c": money(inv.aws_tax),
        "Net_Amount__c": money(inv.net),
        "Disbursed_Amount__c": money(inv.disbursed),
        "Outstanding_Amount__c": money(inv.outstanding),
        "Disbursement_Date__c": inv.disbursement_date,
        "Disbursement_Status__c": inv.disbursement_status,
        "Status_As_Of__c": inv.status_as_of,
        "Days_Past_Due__c": inv.days_past_due,
    }
    return (INVOICE, inv.key, facts, None)


def rollup_facts(r: Rollup) -> Facts:
    facts: dict[str, Any] = {
        "Invoiced_To_Date__c": money(r.invoiced),
        "Refunded_To_Date__c": money(r.refunded),
        "Net_Invoiced_To_Date__c": money(r.net),
        "Disbursed_To_Date__c": money(r.disbursed),
        "Outstanding_Amount__c": money(r.outstanding),
        "Last_Invoice_Date__c": r.last_invoice_date,
        "Next_Payment_Due_Date__c": r.next_payment_due_date,
        "Last_Disbursement_Date__c": r.last_disbursement_date,
    }
    return (AGREEMENT, r.agreement.agreement_id, facts, None)


def revision_facts(a: Agreement, customer_account_id: str | None) -> list[Facts]:
    """The Account (created with the placeholder Name when new) and the
    agreement facts of the current agreements-feed revision; empty values are
    left out (facts are never blanked)."""
    facts: dict[str, Any] = {
        "Customer_AWS_Account_ID__c": customer_account_id,
        "Offer_ID__c": a.offer_id,
        "Start_Date__c": day(a.start_time),
        "End_Date__c": day(a.end_time),
        "Acceptance_Date__c": day(a.acceptance_time),
        "Previous_Agreement_ID__c": a.preceding_agreement_id,
    }
    if a.estimated_agreement_value:
        facts["Purchase_Amount__c"] = money(Decimal(a.estimated_agreement_value))
        facts["Currency__c"] = a.currency_code
    clean = {k: v for k, v in facts.items() if v is not None and v != ""}
    out: list[Facts] = []
    if customer_account_id:
        out.append((ACCOUNT, customer_account_id, {}, None))
    out.append((AGREEMENT, a.agreement_id, clean, feed_status(a.status)))
    return out


def revision_version(a: Agreement, tie: str) -> str:
    """When the revision was written (`update_date`, else `valid_from`), in
    the form of `mapping.event_version`, so it orders against events."""
    return f"{a.update_date or a.valid_from or '0000-00-00T00:00:00Z'}|sdds:{tie}"
