"""A Message-ID as mailsync records, logs and deduplicates it.

`clean(value)` is the one rule for every reader of the header (the
pipeline's pre-parse scan and the parsed view): one `<id>` of printable
ASCII (RFC 5322 3.6.4), without the angle brackets, else a bare such token,
else None. Whatever the sender wrote, no list, space, quote or control
character ever becomes a Message-ID.
"""

from __future__ import annotations

import re

_MSG_ID = re.compile(r"<([\x21-\x3b\x3d\x3f-\x7e]{1,250})>")
_BARE_ID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]{1,250}")


def clean(value: str) -> str | None:
    """The Message-ID in one header value (see the module docstring)."""
    value = " ".join(value.split())
    found = _MSG_ID.search(value)
    if found is not None:
        return found.group(1)
    bare = value.strip("<>").strip()
    return bare if _BARE_ID.fullmatch(bare) else None
