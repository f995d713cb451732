"""`mailsync check` for Salesforce: compare the org's schema with the mapping.

Each expected object is described once (``GET /sobjects/{Obj}/describe``); the
check names every missing field, every field whose describe ``type`` does not
fit, and an external-ID field that is not flagged External ID + Unique (an
upsert by a non-unique external ID needs "View All Data" and can answer 300
Multiple Choices; REST guide, "Insert or Update (Upsert) a Record Using an
External ID").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from mailsync.crm.salesforce.errors import Refused
from mailsync.crm.salesforce.schema import ANY, DESCRIBE_TYPES, ObjectSpec
from mailsync.errors import MailsyncError
from mailsync.sources.base import CheckLine

T = TypeVar("T")


class SalesforceBackend(Protocol):
    """What the check needs of `backend.SalesforceBackend` (no import cycle)."""

    sf: Any
    settings: Any
    schema: tuple[ObjectSpec, ...]

    def usage(self) -> dict[str, Any] | None: ...

    def _call(self, what: str, fn: Callable[[], T]) -> T: ...

DEPLOY_HINT = "deploy config/salesforce (see README, Connect Salesforce)"


def check_schema(backend: SalesforceBackend) -> list[CheckLine]:
    """One line for the connection, then one per expected object."""
    lines = [
        CheckLine(
            "salesforce login",
            True,
            f"{backend.sf.sf_instance} as {backend.settings.username or 'app'} "
            f"({backend.settings.auth})",
        )
    ]
    for spec in backend.schema:
        lines.append(_check_object(backend, spec))
    usage = backend.usage()
    if usage:
        lines.append(
            CheckLine(
                "salesforce api usage",
                usage["used"] < usage["max"],
                f"{usage['used']}/{usage['max']} calls in the last 24 hours",
            )
        )
    return lines


def _check_object(backend: SalesforceBackend, spec: ObjectSpec) -> CheckLine:
    name = f"salesforce {spec.name}"
    try:
        describe: Any = backend._call(
            f"describe {spec.name}",
            lambda: backend.sf.restful(f"sobjects/{spec.name}/describe"),
        )
    except Refused as exc:
        if exc.code == "NOT_FOUND":
            return CheckLine(name, False, f"object missing; {DEPLOY_HINT}")
        return CheckLine(name, False, str(exc))
    except MailsyncError as exc:
        return CheckLine(name, False, str(exc))
    problems = schema_problems(spec, describe or {})
    if problems:
        return CheckLine(name, False, "; ".join(problems))
    return CheckLine(name, True, f"{len(spec.fields) + 1} fields ok")


def schema_problems(spec: ObjectSpec, describe: dict[str, Any]) -> list[str]:
    """What is wrong with `describe` (a describe result) for `spec`."""
    fields = {f["name"]: f for f in describe.get("fields", [])}
    problems: list[str] = []
    missing = []
    if spec.external_id:
        ext = fields.get(spec.external_id)
        if ext is None:
            missing.append(spec.external_id)
        elif not (ext.get("externalId") and ext.get("unique")):
            problems.append(
                f"{spec.external_id} must be External ID and Unique "
                f"(externalId={ext.get('externalId')}, unique={ext.get('unique')})"
            )
        elif ext.get("type") not in DESCRIBE_TYPES["text"]:
            problems.append(f"{spec.external_id} is {ext.get('type')}, expected text")
    for f in spec.fields:
        have = fields.get(f.name)
        if have is None:
            missing.append(f.name)
            continue
        if f.kind != ANY and have.get("type") not in DESCRIBE_TYPES[f.kind]:
            problems.append(f"{f.name} is {have.get('type')}, expected {f.kind}")
        if f.reference_to and f.reference_to not in (have.get("referenceTo") or []):
            problems.append(f"{f.name} must be a lookup to {f.reference_to}")
    if missing:
        problems.insert(0, f"missing fields: {', '.join(missing)}; {DEPLOY_HINT}")
    return problems
