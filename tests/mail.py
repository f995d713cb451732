"""Synthetic AWS Marketplace seller emails for IMAP and daemon tests.

The wording follows the field labels of the seller notification tables
(reference: aws-marketplace-formats.md 1.5); IDs are unique per `n`.
"""

from __future__ import annotations

OFFER_ACCEPTED = """\
From: AWS Marketplace <no-reply@marketplace.aws>
To: alliances@example-isv.com
Subject: Customer accepted an AWS Marketplace offer
Date: Tue, 03 Mar 2026 14:07:11 +0000
Message-ID: <offer-accepted-{n}@marketplace.aws>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello,

A customer accepted an offer for your product in AWS Marketplace.

Customer company name: Northwind Analytics {n} LLC
Customer AWS account ID: {account}
Product name: Acme Data Guard
Product ID: prod-7hq2kx3m9pz4d
Agreement ID: {agreement}
Agreement acceptance date: 03-03-2026
Agreement start date: 03-03-2026
Agreement end date: 03-02-2027
Purchase amount: USD 48,000.00

To view the agreement, sign in to the AWS Marketplace Management Portal.
"""

NEWSLETTER = """\
From: Example News <news@example.org>
To: alliances@example-isv.com
Subject: Our weekly newsletter {n}
Date: Tue, 03 Mar 2026 15:00:00 +0000
Message-ID: <newsletter-{n}@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Nothing about AWS Marketplace here.
"""


def agreement_id(n: int) -> str:
    return f"agmt-{n:025d}"


def account_id(n: int) -> str:
    return f"{210000000000 + n:012d}"


def offer_accepted(n: int, pad: int = 0) -> bytes:
    """An "offer accepted" seller email; `pad` adds filler bytes to the body."""
    text = OFFER_ACCEPTED.format(n=n, account=account_id(n), agreement=agreement_id(n))
    if pad:
        text += "\n" + ("x" * 75 + "\n") * (pad // 76)
    return text.replace("\n", "\r\n").encode()


def newsletter(n: int) -> bytes:
    return NEWSLETTER.format(n=n).replace("\n", "\r\n").encode()
