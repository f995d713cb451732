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
3. Each message goes through `Pipeline.handle` (outcome committed to the
   ledger after the sink made the event durable). A fetch result without a
   body is recorded `failed` and retried on a later pass.
4. Only then is the message marked: synced → keyword `processed_keyword` when
   PERMANENTFLAGS has ``\\*``, else MOVE to `processed_folder` when set, else
   the ledger alone (Exchange Online refuses custom keywords). Unrecognized /
   rejected → MOVE to `quarantine_folder` when set, else keyword
   ``$MailsyncQuarantined`` when allowed, else the ledger alone. Set
   ``processed_keyword = ""`` to prefer the move on servers that allow keywords.
5. The checkpoint advances to the highest UID handled.

Network failures raise `TransientError`; the caller reconnects with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from imapclient import IMAPClient

from mailsync.config import ImapSettings
from mailsync.errors import MailsyncError, TransientError
from mailsync.ledger import FAILED, REJECTED, SYNCED, UNRECOGNIZED
from mailsync.log import kv
from mailsync.pipeline import Pipeline
from mailsync.sink import Sink
from mailsync.sources.base import CheckLine, PassResult
from mailsync.sources.imap_conn import connect
from mailsync.sources.imap_idle import idle_wait
from mailsync.sources.maildir import count

log = logging.getLogger(__name__)

QUARANTINE_KEYWORD = "$MailsyncQuarantined"
_NET_ERRORS = (OSError, IMAPClient.Error)


def body_of(data: Mapping[bytes, Any] | None) -> bytes | None:
    """The message bytes in one FETCH result, or None when the server sent
    none (a message expunged meanwhile, a server hiccup)."""
    if not data:
        return None
    for key in (b"BODY[]", b"RFC822"):
        value = data.get(key)
        if isinstance(value, bytes):
            return value
    return None


def plan_batches(
    uids: Sequence[int], sizes: Mapping[int, int], max_count: int, max_bytes: int
) -> list[list[int]]:
    """Split `uids` into FETCH batches of at most `max_count` UIDs and
    `max_bytes` bytes (a single larger message gets a batch of its own)."""
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if current and (len(current) >= max_count or total + size > max_bytes):
            batches.append(current)
            current, total = [], 0
        current.append(uid)
        total += size
    if current:
        batches.append(current)
    return batches


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

    def __init__(self, settings: ImapSettings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
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
            info = client.select_folder(self.settings.folder)
        except _NET_ERRORS as err:
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
                        mailbox=self.name, old=state.uidvalidity, new=self.uidvalidity
                    ),
                )
            ledger.set_mailbox(self.name, self.uidvalidity, 0)
        log.info(
            "connected",
            extra=kv(
                mailbox=self.name,
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
        except _NET_ERRORS as err:
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
        s = self.settings
        for batch in plan_batches(uids, sizes, s.batch_size, s.batch_bytes):
            if stop.is_set():
                break
            self._batch(client, batch, sizes, sink, stop, result)
        ledger = self.pipeline.ledger
        ledger.source_ok(
            self.name,
            checkpoint=f"uidvalidity={self.uidvalidity} "
            f"uid={ledger.mailbox(self.name).checkpoint}",
        )
        return result

    def _batch(
        self,
        client: IMAPClient,
        batch: list[int],
        sizes: Mapping[int, int],
        sink: Sink,
        stop: threading.Event,
        result: PassResult,
    ) -> None:
        pipeline = self.pipeline
        wanted = [u for u in batch if not pipeline.too_big(sizes[u])]
        data = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
        processed: list[int] = []
        quarantined: list[int] = []
        highest = 0
        for uid in batch:
            if stop.is_set():
                break  # the current item is finished; mark what is done
            key = f"{self.uidvalidity}:{uid}"
            if pipeline.too_big(sizes[uid]):
                out = pipeline.reject_oversize(self.name, key, sizes[uid])
            else:
                raw = body_of(data.get(uid))
                if raw is None:
                    pipeline.ledger.record(
                        self.name,
                        key,
                        None,
                        "",
                        FAILED,
                        "server returned no body; retried later",
                    )
                    result.failed += 1
                    highest = uid
                    log.warning(
                        "fetch without body", extra=kv(mailbox=self.name, uid=uid)
                    )
                    continue
                result.fetched += 1
                out = pipeline.handle(
                    raw, sink, source=self.name, key=key, origin=f"{self.name}/{key}"
                )
            count(result, out.outcome, out.duplicate)
            if out.outcome == SYNCED:
                processed.append(uid)
            elif out.outcome in (UNRECOGNIZED, REJECTED):
                quarantined.append(uid)
            elif out.reason:
                result.errors.append(f"uid {uid}: {out.reason}")
            highest = uid
            self.last_beat = time.monotonic()
        self._mark(client, processed, quarantined)
        if highest:
            state = pipeline.ledger.mailbox(self.name)
            if highest > state.checkpoint:
                pipeline.ledger.set_mailbox(self.name, self.uidvalidity, highest)

    def _mark(
        self, client: IMAPClient, processed: list[int], quarantined: list[int]
    ) -> None:
        s = self.settings
        if processed:
            if self.keywords_ok and s.processed_keyword:
                client.add_flags(processed, [s.processed_keyword.encode()])
            elif s.processed_folder:
                self._move(client, processed, s.processed_folder)
        if quarantined:
            if s.quarantine_folder:
                self._move(client, quarantined, s.quarantine_folder)
            elif self.keywords_ok:
                client.add_flags(quarantined, [QUARANTINE_KEYWORD.encode()])

    @staticmethod
    def _move(client: IMAPClient, uids: Iterable[int], folder: str) -> None:
        uids = list(uids)
        if client.has_capability("MOVE"):
            client.move(uids, folder)
            return
        client.copy(uids, folder)  # RFC 3501 fallback: copy, flag, expunge these
        client.add_flags(uids, [b"\\Deleted"])
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)

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
            idle_wait(self.client, limit, stop, self._beat)
        except TransientError:
            self.close()
            raise

    def _beat(self) -> None:
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
        except _NET_ERRORS as err:
            return [CheckLine(self.name, False, f"IMAP error: {err}")]
        finally:
            self.close()
