"""`mailsync replay` (contract section 1)."""

from __future__ import annotations

import argparse

from mailsync.errors import MailsyncError


def run(args: argparse.Namespace) -> int:
    raise MailsyncError("mailsync replay is not available yet")
