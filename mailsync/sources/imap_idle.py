"""Waiting for new mail with IMAP IDLE (RFC 2177).

IMAPClient swallows EOF while idling: on a dead connection `idle_check`
returns ``[]`` at once, again and again (mjs/imapclient#565). So a check that
comes back empty well before its timeout means the connection is gone. IDLE is
renewed at most every `idle_renew_seconds` (≤ 10 min, as IMAPClient's docs
advise, since NATs drop quiet flows long before RFC 2177's 29 minutes), and
every cycle ends with DONE.

`idle_check` only polls the socket, but imaplib reads it through a buffered
reader: when IDLE starts, Dovecot answers ``+ idling`` and at once reports
mail that arrived just before (``* 7 EXISTS``), often in the same TCP segment.
Reading the continuation line then pulls the EXISTS into the buffer, the
socket never becomes readable again, and without `buffered()` that mail would
wait for the next renewal (up to `idle_renew_seconds`).
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


def buffered(client: IMAPClient) -> bool:
    """True when bytes from the server wait in imaplib's read buffer (or on
    the socket): something was said that `idle_check` would not see."""
    peek = getattr(getattr(getattr(client, "_imap", None), "file", None), "peek", None)
    if peek is None:
        return False
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.setblocking(False)  # an empty buffer must not wait for the server
    try:
        return bool(peek(1))
    except OSError:  # nothing to read (TLS reports it as an error)
        return False
    finally:
        sock.settimeout(timeout)


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
            if buffered(client):
                changed = True  # read before idle_check could see it
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
