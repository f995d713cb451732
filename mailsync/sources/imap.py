"""The IMAP source: search, fetch in batches, hand to the pipeline, mark.

One pass (`run_pass`):

1. Connect (fresh token for XOAUTH2) and SELECT the folder. A UIDVALIDITY
   different from the ledger's resets the checkpoint to 0: the whole folder is
   rescanned, and the pipeline skips what the ledger already finished by
   SHA-256 or Message-ID, so nothing is synced twice.
2. ``UID SEARCH UID <checkpoint+1>:*`` plus the UIDs the ledger has as
   `failed` (retries). ``RFC822.SIZE`` first, then ``BODY.PEEK[]`` (never sets
   \\Seen) in batches of at most `batch_size` UIDs and `batch_bytes` bytes.
   Messages over `[security] max_message_bytes` are quarantined unfetched.
3. Each FETCH batch goes through `Pipeline.handle_batch`: one round trip to
   the parse worker and one commit of every event and ledger outcome of the
   batch (`imap_batch.BatchLoop`, which also overlaps the parse with the
   previous batch's commit and marks and the next batch's FETCH). A fetch
   result without a body is recorded `failed` and retried on a later pass.
4. Only after that commit is the batch marked, with one STORE (or MOVE) per
   kind of mark: synced → keyword `processed_keyword` when
   PERMANENTFLAGS has ``\\*``, else MOVE to `processed_folder` when set, else
   the ledger alone (Exchange Online refuses custom keywords). Unrecognized /
   rejected → MOVE to `quarantine_folder` when set, else keyword
   ``$MailsyncQuarantined`` when allowed, else the ledger alone. Set
   ``processed_keyword = ""`` to prefer the move on servers that allow keywords.
5. The checkpoint advances to the highest UID handled, after the marks. A
   crash between the commit and the marks leaves the checkpoint behind, so
   the next pass finds those UIDs again, the ledger knows them finished
   ("already handled"), and they are marked then: nothing lost or doubled.

Network failures raise `TransientError`; the caller reconnects with backoff.
"""

from __future__ import annotations

import logging
import threading
import time

from imapclient import IMAPClient

from mailsync.config import ImapSettings
from mailsync.errors import MailsyncError, TransientError
from mailsync.log import kv
from mailsync.pipeline import Pipeline
from mailsync.progress import Progress, ProgressFactory
from mailsync.sink import Sink
from mailsync.sources.base import CheckLine, PassResult
from mailsync.sources.imap_batch import (
    NET_ERRORS,
    QUARANTINE_KEYWORD,
    BatchLoop,
    body_of,
    plan_batches,
)
from mailsync.sources.imap_conn import connect
from mailsync.sources.imap_idle import idle_wait

log = logging.getLogger(__name__)

__all__ = ["QUARANTINE_KEYWORD", "ImapSource", "body_of", "plan_batches"]


def news_meanwhile(client: IMAPClient) -> bool:
    """True (once) when the server announced new mail inside the answer to
    another command of the pass. A message appended while SEARCH runs is
    reported by an untagged EXISTS at the end of the SEARCH answer; imaplib
    files that away, and the server never repeats it once IDLE starts, so
    without this check the mail would wait for the next IDLE renewal."""
    untagged = getattr(getattr(client, "_imap", None), "untagged_responses", None)
    if not isinstance(untagged, dict):
        return False
    news = [untagged.pop(key, None) for key in ("EXISTS", "RECENT")]
    return any(news)


