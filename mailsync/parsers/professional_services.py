"""`professional_services.requested`: a buyer requested a professional services product.

The seller guide lists this email without a title or field table, so the
subject test is a phrase test ("professional services" and "request", not
addressed to the reader as buyer: "You requested..." / "Your request...") and
the event carries only what is clearly labelled (customer, product).
"""

from __future__ import annotations

import re

from mailsync.event import Kind
from mailsync.parsers.base import EmailParser

_BUYER = re.compile(r"^(?:.*[:\]]\s*)?(?:you|your)\b")


def _subject(title: str) -> bool:
    return (
        "professional services" in title
        and "request" in title
        and _BUYER.match(title) is None
    )


PARSER = EmailParser(
    name="professional_services_requested",
    kind=Kind.PROFESSIONAL_SERVICES_REQUESTED,
    subject=_subject,
    required=("product_id",),
)
