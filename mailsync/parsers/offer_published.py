"""`offer.published`: private offers and CPPOs published.

Titles (seller guide, "Email notifications", Offers table): "Private offer
published" (to the ISV or the channel partner that published it, so the role
is unknown unless a party is named) and "AWS Marketplace Channel Partner
private offer published" (one revision: "Channel Partner Private Offer
Published"): the ISV copy names the channel partner and lists "Customer AWS
account IDs" (plural); the channel partner copy names the ISV.
"""

from __future__ import annotations

from mailsync.event import Kind
from mailsync.parsers.base import EmailParser, title_pattern

PARSER = EmailParser(
    name="offer_published",
    kind=Kind.OFFER_PUBLISHED,
    # The seller guide lists "new or updated private offer published" and
    # "new or updated CPPO published" events; their subjects may say so.
    subject=title_pattern(
        *(
            f"{state}{scope}private offer published"
            for state in ("", "New ", "Updated ")
            for scope in (
                "",
                "AWS Marketplace ",
                "Channel Partner ",
                "AWS Marketplace Channel Partner ",
            )
        )
    ),
    required=("offer_id",),
)
