"""FETCH batches of one IMAP pass: fetch, hand to the pipeline, commit, mark.

Per batch the costs that do not depend on the number of messages are paid
once: one ``UID FETCH``, one round trip to the parse worker, one commit (one
fsync) of every outbox event and ledger outcome, one ``UID STORE`` (or MOVE)
per kind of mark. And they overlap the parse: while the worker parses batch
*N*, the main process commits batch *N-1*, marks it and fetches batch *N+1*
(`Pipeline.handle_batch`'s `meanwhile`).

The order that makes this safe: a batch is marked only after the commit that
made its events and outcomes durable, and the checkpoint passes its UIDs only
after the marks. A crash in between leaves the UIDs above
the checkpoint: the next pass fetches them again, the ledger has them
finished ("already handled", nothing is submitted twice) and they are marked
then. A network error keeps (commits) what was handled and is raised after.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from imapclient import IMAPClient

from mailsync.ledger import FAILED, REJECTED, SYNCED, UNRECOGNIZED, Batch
from mailsync.log import kv
from mailsync.pipeline import Item, Outcome
from mailsync.progress import ProgressFactory
from mailsync.sink import Sink
from mailsync.sources.base import PassResult
from mailsync.sources.maildir import count

if TYPE_CHECKING:
    from mailsync.config import ImapSettings
    from mailsync.pipeline import Pipeline


class ImapSource(Protocol):
    """What a batch needs of `imap.ImapSource` (declared here: no import cycle)."""

    name: str
    settings: ImapSettings
    pipeline: Pipeline
    uidvalidity: int
    keywords_ok: bool
    progress: ProgressFactory

    def beat(self) -> None: ...


log = logging.getLogger(__name__)

QUARANTINE_KEYWORD = "$MailsyncQuarantined"
#: imapclient's FETCH result: {uid: {b"BODY[]": bytes, ...}}
FetchData = Mapping[int, Mapping[bytes, Any]]
#: the outcome of a FETCH result without a body (recorded failed, retried)
NO_BODY = Outcome(FAILED, "server returned no body; retried later")
NET_ERRORS = (OSError, IMAPClient.Error)


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


def internal_date(data: Mapping[bytes, Any] | None) -> datetime | None:
    """When the server received the message (RFC 3501 INTERNALDATE), UTC;
    an email's own date may not be later (see `email_gate.clamp_occurred`).
    imapclient gives it as naive local time (`normalise_times`)."""
    value = data.get(b"INTERNALDATE") if data else None
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC)


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


@dataclass
class Marks:
    """What a handled batch needs once its outcomes are committed."""

    processed: list[int] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)
    highest: int = 0  #: every UID of the batch up to this one is finished


class BatchLoop:
    """The batches of one pass over `src`'s selected folder."""

    def __init__(
        self,
        src: ImapSource,
        client: IMAPClient,
        sink: Sink,
        stop: threading.Event,
        result: PassResult,
    ) -> None:
        self.src = src
        self.client = client
        self.sink = sink
        self.stop = stop
        self.result = result
        self.ledger = src.pipeline.ledger

    def run(self, uids: Sequence[int], sizes: Mapping[int, int]) -> None:
        s = self.src.settings
        batches = plan_batches(uids, sizes, s.batch_size, s.batch_bytes)
        unmarked: Marks | None = None  # handled, not yet committed and marked
        fetched: FetchData | None = None
        report = self.src.progress(
            "backfill", len(uids), "messages", source=self.src.name
        )
        with report, self.ledger.batch() as tx:
            try:
                for n, batch in enumerate(batches):
                    if self.stop.is_set():
                        break
                    if fetched is None:
                        fetched = self.fetch(batch, sizes)
                    following = batches[n + 1] if n + 1 < len(batches) else None
                    unmarked, fetched = self.batch(
                        batch, fetched, following, sizes, unmarked, tx
                    )
                    report.advance(len(batch))
            except NET_ERRORS:
                tx.commit()  # what was handled stays handled; marked later
                raise
            tx.commit()
            if unmarked is not None:
                self.settle(unmarked)

    def fetch(self, batch: list[int], sizes: Mapping[int, int]) -> FetchData:
        too_big = self.src.pipeline.too_big
        wanted = [u for u in batch if not too_big(sizes[u])]
        parts = ["BODY.PEEK[]", "INTERNALDATE"]
        return self.client.fetch(wanted, parts) if wanted else {}

    def batch(
        self,
        batch: list[int],
        data: FetchData,
        following: list[int] | None,
        sizes: Mapping[int, int],
        previous: Marks | None,
        tx: Batch,
    ) -> tuple[Marks, FetchData | None]:
        """Handle one fetched batch (uncommitted); settle `previous` and fetch
        `following` while the worker parses. Return this batch's marks and
        the following batch's FETCH result (None if not fetched)."""
        src, pipeline = self.src, self.src.pipeline
        tx.ensure()
        early: dict[int, Outcome] = {}
        items: list[Item] = []
        for uid in batch:
            key = f"{src.uidvalidity}:{uid}"
            if pipeline.too_big(sizes[uid]):
                early[uid] = pipeline.reject_oversize(src.name, key, sizes[uid])
                continue
            raw = body_of(data.get(uid))
            if raw is None:
                self.ledger.record(src.name, key, None, "", FAILED, NO_BODY.reason)
                early[uid] = NO_BODY
                log.warning("fetch without body", extra=kv(source=src.name, uid=uid))
                continue
            self.result.fetched += 1
            received = internal_date(data.get(uid))
            items.append(Item(key, raw, f"{src.name}/{key}", received))
        del data
        prefetched: list[FetchData] = []
        broken: list[BaseException] = []

        def meanwhile() -> None:
            # The previous batch becomes durable, so it may be marked now; and
            # no write lock is held over the network calls.
            tx.commit()
            try:
                if previous is not None:
                    self.settle(previous)
                if following is not None:
                    prefetched.append(self.fetch(following, sizes))
            except NET_ERRORS as err:  # raised once this batch is recorded
                broken.append(err)

        handled = pipeline.handle_batch(
            items,
            self.sink,
            source=src.name,
            stop=self.stop,
            beat=src.beat,
            meanwhile=meanwhile,
            tx=tx,
        )
        if broken:
            raise broken[0]
        for item, out in zip(items, handled, strict=True):
            if out is not None:
                early[int(item.key.rpartition(":")[2])] = out
        return self.tally(batch, early), prefetched[0] if prefetched else None

    def tally(self, batch: list[int], outcomes: Mapping[int, Outcome]) -> Marks:
        marks = Marks()
        result = self.result
        for uid in batch:
            out = outcomes.get(uid)
            if out is None:
                break  # stopped: neither marked nor passed by the checkpoint
            marks.highest = uid
            if out is NO_BODY:
                result.failed += 1
                continue
            count(result, out.outcome, out.duplicate)
            if out.outcome == SYNCED:
                marks.processed.append(uid)
            elif out.outcome in (UNRECOGNIZED, REJECTED):
                marks.quarantined.append(uid)
            elif out.reason:
                result.errors.append(f"uid {uid}: {out.reason}")
        return marks

    def settle(self, marks: Marks) -> None:
        """Mark a committed batch, then move the checkpoint past it (its own
        small commit: no transaction stays open over the network calls)."""
        src = self.src
        self.mark(marks.processed, marks.quarantined)
        if marks.highest > self.ledger.mailbox(src.name).checkpoint:
            self.ledger.set_mailbox(src.name, src.uidvalidity, marks.highest)

    def mark(self, processed: list[int], quarantined: list[int]) -> None:
        s, client = self.src.settings, self.client
        # .SILENT: the server need not echo every message's flags back.
        if processed:
            if self.src.keywords_ok and s.processed_keyword:
                client.add_flags(processed, [s.processed_keyword.encode()], True)
            elif s.processed_folder:
                move(client, processed, s.processed_folder)
        if quarantined:
            if s.quarantine_folder:
                move(client, quarantined, s.quarantine_folder)
            elif self.src.keywords_ok:
                client.add_flags(quarantined, [QUARANTINE_KEYWORD.encode()], True)


def move(client: IMAPClient, uids: Iterable[int], folder: str) -> None:
    uids = list(uids)
    if client.has_capability("MOVE"):
        client.move(uids, folder)
        return
    client.copy(uids, folder)  # RFC 3501 fallback: copy, flag, expunge these
    client.add_flags(uids, [b"\\Deleted"], True)
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)
