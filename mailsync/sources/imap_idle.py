"""Waiting for new mail with IMAP IDLE (RFC 2177).

IMAPClient swallows EOF while idling: on a dead connection `idle_check`
returns ``[]`` at once, again and again (mjs/imapclient#565). So a check that
comes back empty well before its timeout means the connection is gone. IDLE is
renewed at most every `idle_renew_seconds` (≤ 10 min, as IMAPClient's docs
advise, since NATs drop quiet flows long before RFC 2177's 29 minutes), and
every cycle ends with DONE.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from imapclient import IMAPClient

from mailsync.errors import TransientError

#: untagged responses that mean the mailbox changed
_ACTIVITY = {b"EXISTS", b"RECENT", b"EXPUNGE", b"FETCH"}
#: granularity of the wait, so that a stop request is seen within a second
TICK = 1.0


def idle_wait(
    client: IMAPClient,
    timeout: float,
    stop: threading.Event,
    beat: Callable[[], None] = lambda: None,
) -> bool:
    """IDLE for up to `timeout` s; True when the mailbox changed. Raise
    `TransientError` when the connection is lost."""
    client.idle()
    start = time.monotonic()
    changed = False
    failure: BaseException | None = None
    try:
        while not stop.is_set():
            remaining = timeout - (time.monotonic() - start)
            if remaining <= 0:
                break
            tick = min(TICK, remaining)
            t0 = time.monotonic()
            responses = client.idle_check(timeout=tick)
            beat()
            if any(
                isinstance(r, tuple) and len(r) > 1 and r[1] in _ACTIVITY
                for r in responses
            ):
                changed = True
                break
            if not responses and time.monotonic() - t0 < tick / 2:
                raise TransientError("IMAP connection lost during IDLE")
    except (OSError, IMAPClient.Error) as err:
        failure = err
    finally:
        try:
            client.idle_done()
        except (OSError, IMAPClient.Error) as err:
            failure = failure or err
    if failure is not None:
        raise TransientError(f"IMAP connection lost during IDLE: {failure}")
    return changed
