"""`disbursement.paused`: "Disbursement Paused".

Sent to ISVs and channel partners when a disbursement is paused for invalid
bank account information (seller guide, "Email notifications",
Disbursements table). The only field is "Resource ARN" (the bank account),
kept as the event's `resource_arn` for the merge key
`disbursement:<resource ARN>:<UTC date>`.
"""

from __future__ import annotations

from mailsync.event import Kind
from mailsync.parsers.base import EmailParser


def _subject(title: str) -> bool:
    # Sellers alone receive disbursement mail, so any subject about a paused
    # disbursement qualifies; the Resource ARN must still be there.
    return "disburse" in title and "paus" in title


PARSER = EmailParser(
    name="disbursement_paused",
    kind=Kind.DISBURSEMENT_PAUSED,
    subject=_subject,
    required=("resource_arn",),
)
