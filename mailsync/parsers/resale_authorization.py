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

CREATED = EmailParser(
    name="resale_authorization_created",
    kind=Kind.RESALE_AUTHORIZATION_CREATED,
    subject=title_pattern(
        "Create private offer for new selling authorization",
        "Create private offer for new resale authorization",
        "New selling authorization",
        "Reseller opportunity created",
        "Selling authorization created",
    ),
    required=_REQUIRED,
    default_role=Role.CHANNEL_PARTNER,
)

UPDATED = EmailParser(
    name="resale_authorization_updated",
    kind=Kind.RESALE_AUTHORIZATION_UPDATED,
    subject=title_pattern(
        "View updated selling authorization",
        "Create private offer for updated selling authorization",
        "Updated selling authorization",
        "Reseller opportunity updated",
        "Selling authorization updated",
    ),
    required=_REQUIRED,
    default_role=Role.CHANNEL_PARTNER,
)

REVOKED = EmailParser(
    name="resale_authorization_revoked",
    kind=Kind.RESALE_AUTHORIZATION_REVOKED,
    subject=title_pattern(
        "View deactivated selling authorization",
        "Deactivated selling authorization",
        "Reseller opportunity revoked",
        "Selling authorization revoked",
        "Selling authorization deactivated",
    ),
    required=_REQUIRED,
    default_role=Role.CHANNEL_PARTNER,
)

EXPIRED = EmailParser(
    name="resale_authorization_expired",
    kind=Kind.RESALE_AUTHORIZATION_EXPIRED,
    subject=title_pattern(
        "View expired selling authorization",
        "Expired selling authorization",
        "Reseller opportunity expired",
        "Selling authorization expired",
    ),
    required=_REQUIRED,
    default_role=Role.CHANNEL_PARTNER,
)
