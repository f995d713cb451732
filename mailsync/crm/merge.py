"""The merge rules (contract section 4), as pure functions, for every backend.

A `MirrorRecord` is what mailsync knows about one CRM record: the merged
facts, the version (`mapping.event_version`) each fact was set from, the
status proposals, and what was last written to the CRM. `apply()` folds one
`Touch` into it; the result depends only on the *set* of touches applied, not
on their order or on repeats, which is what makes processing order-independent
and idempotent:

- a fact is set from the event with the greatest version that carries it
  (event rows: the smallest, so the row keeps what was said first); an event
  without a value never blanks a field;
- a status applies when its rank is higher, or equal and its event newer;
  a subscription is re-opened by a `subscription.succeeded` newer than an
  `Unsubscribed` (statuses older than that re-opening no longer count);
- an Account's Name is the customer name, else the placeholder
  ``AWS account <id>``; mailsync writes it only while the CRM still shows the
  placeholder or the name mailsync itself wrote (`account_name_owned`);
- a value the CRM refused for its field (`refuse`) is left out of every later
  write until an event brings another value for that field or the dead letter
  is retried (`forgive`): one bad value never holds back the record's other
  facts or later events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mailsync.crm import mapping as m


@dataclass
class MirrorRecord:
    obj: str
    key: str
    fields: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    #: status proposals [rank, version, status, reopens]; for agreements and
    #: offers only the winning one is kept (nothing can displace a loser).
    statuses: list[list[Any]] = field(default_factory=list)
    #: the record as last written to the CRM (None: never written)
    written: dict[str, Any] | None = None
    #: logical field -> the value the CRM refused for it
    refused: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {
            "fields": self.fields,
            "versions": self.versions,
            "statuses": self.statuses,
            "written": self.written,
        }
        if self.refused:
            out["refused"] = self.refused
        return out

    @classmethod
    def from_json(cls, obj: str, key: str, data: dict[str, Any]) -> MirrorRecord:
        return cls(
            obj,
            key,
            dict(data.get("fields", {})),
            dict(data.get("versions", {})),
            [list(s) for s in data.get("statuses", [])],
            data.get("written"),
            dict(data.get("refused", {})),
        )


def apply(record: MirrorRecord, touch: m.Touch, version: str) -> None:
    """Fold one touch (from an event of `version`) into `record`."""
    for name, value in touch.facts.items():
        stored = record.versions.get(name)
        newer = stored is None or (
            version < stored if touch.oldest_wins else version > stored
        )
        if newer:
            record.fields[name] = value
            record.versions[name] = version
    if touch.status is None:
        return
    rank = m.RANKS[touch.obj][touch.status]
    proposal = [rank, version, touch.status, touch.reopens]
    if touch.obj == m.SUBSCRIPTION:
        if proposal not in record.statuses:
            record.statuses.append(proposal)
            record.statuses.sort()
    elif not record.statuses or (rank, version) > tuple(record.statuses[0][:2]):
        record.statuses = [proposal]


def status(record: MirrorRecord) -> str | None:
    """The winning status of `record` under the rank rules, or None."""
    proposals = record.statuses
    if not proposals:
        return None
    if record.obj == m.SUBSCRIPTION:
        # "A newer subscription.succeeded re-opens an unsubscribed
        # subscription": statuses older than such a re-opening stop counting.
        unsubscribed = [p[1] for p in proposals if p[2] == "Unsubscribed"]
        reopened = [p[1] for p in proposals if p[3]]
        cutoff = ""
        if unsubscribed and reopened and max(reopened) > min(unsubscribed):
            cutoff = max(reopened)
        proposals = [p for p in proposals if p[1] >= cutoff]
    best = max(proposals, key=lambda p: (p[0], p[1]))
    return str(best[2])


def account_name_owned(record: MirrorRecord, crm_name: str | None) -> bool:
    """May mailsync set this Account's Name? Yes when the Account does not
    exist in the CRM yet, or still shows mailsync's placeholder or the Name
    mailsync last wrote; never when anyone else chose its Name."""
    if crm_name is None or crm_name == m.placeholder_name(record.key):
        return True
    return record.written is not None and record.written.get(m.NAME) == crm_name


def refuse(record: MirrorRecord, names: Iterable[str]) -> None:
    """The CRM refused the current values of these logical fields: leave
    them out of later writes while they stay the same (see `render`)."""
    for name in names:
        if name in record.fields:
            record.refused[name] = record.fields[name]


def forgive(record: MirrorRecord) -> None:
    """Offer every refused value to the CRM again (a dead-letter retry)."""
    record.refused.clear()


def render(record: MirrorRecord) -> dict[str, Any]:
    """The logical record to write: external ID, Name label, facts, status,
    and the Account reference (by external ID) when the buyer is known.
    A fact whose value the CRM refused (`refuse`) is left out."""
    out = _render(record)
    for name, value in record.refused.items():
        if name not in out or out[name] != value or name == m.EXTERNAL_ID[record.obj]:
            continue
        if name == m.NAME:  # Name is required: the label mailsync falls back to
            out[name] = (
                m.placeholder_name(record.key)
                if record.obj == m.ACCOUNT
                else record.key[:80]
            )
        else:
            del out[name]
    return out


def _render(record: MirrorRecord) -> dict[str, Any]:
    obj = record.obj
    out: dict[str, Any] = {m.EXTERNAL_ID[obj]: record.key}
    if obj == m.ACCOUNT:
        out[m.NAME] = record.fields.get(m.NAME) or m.placeholder_name(record.key)
        return out
    out[m.NAME] = str(record.fields.get(m.NAME) or record.key)[:80]
    current = status(record)
    if current:
        out[m.STATUS] = current
    for name in sorted(record.fields):
        if name != m.NAME:
            out[name] = record.fields[name]
    if obj == m.AGREEMENT and "Customer_AWS_Account_ID__c" in record.fields:
        account_id = record.fields["Customer_AWS_Account_ID__c"]
        out[m.ACCOUNT_REF] = {m.EXTERNAL_ID[m.ACCOUNT]: account_id}
    if obj == m.INVOICE and record.fields.get("Agreement_ID__c"):
        agreement_id = record.fields["Agreement_ID__c"]
        out[m.AGREEMENT_REF] = {m.EXTERNAL_ID[m.AGREEMENT]: agreement_id}
    return out
