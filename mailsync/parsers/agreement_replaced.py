"""`agreement.replaced`: "An AWS Marketplace agreement has been replaced".

Sent on an upgrade or renewal (seller guide, "Email notifications"). The
email names the **new** agreement ("New agreement ID") and its "New purchase
amount"; those fill `agreement_id` and `purchase_amount` (contract section 2).
A plain "Agreement ID" is used only when the email names no previous agreement,
so an old ID is never taken for the new one.
"""

from __future__ import annotations

from mailsync.event import Kind, Role
from mailsync.parsers.base import EmailParser, title_pattern

PARSER = EmailParser(
    name="agreement_replaced",
    kind=Kind.AGREEMENT_REPLACED,
    subject=title_pattern(
        "An AWS Marketplace agreement has been replaced",
        "An AWS Marketplace agreement was replaced",
    ),
    required=("agreement_id",),
    default_role=Role.ISV,
    agreement_status="ACTIVE",
)