class ImapSource:
    """Implements `mailsync.sources.base.Source` for one IMAP folder."""

    def __init__(
        self,
        settings: ImapSettings,
        pipeline: Pipeline,
        *,
        progress: ProgressFactory = Progress,
    ) -> None:
        """`progress` reports a long pass (a backfill; `mailsync.progress`)."""
        self.settings = settings
        self.pipeline = pipeline
        self.progress = progress
        self.name = f"imap:{settings.name}"
        self.client: IMAPClient | None = None
        self.uidvalidity = 0
        self.keywords_ok = False
        self.last_beat = time.monotonic()  #: progress heartbeat for the watchdog

    # -- connection ------------------------------------------------------------

    def _open(self) -> IMAPClient:
        if self.client is not None:
            return self.client
        client = connect(self.settings)
        try:
            for folder in (
                self.settings.processed_folder,
                self.settings.quarantine_folder,
            ):
                if folder and not client.folder_exists(folder):
                    client.create_folder(folder)
            log.debug("SELECT", extra=kv(source=self.name, folder=self.settings.folder))
            info = client.select_folder(self.settings.folder)
        except NET_ERRORS as err:
            client.shutdown()
            raise TransientError(
                f"cannot open folder {self.settings.folder!r} on "
                f"{self.settings.host}: {err}"
            ) from None
        self.client = client
        self.uidvalidity = int(info[b"UIDVALIDITY"])
        self.keywords_ok = b"\\*" in tuple(info.get(b"PERMANENTFLAGS", ()))
        ledger = self.pipeline.ledger
        state = ledger.mailbox(self.name)
        if state.uidvalidity != self.uidvalidity:
            if state.uidvalidity is not None:
                log.warning(
                    "UIDVALIDITY changed; rescanning the folder",
                    extra=kv(
                        source=self.name, old=state.uidvalidity, new=self.uidvalidity
                    ),
                )
            ledger.set_mailbox(self.name, self.uidvalidity, 0)
        log.info(
            "connected",
            extra=kv(
                source=self.name,
                uidvalidity=self.uidvalidity,
                keywords=self.keywords_ok,
            ),
        )
        return client

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.logout()
            except Exception:  # a dead connection cannot log out; drop it
                try:
                    client.shutdown()
                except Exception:
                    pass

    # -- a pass ----------------------------------------------------------------

    def run_pass(self, sink: Sink, stop: threading.Event) -> PassResult:
        try:
            client = self._open()
            return self._pass(client, sink, stop)
        except NET_ERRORS as err:
            self.close()
            raise TransientError(
                f"{self.name}: IMAP connection failed: {err}"
            ) from None
        except MailsyncError:
            self.close()
            raise

    def _candidates(self, client: IMAPClient) -> list[int]:
        checkpoint = self.pipeline.ledger.mailbox(self.name).checkpoint
        found = {int(u) for u in client.search(["UID", f"{checkpoint + 1}:*"])}
        log.debug(
            "UID SEARCH", extra=kv(source=self.name, since=checkpoint, found=len(found))
        )
        new = {u for u in found if u > checkpoint}  # "n:*" always matches the last
        prefix = f"{self.uidvalidity}:"
        retry = {
            int(k[len(prefix) :])
            for k in self.pipeline.ledger.unfinished(self.name)
            if k.startswith(prefix)
        }
        return sorted(new | retry)

    def _pass(
        self, client: IMAPClient, sink: Sink, stop: threading.Event
    ) -> PassResult:
        result = PassResult()
        client.noop()  # lets the server sync the mailbox view before SEARCH
        uids = self._candidates(client)
        sizes: dict[int, int] = {}
        for i in range(0, len(uids), 1000):
            for uid, data in client.fetch(uids[i : i + 1000], ["RFC822.SIZE"]).items():
                sizes[int(uid)] = int(data.get(b"RFC822.SIZE", 0))
        uids = [u for u in uids if u in sizes]  # expunged meanwhile
        BatchLoop(self, client, sink, stop, result).run(uids, sizes)
        ledger = self.pipeline.ledger
        ledger.source_ok(
            self.name,
            checkpoint=f"uidvalidity={self.uidvalidity} "
            f"uid={ledger.mailbox(self.name).checkpoint}",
        )
        return result

    # -- waiting -----------------------------------------------------------------

    def idle_capable(self) -> bool:
        client = self.client
        return bool(self.settings.idle and client and client.has_capability("IDLE"))

    def wait_for_input(self, timeout: float, stop: threading.Event) -> None:
        if not self.idle_capable() or self.client is None:
            stop.wait(min(timeout, self.settings.poll_interval))
            return
        if news_meanwhile(self.client):
            return  # the next pass runs at once
        limit = min(timeout, self.settings.idle_renew_seconds)
        try:
            idle_wait(self.client, limit, stop, self.beat)
        except TransientError:
            self.close()
            raise

    def beat(self) -> None:
        """Progress: the watchdog sees this source alive."""
        self.last_beat = time.monotonic()

    def check(self) -> list[CheckLine]:
        try:
            client = self._open()
            status = client.folder_status(self.settings.folder, [b"MESSAGES"])
            n = int(status.get(b"MESSAGES", 0))
            caps = ", ".join(
                c for c in ("IDLE", "MOVE", "UIDPLUS") if client.has_capability(c)
            )
            detail = (
                f"{self.settings.host}:{self.settings.port} folder "
                f"{self.settings.folder!r}: {n} messages; {caps or 'no IDLE'};"
                f" keywords {'allowed' if self.keywords_ok else 'refused'}"
            )
            return [CheckLine(self.name, True, detail)]
        except MailsyncError as err:
            return [CheckLine(self.name, False, str(err))]
        except NET_ERRORS as err:
            return [CheckLine(self.name, False, f"IMAP error: {err}")]
        finally:
            self.close()
