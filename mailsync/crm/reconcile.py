"""The pure core of `mailsync reconcile` (contract section 6).

`differences(aws, crm, *, role)` compares the agreements AWS reports (one
`agreement.snapshot` event per agreement ID) with the CRM's
`AWS_Agreement__c` records (logical field names) and returns the sorted
`Difference` list plus how many CRM agreements the API cannot show:

- `missing`: AWS lists it, the CRM has no record;
- `unknown`: the CRM has it, AWS does not list it, except a CPPO agreement
  (the record names a channel partner) when this account is the ISV: the
  API lists only the proposer's and acceptor's views, so the ISV of an
  agreement its channel partner proposed never sees it ("not visible");
- `differs`: one per compared field whose CRM value is not what the snapshot
  would write (status, dates, amount and currency, offer, buyer). What the
  snapshot would write is `mapping.touches(snapshot)`, so reconcile and the
  merge agree on names and formats; a snapshot without a value (no end date
  for pay-as-you-go) compares nothing, as it would blank nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailsync.crm import mapping as m
from mailsync.event import Event

#: Compared fields, in output order.
COMPARED = (
    m.STATUS,
    "Acceptance_Date__c",
    "Start_Date__c",
    "End_Date__c",
    "Purchase_Amount__c",
    "Currency__c",
    "Offer_ID__c",
    "Customer_AWS_Account_ID__c",
)
MISSING, UNKNOWN, DIFFERS = "missing", "unknown", "differs"


@dataclass(frozen=True, order=True)
class Difference:
    agreement_id: str
    difference: str  #: missing | unknown | differs
    field: str | None = None
    crm: str | None = None
    aws: str | None = None

    def line(self) -> str:
        """One line for the table format (values already made printable)."""
        if self.difference != DIFFERS:
            return f"{self.agreement_id} {self.difference}"
        return (
            f"{self.agreement_id} differs: {self.field} "
            f"crm={_show(self.crm)} aws={_show(self.aws)}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "agreement_id": self.agreement_id,
            "difference": self.difference,
            "field": self.field,
            "crm": self.crm,
            "aws": self.aws,
        }


def expected(snapshot: Event) -> dict[str, Any]:
    """The AWS_Agreement__c values the snapshot would write (compared fields)."""
    for touch in m.touches(snapshot):
        if touch.obj == m.AGREEMENT:
            out = {k: v for k, v in touch.facts.items() if k in COMPARED}
            if touch.status:
                out[m.STATUS] = touch.status
            return out
    return {}


def differences(
    aws: Mapping[str, Event],
    crm: Mapping[str, Mapping[str, Any]],
    *,
    role: str = "isv",
) -> tuple[list[Difference], int]:
    """(the differences, sorted; CRM agreements the API cannot show)."""
    out: list[Difference] = []
    not_visible = 0
    for agreement_id, snapshot in aws.items():
        record = crm.get(agreement_id)
        if record is None:
            out.append(Difference(agreement_id, MISSING))
            continue
        want = expected(snapshot)
        for name in COMPARED:
            if name not in want:
                continue
            have, should = _norm(record.get(name)), _norm(want[name])
            if have != should:
                out.append(
                    Difference(agreement_id, DIFFERS, name, _safe(have), _safe(should))
                )
    for agreement_id, record in crm.items():
        if agreement_id in aws:
            continue
        if role == "isv" and record.get("Channel_Partner_AWS_Account_ID__c"):
            not_visible += 1
            continue
        out.append(Difference(_safe(agreement_id) or "", UNKNOWN))
    return sorted(out), not_visible


def _norm(value: Any) -> str | None:
    """CRM and mapping values in one form: numbers with two decimals, the
    rest as text (dates are ISO `YYYY-MM-DD` on both sides)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"{float(value):.2f}"
    return str(value)


def _safe(value: str | None) -> str | None:
    """Printable on a terminal: control characters dropped, at most 120."""
    if value is None:
        return None
    text = "".join(c if c.isprintable() else " " for c in value)
    return text[:120]


def _show(value: str | None) -> str:
    return "null" if value is None else value
