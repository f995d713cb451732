"""The Salesforce CRM backend (`CrmBackend`) on simple-salesforce.

API budget: records are written with sObject Collections upsert
(``PATCH /composite/sobjects/{Obj}/{ExtField}``, up to 200 records per call,
``allOrNone: false``), which counts as one API request per call. Parents are
referenced by external ID (``"Account__r": {"AWS_Account_ID__c": ...}``), so no
lookups are needed; Salesforce resolves the reference, which means the parent
Account must be written before (or in an earlier batch than) its children.
https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html

Failures (see `mailsync.crm.salesforce.errors`): locks, 5xx and connection errors are
retried with exponential backoff and jitter, then raise `TransientError`;
REQUEST_LIMIT_EXCEEDED raises `CrmPausedError`; a record Salesforce refuses
comes back as ``WriteResult(ok=False)`` with Salesforce's code and message and
the rest of the batch lands. An expired session triggers a re-login at most
``max_relogins`` times per call: simple-salesforce 1.12 re-logs in without
bound on a persistently invalid session (its SFType path recurses until
RecursionError; upstream PR #728), so the login function is wrapped in a
counter.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import requests
import tenacity
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from simple_salesforce.format import format_soql

from mailsync.config import SalesforceSettings
from mailsync.crm import mapping as m
from mailsync.crm.backend import WriteResult
from mailsync.crm.salesforce import schema
from mailsync.crm.salesforce.auth import build_session, login_arguments
from mailsync.crm.salesforce.errors import (
    BAD_LOGIN_CODES,
    RACE_CODES,
    RETRYABLE_CODES,
    Refused,
    ReloginLimit,
    Retry,
    classify,
)
from mailsync.errors import ConfigError, TransientError
from mailsync.sources.base import CheckLine

log = logging.getLogger(__name__)
T = TypeVar("T")

#: External-ID values per SOQL ``IN (...)``: 200 IDs of up to ~40 characters
#: keep the GET URL well under the 16,384-byte REST URI limit.
QUERY_CHUNK = 200


class SalesforceBackend:
    """`CrmBackend` writing to a Salesforce org (see the module docstring)."""

    name = "salesforce"

    def __init__(
        self,
        settings: SalesforceSettings,
        sf: Salesforce,
        *,
        attempts: int = 5,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.sf = sf
        self.attempts = attempts
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.sleep = sleep
        self.mapping = m.CrmMapping(settings.mapping)
        self.schema = schema.expected_schema(
            self.mapping, opportunities=bool(settings.opportunity_stage)
        )
        self.relogins = 0  #: re-logins done so far (for status and tests)
        self._logins_this_call = 0
        self._usage: dict[str, int] | None = None
        login = sf._salesforce_login_partial
        if login is not None:
            guarded = self._guarded_login(login)
            sf._salesforce_login_partial = guarded  # type: ignore[assignment]

    # -- CrmBackend ---------------------------------------------------------

    def existing_account_names(self, account_ids: Sequence[str]) -> dict[str, str]:
        """`{AWS account ID: Name}` for existing Accounts: one SOQL query per
        `QUERY_CHUNK` IDs."""
        ext = self.mapping.external_id(m.ACCOUNT)
        account = self.mapping.obj(m.ACCOUNT)
        out: dict[str, str] = {}
        for chunk in _chunks(sorted(set(account_ids)), QUERY_CHUNK):
            soql = format_soql(
                f"SELECT {ext}, Name FROM {account} WHERE {ext} IN {{}}", chunk
            )
            for row in self._query(soql, "account lookup"):
                if row.get(ext):
                    out[str(row[ext])] = str(row.get("Name") or "")
        return out

    def upsert(
        self,
        obj: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
    ) -> list[WriteResult]:
        """Upsert in collections of ``batch_size``; one result per record, in
        order (see `CrmBackend.upsert`)."""
        results: list[WriteResult] = []
        for chunk in _chunks(list(records), self.settings.batch_size):
            results.extend(self._upsert_chunk(obj, external_id_field, chunk))
        refused = sum(not r.ok for r in results)
        log.info(
            "salesforce upsert %s: %d records, %d refused; api-usage %s",
            obj,
            len(results),
            refused,
            self._usage_text(),
        )
        return results

    def fetch_all(self, obj: str) -> list[dict[str, Any]]:
        """Every `obj` record (CRM or contract object name) that carries
        mailsync's external ID, with the mapped fields under their CRM names;
        a lookup comes back as ``{"Account__r": {ext: id}}``, as written."""
        spec = schema.find(self.schema, obj)
        if spec is None:
            raise ConfigError(f"unknown CRM object {obj!r}")
        names = [spec.external_id, *spec.field_names()] if spec.external_id else []
        if not names:
            names = spec.field_names()
        select: list[str] = []
        for f in spec.fields:
            if f.kind == "reference":
                names.remove(f.name)
                select.append(f"{f.relationship}.{self._parent_ext(f.reference_to)}")
        select = list(dict.fromkeys(names)) + select
        soql = f"SELECT {', '.join(select)} FROM {spec.name}"
        if spec.external_id:
            soql += f" WHERE {spec.external_id} != null"
        rows = []
        for row in self._query(soql, f"read {spec.name}"):
            record = {k: v for k, v in row.items() if k != "attributes"}
            for f in spec.fields:
                if f.kind == "reference":
                    parent = record.get(f.relationship)
                    ext = self._parent_ext(f.reference_to)
                    record[f.relationship] = (
                        {ext: parent.get(ext)} if isinstance(parent, dict) else None
                    )
            rows.append(record)
        return rows

    def check(self) -> list[CheckLine]:
        """Describe every expected object; one line per object naming what is
        missing or has the wrong type or flags. Never raises."""
        from mailsync.crm.salesforce.check import check_schema

        return check_schema(self)

    def usage(self) -> dict[str, Any] | None:
        """``{"used": N, "max": M}`` from the last ``Sforce-Limit-Info``."""
        return dict(self._usage) if self._usage else None

    def close(self) -> None:
        self.sf.session.close()

    # -- Opportunities ----------------------------------------------------

    def update_opportunities(self, pairs: Sequence[tuple[str, str]]) -> int:
        """For each ``(offer_id, agreement_id)``, set ``opportunity_stage`` and
        ``AWS_Agreement_ID__c`` on the Opportunities whose ``AWS_Offer_ID__c``
        is that offer. One query and one collections update per 200 offers;
        returns the number of Opportunities changed (0 when the stage is
        not configured)."""
        stage = self.settings.opportunity_stage
        if not stage:
            return 0
        agreement_of = dict(pairs)
        changed = 0
        for chunk in _chunks(sorted(agreement_of), QUERY_CHUNK):
            soql = format_soql(
                "SELECT Id, AWS_Offer_ID__c, StageName, AWS_Agreement_ID__c "
                "FROM Opportunity WHERE AWS_Offer_ID__c IN {}",
                chunk,
            )
            updates = []
            for row in self._query(soql, "opportunity lookup"):
                agreement = agreement_of[str(row["AWS_Offer_ID__c"])]
                if row.get("StageName") == stage and (
                    row.get("AWS_Agreement_ID__c") == agreement
                ):
                    continue
                updates.append(
                    {
                        "attributes": {"type": "Opportunity"},
                        "id": row["Id"],
                        "StageName": stage,
                        "AWS_Agreement_ID__c": agreement,
                    }
                )
            for batch in _chunks(updates, 200):
                answer = self._call(
                    "opportunity update",
                    lambda b=batch: self.sf.restful(  # type: ignore[misc]
                        "composite/sobjects",
                        method="PATCH",
                        json={"allOrNone": False, "records": b},
                    ),
                )
                for item in answer or []:
                    if item.get("success"):
                        changed += 1
                    else:
                        log.warning("opportunity not updated: %s", item.get("errors"))
        return changed

    # -- internals --------------------------------------------------------

    def _upsert_chunk(
        self, obj: str, ext: str, chunk: list[Mapping[str, Any]]
    ) -> list[WriteResult]:
        path = f"composite/sobjects/{obj}/{ext}"
        results: list[WriteResult | None] = [None] * len(chunk)
        pending = list(range(len(chunk)))
        raced: set[int] = set()
        for attempt in range(1, self.attempts + 1):
            body = {
                "allOrNone": False,
                "records": [_wire(obj, chunk[i]) for i in pending],
            }
            try:
                answer = self._call(
                    f"upsert {obj}",
                    lambda b=body: self.sf.restful(  # type: ignore[misc]
                        path, method="PATCH", json=b
                    ),
                )
            except Refused as exc:
                for i in pending:
                    results[i] = _failed(chunk[i], ext, exc.code, exc.message)
                break
            again = []
            for i, item in zip(pending, answer or [], strict=False):
                code, message = _item_error(item)
                if item.get("success"):
                    results[i] = WriteResult(
                        str(chunk[i].get(ext)), True, bool(item.get("created"))
                    )
                elif code in RETRYABLE_CODES or (code in RACE_CODES and i not in raced):
                    if code in RACE_CODES:
                        raced.add(i)
                    again.append(i)
                else:
                    results[i] = _failed(chunk[i], ext, code, message)
            pending = again
            if not pending:
                break
            if attempt < self.attempts:
                self.sleep(self._wait(attempt))
        if pending:
            raise TransientError(
                f"Salesforce upsert {obj}: {len(pending)} records still locked "
                f"after {self.attempts} attempts (UNABLE_TO_LOCK_ROW); will retry"
            )
        return [r for r in results if r is not None]

    def _query(self, soql: str, what: str) -> Iterator[dict[str, Any]]:
        try:
            page = self._call(what, lambda: self.sf.query(soql))
        except Refused as exc:
            raise TransientError(
                f"Salesforce {what} refused ({exc}); run mailsync check"
            ) from None
        while True:
            yield from page.get("records", [])
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            url = page["nextRecordsUrl"]
            page = self._call(
                what,
                lambda u=url: self.sf.query_more(  # type: ignore[misc]
                    u, identifier_is_url=True
                ),
            )

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one Salesforce call with bounded retries and re-logins."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Retry),
            wait=self._wait_strategy(),
            stop=tenacity.stop_after_attempt(self.attempts),
            sleep=self.sleep,
            reraise=True,
            before_sleep=tenacity.before_sleep_log(log, logging.WARNING),
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._logins_this_call = 0
                    try:
                        result = fn()
                    except Exception as exc:
                        mapped = classify(exc, what)
                        if mapped is exc:
                            raise
                        raise mapped from exc
        except Retry as exc:
            raise TransientError(
                f"Salesforce {what}: {exc}; gave up after {self.attempts} attempts"
            ) from exc
        self._note_usage()
        return result

    def _wait_strategy(self) -> tenacity.wait.wait_base:
        return tenacity.wait_exponential_jitter(
            multiplier=self.backoff, max=self.backoff_max, jitter=self.backoff
        )

    def _wait(self, attempt: int) -> float:
        """Backoff before re-sending locked records (same curve as `_call`)."""
        base = min(self.backoff_max, self.backoff * 2.0 ** (attempt - 1))
        return float(base + random.uniform(0, self.backoff))

    def _guarded_login(self, login: Callable[[], Any]) -> Callable[[], Any]:
        def guarded() -> Any:
            self._logins_this_call += 1
            if self._logins_this_call > self.settings.max_relogins:
                raise ReloginLimit(self.settings.max_relogins)
            self.relogins += 1
            log.info(
                "salesforce session expired; logging in again (%d/%d)",
                self._logins_this_call,
                self.settings.max_relogins,
            )
            return login()

        return guarded

    def _parent_ext(self, parent: str = "") -> str:
        if parent and parent == self.mapping.obj(m.AGREEMENT):
            return self.mapping.external_id(m.AGREEMENT)
        return self.mapping.external_id(m.ACCOUNT)

    def _note_usage(self) -> None:
        usage = self.sf.api_usage.get("api-usage")
        if usage is not None:
            self._usage = {"used": int(usage.used), "max": int(usage.total)}

    def _usage_text(self) -> str:
        u = self._usage
        return f"{u['used']}/{u['max']}" if u else "unknown"


def open_salesforce(
    settings: SalesforceSettings, session: requests.Session | None = None
) -> SalesforceBackend:
    """Log in and return the backend. Raise `ConfigError` when Salesforce
    refuses the credentials, `TransientError` when it cannot be reached."""
    args = login_arguments(settings)
    http = build_session(settings, session)
    try:
        sf = Salesforce(session=http, **args)
    except SalesforceAuthenticationFailed as exc:
        if str(exc.code) in BAD_LOGIN_CODES:
            raise ConfigError(
                f"[crm.salesforce] Salesforce refused the {settings.auth} login "
                f"({exc.code}: {exc.message}); check username, consumer_key, "
                "domain and the secrets"
            ) from None
        raise TransientError(
            f"Salesforce login failed ({exc.code}: {exc.message})"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise TransientError(
            f"cannot reach Salesforce ({type(exc).__name__}); check "
            "[crm.salesforce] domain / endpoint_url and the network"
        ) from None
    return SalesforceBackend(settings, sf)


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _wire(obj: str, record: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": {"type": obj}}
    for key, value in record.items():
        out[key] = _jsonable(value)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _item_error(item: Mapping[str, Any]) -> tuple[str, str]:
    errors = item.get("errors") or []
    if not errors:
        return "", ""
    first = errors[0]
    code = first.get("statusCode") or first.get("errorCode") or "UNKNOWN"
    return str(code), str(first.get("message", ""))


def _failed(
    record: Mapping[str, Any], ext: str, code: str, message: str
) -> WriteResult:
    return WriteResult(str(record.get(ext)), False, False, code, message)
