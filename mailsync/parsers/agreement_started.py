"""`agreement.started`: "An AWS Marketplace agreement has started".

Sent when a future-dated agreement starts (seller guide, "Email
notifications"): private offer to the ISV, CPPO to the ISV (names the channel
partner, wholesale price) and CPPO to the channel partner (names the ISV,
margin and purchase amount).
"""

from __future__ import annotations

from mailsync.event import Kind, Role
from mailsync.parsers.base import EmailParser, title_pattern

PARSER = EmailParser(
    name="agreement_started",
    kind=Kind.AGREEMENT_STARTED,
    subject=title_pattern("An AWS Marketplace agreement has started"),
    required=("agreement_id",),
    default_role=Role.ISV,
    agreement_status="ACTIVE",
)
