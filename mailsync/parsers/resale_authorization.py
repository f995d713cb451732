"""`resale_authorization.*`: reseller opportunity (selling authorization) emails.

Sent to the channel partner when an ISV creates, updates, deactivates
(revokes) a selling authorization or when it expires (seller guide, "Email
notifications", Offers table: "Offers: Create private offer for new selling
authorization", "Offers: View deactivated selling authorization", "Offers:
View expired selling authorization"; the "updated" email is listed without a
title, so its likely phrasings are accepted). Fields: ISV, product name and
ID, selling authorization duration.
"""

from __future__ import annotations

from mailsync.event import Kind, Role
from mailsync.parsers.base import EmailParser, title_pattern

_REQUIRED = ("product_id", "resale_authorization_id")


def _titles(*phrases: str) -> tuple[str, ...]:
    """Each phrase with "selling authorization" and "resale authorization"."""
    out = []
    for phrase in phrases:
        out.append(phrase)
        out.append(phrase.replace("selling authorization", "resale authorization"))
    return tuple(out)


CREATED = EmailParser(
    name="resale_authorization_created",
    kind=Kind.RESALE_AUTHORIZATION_CREATED,
    subject=title_pattern(
        *_titles(
            "Create private offer for new selling authorization",
            "New selling authorization",
            "Selling authorization created",
            "View new selling authorization",
        ),
        "Reseller opportunity created",
    ),
    required=_REQUIRED,
    default_role=Role.CHANNEL_PARTNER,
)

UPDATED = EmailParser(
    name="resale_authorization_updated",
    kind=Kind.RESALE_AUTHORIZATION_UPDATED,
    subject=title_pattern(
        *_titles(
            "View updated selling authorization",
            "Create private offer for updated selling authorization",
            "Updated selling authorization",
            "Selling authorization updated",
        ),
        "Reseller opportunity updated",
    ),
    required=_REQUIRED,
    default_role=Role.CHANNEL_PARTNER,
)

REVOKED = EmailParser(
    name="resale_authorization_revoked",
    kind=Kind.RESALE_AUTHORIZATION_REVOKED,
    subject=title_pattern(
        *_titles(
            "View deactivated selling authorization",
            "View revoked selling authorization",
            "Deactivated selling authorization",
            "Selling authorization revoked",
            "Selling authorization deactivated",
        ),
        "Reseller opportunity revoked",
    ),
    required=_REQUIRED,
    default_role=Role.CHANNEL_PARTNER,
)

EXPIRED = EmailParser(
    name="resale_authorization_expired",
    kind=Kind.RESALE_AUTHORIZATION_EXPIRED,
    subject=title_pattern(
        *_titles(
            "View expired selling authorization",
            "Expired selling authorization",
            "Selling authorization expired",
            "Selling authorization has expired",
        ),
        "Reseller opportunity expired",
    ),
    required=_REQUIRED,
    default_role=Role.CHANNEL_PARTNER,
)
