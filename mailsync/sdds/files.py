"""Feed files on disk, for `mailsync import PATH...`.

A PATH is a folder laid out like the bucket (it holds the feed folders, at any
depth: ``<folder>/year=YYYY/month=MM/data.csv``), or a single ``data.csv``
named by its folder path. A file's feed is the configured folder name found
among its parent folders; its key is the path from that folder down, the same
key the S3 source uses, so an import and the bucket describe one file alike.
Files of other feeds (products, offers, ...) are ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from mailsync.errors import InputError
from mailsync.sdds.feedsync import FeedFile


def feed_of(parts: Iterable[str], folders: Mapping[str, str]) -> tuple[str, int] | None:
    """(feed, index of its folder in `parts`) for the deepest folder that is
    a configured feed folder, else None."""
    by_name = {v: k for k, v in folders.items()}
    found = None
    for i, part in enumerate(parts):
        if part in by_name:
            found = (by_name[part], i)
    return found


def local_files(paths: Iterable[Path], folders: Mapping[str, str]) -> list[FeedFile]:
    """The feed files under `paths`; `InputError` for a path that cannot be
    read or holds no feed file."""
    out: dict[str, FeedFile] = {}
    for path in paths:
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*.csv") if p.is_file())
        elif path.is_file():
            candidates = [path]
        else:
            raise InputError(f"{path}: no such file or folder")
        found = 0
        for p in candidates:
            parts = p.resolve().parts
            hit = feed_of(parts[:-1], folders)
            if hit is None:
                continue
            feed, idx = hit
            key = "/".join(parts[idx:])
            out[key] = _file(feed, key, p)
            found += 1
        if not found:
            raise InputError(
                f"{path}: no Seller Data Feed file found; expected data.csv files "
                "under a feed folder named "
                + ", ".join(sorted(folders.values()))
                + " (see [source.sdds.folders])"
            )
    return list(out.values())


def _file(feed: str, key: str, path: Path) -> FeedFile:
    try:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        size = path.stat().st_size
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror})") from None
    return FeedFile(
        feed, key, f"size={size};sha256={digest.hexdigest()}", lambda: path.open("rb")
    )
