"""The interface of a CRM backend (the embedded SQLite store, Salesforce).

The merge rules are computed once, backend-independently, in
`mailsync.crm.merge`; a backend only stores the resulting records. Records are
plain dicts keyed by the (configurable) CRM field names from
`mailsync.crm.mapping`. A parent reference is written the Salesforce way, as a
nested external ID: ``{"Account__r": {"AWS_Account_ID__c": "210987654321"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mailsync.sources.base import CheckLine


@dataclass(frozen=True)
class WriteResult:
    """The outcome of one record in an upsert batch."""

    external_id: str
    ok: bool
    created: bool = False
    error_code: str | None = None  #: e.g. REQUIRED_FIELD_MISSING
    message: str | None = None  #: the CRM's message, for the dead-letter list
    #: the fields the CRM names as the cause (CRM names; may be empty)
    fields: tuple[str, ...] = ()


class CrmBackend(Protocol):
    name: str

    def existing_account_names(self, account_ids: Sequence[str]) -> dict[str, str]:
        """`{AWS account ID: Account Name}` for the Accounts that already
        exist (one query per batch for Salesforce)."""
        ...

    def upsert(
        self,
        obj: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
    ) -> list[WriteResult]:
        """Create or update `records` (each carries `external_id_field`), in
        order, one result per record. Raise `TransientError` when the CRM is
        unreachable or locked (retry the batch later), `CrmPausedError` when
        out of API calls; a record the CRM refuses comes back `ok=False`."""
        ...

    def fetch_all(self, obj: str) -> list[dict[str, Any]]:
        """Every record of `obj` that mailsync maintains (for `records`)."""
        ...

    def check(self) -> list[CheckLine]:
        """Reach the CRM; for Salesforce, describe every object and field."""
        ...

    def usage(self) -> dict[str, Any] | None:
        """Last known API usage (Salesforce `Sforce-Limit-Info`), or None."""
        ...

    def close(self) -> None: ...
