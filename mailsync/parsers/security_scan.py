"""`security_scan.reported`: recurring scan vulnerability / reminder emails.

The seller guide lists "recurring scan vulnerability" and "recurring scan
reminder" emails without titles or fields. A subject about a (security) scan
and vulnerabilities or a scan reminder matches; the event carries what is
clearly labelled, and needs a `prod-` product ID so that scan mail of other
AWS services (which names no Marketplace product) is not taken for it.
"""

from __future__ import annotations

from mailsync.event import Kind
from mailsync.parsers.base import EmailParser


def _subject(title: str) -> bool:
    if "vulnerabilit" in title:
        return True
    return "scan" in title and any(word in title for word in _SCAN_WORDS)


_SCAN_WORDS = ("reminder", "security", "result", "finding", "recurring", "marketplace")


PARSER = EmailParser(
    name="security_scan_reported",
    kind=Kind.SECURITY_SCAN_REPORTED,
    subject=_subject,
    required=("product_id",),
)
