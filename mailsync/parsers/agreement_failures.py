"""`agreement.creation_failed` and `agreement.payment_failed`.

Both go to the seller of record, ISV or channel partner, whichever created the
offer (seller guide, "Email notifications": "Compliance Failure - Seller of
Record" and "Payment Failure - Seller of Record"), so the recipient role is
unknown unless the email names a party. The creation-failure email labels the
buyer "Subscribing AWS account ID".
"""

from __future__ import annotations

from mailsync.event import Kind
from mailsync.parsers.base import EmailParser, title_pattern

CREATION_FAILED = EmailParser(
    name="agreement_creation_failed",
    kind=Kind.AGREEMENT_CREATION_FAILED,
    subject=title_pattern(
        "Action required: AWS Marketplace Agreement Creation Failure",
        "AWS Marketplace Agreement Creation Failure",
        "AWS Marketplace agreement creation failed",
    ),
    required=("agreement_id",),
)

PAYMENT_FAILED = EmailParser(
    name="agreement_payment_failed",
    kind=Kind.AGREEMENT_PAYMENT_FAILED,
    subject=title_pattern(
        "Payment failure for an AWS Marketplace agreement",
        "Payment failed for an AWS Marketplace agreement",
        "AWS Marketplace agreement payment failure",
    ),
    required=("agreement_id",),
)
