"""Small helpers for the words of user messages."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """``"1 entry"``, ``"2 entries"``: `count` and the right form of `word`
    (`many` when given, else `word` + "s")."""
    return f"{count} {word if count == 1 else many or word + 's'}"
