"""`disbursement.paused`: "Disbursement Paused".

Sent to ISVs and channel partners when a disbursement is paused for invalid
bank account information (seller guide, "Email notifications",
Disbursements table). The only field is "Resource ARN" (the bank account),
kept as the event's `resource_arn` for the merge key
`disbursement:<resource ARN>:<UTC date>`.
"""

from __future__ import annotations

from mailsync.event import Kind
from mailsync.parsers.base import EmailParser, title_pattern

PARSER = EmailParser(
    name="disbursement_paused",
    kind=Kind.DISBURSEMENT_PAUSED,
    subject=title_pattern(
        "Disbursement paused",
        "AWS Marketplace disbursement paused",
        "Disbursement paused - invalid bank account information",
    ),
    required=("resource_arn",),
)
