"""Every text value fits its CRM field and holds no control character.

One value that is too long must not cost a deal: Salesforce refuses the whole
record with STRING_TOO_LONG (REST API guide, "Status Codes and Error
Responses"), and the merged record would carry the value into every later
write. So, in the pure core and before merging, each text fact is cleaned of
control characters (`mailsync.textsafe.clean`) and clamped to its field's
length in the default model (`mapping_model.LENGTHS`); the Salesforce backend
clamps again to the lengths the org's describe reports.

- `text(value, length)` cuts a free-text value and ends it with ``…`` so a
  reader sees it was cut;
- `key(value, length)` shortens an external ID that does not fit by replacing
  its tail with a digest of the whole value, so two long IDs that share a
  prefix stay two records.

Lengths count UTF-16 code units, as Salesforce does, so a value of astral
characters (emoji) is never longer than its field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from mailsync.textsafe import clean

ELLIPSIS = "…"
_DIGEST = 32  #: hex characters of the digest that ends a shortened key


def units(value: str) -> int:
    """Length in UTF-16 code units (an astral character counts two)."""
    return len(value) + sum(1 for c in value if ord(c) > 0xFFFF)


def _cut(value: str, length: int) -> str:
    """The longest prefix of `value` of at most `length` UTF-16 units."""
    if len(value) * 2 <= length:
        return value
    out = 0
    for i, c in enumerate(value):
        out += 2 if ord(c) > 0xFFFF else 1
        if out > length:
            return value[:i]
    return value


def text(value: str, length: int | None) -> str:
    """`value` without control characters, at most `length` units long
    (None or 0: no limit); a cut value ends in ``…``."""
    value = clean(value)
    if not length or units(value) <= length:
        return value
    return _cut(value, length - 1).rstrip() + ELLIPSIS


def key(value: str, length: int | None) -> str:
    """An external ID that fits `length`: unchanged when it does, else its
    prefix, ``~`` and a digest of the whole value (deterministic)."""
    value = clean(value)
    if not length or units(value) <= length:
        return value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:_DIGEST]
    return _cut(value, max(0, length - _DIGEST - 1)) + "~" + digest


def facts(values: Mapping[str, Any], lengths: Mapping[str, int]) -> dict[str, Any]:
    """Every text value of `values` cleaned and clamped to `lengths`."""
    return {
        name: text(v, lengths.get(name)) if isinstance(v, str) else v
        for name, v in values.items()
    }
