"""`offer.accepted`: "Customer accepted an AWS Marketplace offer".

Three variants (seller guide, "Email notifications", Agreements table): the
public/private offer email to the ISV; the Channel Partner private offer
(CPPO) email to the ISV, which names the channel partner and the wholesale
price; the CPPO email to the channel partner, which names the ISV and adds
margin and purchase amount. The variant is told apart by which party is named.
"""

from __future__ import annotations

from mailsync.event import Kind, Role
from mailsync.parsers.base import EmailParser, title_pattern

PARSER = EmailParser(
    name="offer_accepted",
    kind=Kind.OFFER_ACCEPTED,
    subject=title_pattern(
        "Customer accepted an AWS Marketplace offer",
        "Customer accepted an AWS Marketplace private offer",
        "Customer accepted an AWS Marketplace Channel Partner private offer",
        "Customer accepted a Channel Partner private offer",
    ),
    required=("agreement_id",),
    default_role=Role.ISV,
    agreement_status="ACTIVE",
)
