"""Saved inputs on disk to events: the dispatch used by `parse` and `replay`.

Exports:

- `files_in(folder)`: the files under a folder (sorted, recursive, hidden
  ones skipped), as `parse` and `replay` read a folder.
- `read_input(path) -> bytes`: the file's bytes; `InputError` naming the path
  and the reason when it cannot be read (missing, a directory, no permission).
- `parse_bytes(raw, *, name="") -> Event`: dispatch by the name's extension
  (`.eml` is an RFC 5322 message, `.json` is JSON), else by content (a first
  non-blank byte of `{` or `[` means JSON, anything else is email).
- `parse_path(path) -> Event`: `parse_bytes(read_input(path), name=path.name)`.

Only an unreadable file raises; unusable content is an `unrecognized` event.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def read_input(path: Path) -> bytes:
    """The bytes of `path`; `InputError` with the path and reason otherwise."""
    try:
        return path.read_bytes()
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
    suffix = Path(name).suffix.lower()
    if suffix == ".json" or (suffix != ".eml" and _looks_like_json(raw)):
        return parse_json(raw)
    try:
        return parse_email(raw)
    except ParseError as err:
        # The email parsers report a malformed known message this way; for a
        # saved file that is still "read but not usable".
        return Event.unrecognized(str(err), channel=Channel.EMAIL)


def parse_path(path: Path) -> Event:
    """The event for the file at `path` (see the module docstring)."""
    return parse_bytes(read_input(path), name=path.name)


def _looks_like_json(raw: bytes) -> bool:
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return head in (b"{", b"[")
