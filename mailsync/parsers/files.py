"""Saved inputs on disk to events: the dispatch used by `parse` and `replay`.

Exports:

- `files_in(folder)`: the files under a folder (sorted, recursive, hidden
  ones skipped), as `parse` and `replay` read a folder.
- `read_input(path, limit=None) -> bytes`: the file's bytes (at most
  `limit + 1` of them); `InputError` naming the path
  and the reason when it cannot be read (missing, a directory, no permission).
- `parse_bytes(raw, *, name="") -> Event`: dispatch by the name's extension
  (`.eml` is an RFC 5322 message, `.json` is JSON), else by content (a first
  non-blank byte of `{` or `[` means JSON, anything else is email).
- `parse_path(path) -> Event`: `parse_bytes(read_input(path), name=path.name)`.

Only an unreadable file raises; unusable content is an `unrecognized` event.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from mailsync.errors import InputError, ParseError
from mailsync.event import Channel, Event
from mailsync.parsers import parse_email
from mailsync.parsers.json_input import parse_json

__all__ = ["files_in", "parse_bytes", "parse_path", "read_input"]


def files_in(folder: Path) -> Iterator[Path]:
    """The files under `folder`, sorted, recursively, hidden ones skipped."""
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            yield from files_in(child)
        elif child.is_file():
            yield child


def read_input(path: Path, limit: int | None = None) -> bytes:
    """The bytes of `path`; `InputError` with the path and reason otherwise.
    With `limit`, at most `limit + 1` bytes are read (enough to tell that
    the file is over it, without reading a huge file into memory)."""
    try:
        if limit is None:
            return path.read_bytes()
        with path.open("rb") as f:
            return f.read(limit + 1)
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a saved input") from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None


def parse_bytes(raw: bytes, *, name: str = "") -> Event:
    """The event for one saved input; `name` (a file name) picks the format."""
    if is_json(raw, name):
        return parse_json(raw)
    try:
        return parse_email(raw)
    except ParseError as err:
        # The email parsers report a malformed known message this way; for a
        # saved file that is still "read but not usable".
        return Event.unrecognized(str(err), channel=Channel.EMAIL)


def is_json(raw: bytes, name: str = "") -> bool:
    """Whether `parse_bytes` reads this input as JSON (else as email)."""
    suffix = Path(name).suffix.lower()
    return suffix == ".json" or (suffix != ".eml" and _looks_like_json(raw))


def parse_path(path: Path) -> Event:
    """The event for the file at `path` (see the module docstring)."""
    return parse_bytes(read_input(path), name=path.name)


def received_at(path: Path) -> datetime | None:
    """When the file was written (its mtime, UTC): a saved email's own date
    may not be later (see `mailsync.security.email_gate.clamp_occurred`)."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None


def _looks_like_json(raw: bytes) -> bool:
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return head in (b"{", b"[")
