"""`mailsync import PATH...`: load saved Seller Data Feed files (contract
section 7) exactly as the SDDS source would, then flush to the CRM.

Prints the pass summary and the CRM flush on stderr; exit 0 when every record
is written, 1 when writes remain pending (CRM down) or a file is malformed
(nothing of the pass is kept then), 2 for a path that cannot be used.
"""

from __future__ import annotations

import argparse
import sys

from mailsync import config
from mailsync.config import SddsSettings
from mailsync.crm.sync import CrmSync
from mailsync.sdds.feedsync import FeedSync
from mailsync.sdds.files import local_files
from mailsync.statedb import open_db


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    folders = dict((settings.sdds or SddsSettings()).folders)
    files = local_files(args.paths, folders)
    conn = open_db(settings.state.path)
    try:
        report = FeedSync(conn, origin="import").run(files)
        print(f"mailsync: {report.line()}", file=sys.stderr)
        flush = CrmSync(settings, conn)
        try:
            result = flush.flush()
        finally:
            flush.close()
    finally:
        conn.close()
    print(
        f"mailsync: CRM records written {result.records}, pending {result.pending}"
        + (f" (paused: {result.paused_reason})" if result.paused_reason else ""),
        file=sys.stderr,
    )
    return 0 if not result.pending else 1
