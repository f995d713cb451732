"""`mailsync status` (contract section 1)."""

from __future__ import annotations

import argparse

from mailsync.errors import MailsyncError


def run(args: argparse.Namespace) -> int:
    raise MailsyncError("mailsync status is not available yet")
