"""A local folder of `.eml` files, or a Maildir (cur/new/tmp), read-only.

The user's files are never modified, moved or deleted. State lives in the
ledger: each file is keyed by its path relative to the folder, and a file whose
SHA-256 (or Message-ID) was already finished under another name is not processed
again, which covers Maildir's own renames (``new/x`` → ``cur/x:2,S``). A file
whose content changed under the same name is processed again.

In a plain folder every regular, non-hidden file ending in ``.eml`` (searched
recursively) is an input; in a Maildir every file in ``new/`` and ``cur/``
(``tmp/`` holds deliveries in progress and is skipped).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from mailsync.config import MaildirSettings
from mailsync.errors import TransientError
from mailsync.ledger import FAILED, REJECTED, SYNCED, UNRECOGNIZED
from mailsync.log import kv
from mailsync.pipeline import Pipeline, sha256_hex
from mailsync.sink import Sink
from mailsync.sources.base import CheckLine, PassResult

log = logging.getLogger(__name__)


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
        for path in list_inputs(root):
            if stop.is_set():
                break
            key = path.relative_to(root).as_posix()
            try:
                raw = path.read_bytes()
            except OSError as err:  # vanished or unreadable: try again next pass
                result.failed += 1
                result.errors.append(f"{key}: {err.strerror}")
                continue
            if ledger.finished_hash(self.name, key) == sha256_hex(raw):
                continue
            result.fetched += 1
            out = self.pipeline.handle(
                raw, sink, source=self.name, key=key, origin=f"{self.name}/{key}"
            )
            count(result, out.outcome, out.duplicate)
            if out.outcome == FAILED and out.reason:
                result.errors.append(f"{key}: {out.reason}")
        ledger.source_ok(
            self.name, checkpoint=f"{len(ledger.outcomes(self.name))} files"
        )
        return result

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
