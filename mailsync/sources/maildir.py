"""A local folder of `.eml` files, or a Maildir (cur/new/tmp), read-only.

The user's files are never modified, moved or deleted. State lives in the
ledger: each file is keyed by its path relative to the folder, and a file whose
SHA-256 (or Message-ID) was already finished under another name is not processed
again, which covers Maildir's own renames (``new/x`` → ``cur/x:2,S``). A file
whose content changed under the same name is processed again. Files are
handled in batches of `BATCH_FILES` (one parse round trip, one commit each).

In a plain folder every regular, non-hidden file ending in ``.eml`` (searched
recursively) is an input; in a Maildir every file in ``new/`` and ``cur/``
(``tmp/`` holds deliveries in progress and is skipped).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

from mailsync.config import MaildirSettings
from mailsync.errors import TransientError
from mailsync.ledger import FAILED, REJECTED, SYNCED, UNRECOGNIZED
from mailsync.log import kv
from mailsync.pipeline import Item, Pipeline, sha256_hex
from mailsync.sink import Sink
from mailsync.sources.base import CheckLine, PassResult

log = logging.getLogger(__name__)

#: files handled per transaction (and per parse round trip), and their bytes
BATCH_FILES = 100
BATCH_BYTES = 20_000_000


def is_maildir(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


def list_inputs(path: Path) -> list[Path]:
    """Input files under `path`, in a stable order (oldest name first)."""
    if is_maildir(path):
        files = [f for sub in ("new", "cur") for f in (path / sub).iterdir()]
        return sorted(f for f in files if f.is_file() and not f.name.startswith("."))
    return sorted(
        f
        for f in path.rglob("*.eml")
        if f.is_file() and not any(p.startswith(".") for p in f.relative_to(path).parts)
    )


def count(result: PassResult, outcome: str, duplicate: bool) -> None:
    """Add one input's outcome to a pass's tallies."""
    if outcome == SYNCED:
        if duplicate:
            result.duplicates += 1
        else:
            result.synced += 1
    elif outcome == UNRECOGNIZED:
        result.unrecognized += 1
    elif outcome == REJECTED:
        result.rejected += 1
    elif outcome == FAILED:
        result.failed += 1


class MaildirSource:
    """Implements `mailsync.sources.base.Source` for a local folder."""

    def __init__(self, settings: MaildirSettings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.name = f"maildir:{settings.path}"

    def run_pass(self, sink: Sink, stop: threading.Event) -> PassResult:
        root = self.settings.path
        if not root.is_dir():
            raise TransientError(f"{self.name}: folder {root} does not exist")
        result = PassResult()
        ledger = self.pipeline.ledger
        items: list[Item] = []
        size = 0
        for path in list_inputs(root):
            if stop.is_set():
                break
            key = path.relative_to(root).as_posix()
            try:
                raw = path.read_bytes()
                # When the file arrived: an email's date may not be later.
                received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except OSError as err:  # vanished or unreadable: try again next pass
                result.failed += 1
                result.errors.append(f"{key}: {err.strerror}")
                continue
            if ledger.finished_hash(self.name, key) == sha256_hex(raw):
                continue
            result.fetched += 1
            items.append(Item(key, raw, f"{self.name}/{key}", received))
            size += len(raw)
            if len(items) >= BATCH_FILES or size >= BATCH_BYTES:
                self._batch(items, sink, stop, result)
                items, size = [], 0
        if items and not stop.is_set():
            self._batch(items, sink, stop, result)
        ledger.source_ok(
            self.name, checkpoint=f"{len(ledger.outcomes(self.name))} files"
        )
        return result

    def _batch(
        self, items: list[Item], sink: Sink, stop: threading.Event, result: PassResult
    ) -> None:
        """One parse round trip and one commit for up to `BATCH_FILES` files."""
        outcomes = self.pipeline.handle_batch(items, sink, source=self.name, stop=stop)
        for item, out in zip(items, outcomes, strict=True):
            if out is None:
                result.fetched -= 1  # stopped before it: read again next pass
                continue
            count(result, out.outcome, out.duplicate)
            if out.outcome == FAILED and out.reason:
                result.errors.append(f"{item.key}: {out.reason}")

    def wait_for_input(self, timeout: float, stop: threading.Event) -> None:
        stop.wait(timeout)

    def check(self) -> list[CheckLine]:
        root = self.settings.path
        if not root.is_dir():
            return [
                CheckLine(
                    self.name,
                    False,
                    f"folder {root} does not exist; fix [source.maildir] path",
                )
            ]
        try:
            n = len(list_inputs(root))
        except OSError as err:
            return [CheckLine(self.name, False, f"cannot list {root}: {err.strerror}")]
        kind = "Maildir" if is_maildir(root) else "folder"
        log.debug("checked", extra=kv(source=self.name, files=n))
        return [CheckLine(self.name, True, f"{kind} with {n} message files")]

    def close(self) -> None:
        pass
