"""`agreement.cancelled`: "An AWS Marketplace agreement was cancelled".

Three variants share the title (seller guide, "Email notifications"): public
or private offer to the ISV, CPPO to the ISV ("Channel partner", "Channel
partner AWS account ID") and CPPO to the channel partner ("ISV", "ISV AWS
account ID"). AWS's own table spells the email name "Canceled", so both
spellings are accepted in the subject.
"""

from __future__ import annotations

from mailsync.event import Kind, Role
from mailsync.parsers.base import EmailParser, title_pattern

PARSER = EmailParser(
    name="agreement_cancelled",
    kind=Kind.AGREEMENT_CANCELLED,
    subject=title_pattern(
        "An AWS Marketplace agreement was cancelled",
        "An AWS Marketplace agreement was canceled",
        "An AWS Marketplace agreement has been cancelled",
        "An AWS Marketplace agreement has been canceled",
    ),
    required=("agreement_id",),
    default_role=Role.ISV,
    agreement_status="CANCELLED",
)
