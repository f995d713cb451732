"""The pipeline: one input in, one durable ledger outcome out.

`core.Pipeline` drives the steps; `inputs` holds the value types, `evaluate`
the parsing and trust check, `record` the ledger and outbox writes.
"""

from mailsync.pipeline.core import Pipeline
from mailsync.pipeline.inputs import (
    InputKind,
    Item,
    Outcome,
    Pending,
    header_message_id,
    sha256_hex,
)

__all__ = [
    "InputKind",
    "Item",
    "Outcome",
    "Pending",
    "Pipeline",
    "header_message_id",
    "sha256_hex",
]
