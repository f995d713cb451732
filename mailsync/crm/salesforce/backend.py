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
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import tenacity
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from simple_salesforce.format import format_soql

from mailsync.config import SalesforceSettings
from mailsync.crm import clamp
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
    auth_text,
    classify,
    unreachable,
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
        #: describe lengths of the text fields, per CRM object (one describe
        #: per object and session)
        self._lengths: dict[str, dict[str, int]] = {}
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
        order (see `CrmBackend.upsert`). Text values are clamped to the
        lengths the org's describe gives (an admin may have shortened a
        field, or mapped one to a shorter field)."""
        lengths = self.field_lengths(obj)
        fitted: list[Mapping[str, Any]] = [
            _fit(r, external_id_field, lengths) for r in records
        ]
        results: list[WriteResult] = []
        for chunk in _chunks(fitted, self.settings.batch_size):
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

    def field_lengths(self, obj: str) -> dict[str, int]:
        """``{field: length}`` of the text fields of `obj` from its describe
        (``GET /sobjects/{obj}/describe``, once per session); empty when the
        object cannot be described (the upsert then says why)."""
        if obj not in self._lengths:
            try:
                describe: Any = self._call(
                    f"describe {obj}",
                    lambda: self.sf.restful(f"sobjects/{obj}/describe"),
                )
            except Refused:
                describe = {}
            self._lengths[obj] = {
                str(f["name"]): int(f["length"])
                for f in (describe or {}).get("fields", [])
                if f.get("type") in _TEXT_TYPES and f.get("length")
            }
        return self._lengths[obj]

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
        """One collections upsert (re-sent for locked records).

        A request Salesforce refuses as a whole is answered per record: for
        INVALID_FIELD ("No such column 'X' on sobject of type Y", metadata not
        deployed) the records that carry X are refused with Salesforce's code
        and message and ``fields=(X,)`` and the others are sent again; for any
        other code every record is refused. Either way they are final
        (dead letters), never "still locked"."""
        path = f"composite/sobjects/{obj}/{ext}"
        results: list[WriteResult | None] = [None] * len(chunk)
        pending = list(range(len(chunk)))
        raced: set[int] = set()
        attempt = 0
        while pending:
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
                column = _missing_column(exc.code, exc.message)
                hit = [i for i in pending if column and column in chunk[i]]
                for i in hit or pending:
                    results[i] = _failed(
                        chunk[i], ext, exc.code, exc.message, (column,) if hit else ()
                    )
                pending = [i for i in pending if hit and i not in hit]
                continue
            attempt += 1
            again = []
            for i, item in zip(pending, answer or [], strict=False):
                code, message, fields = _item_error(item)
                if item.get("success"):
                    results[i] = WriteResult(
                        str(chunk[i].get(ext)), True, bool(item.get("created"))
                    )
                elif code in RETRYABLE_CODES or (code in RACE_CODES and i not in raced):
                    if code in RACE_CODES:
                        raced.add(i)
                    again.append(i)
                else:
                    results[i] = _failed(chunk[i], ext, code, message, fields)
            pending = again
            if not pending or attempt >= self.attempts:
                break
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
    log.debug(
        "Salesforce login auth=%s domain=%s endpoint_url=%s",
        settings.auth,
        args.get("domain"),
        settings.endpoint_url or "-",
    )
    try:
        sf = Salesforce(session=http, **args)
    except SalesforceAuthenticationFailed as exc:
        if str(exc.code) in BAD_LOGIN_CODES:
            raise ConfigError(
                f"[crm.salesforce] Salesforce refused the {settings.auth} login "
                f"({auth_text(exc)}); check username, consumer_key, "
                "domain and the secrets"
            ) from None
        raise TransientError(f"Salesforce login failed ({auth_text(exc)})") from None
    except requests.exceptions.RequestException as exc:
        host = settings.endpoint_url or f"{settings.domain or 'login'}.salesforce.com"
        raise TransientError(
            f"{unreachable(exc, urlsplit(host).hostname or host)}; check "
            "[crm.salesforce] domain / endpoint_url and the network"
        ) from None
    log.debug("Salesforce session opened instance=%s", sf.sf_instance)
    return SalesforceBackend(settings, sf)


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


#: Describe types whose ``length`` limits the value.
_TEXT_TYPES = frozenset(
    {"string", "textarea", "email", "url", "phone", "encryptedstring"}
)


def _fit(
    record: Mapping[str, Any], ext: str, lengths: Mapping[str, int]
) -> dict[str, Any]:
    """`record` with every text value within its describe length (the
    external ID shortened by `clamp.key`, so it stays unique)."""
    out = dict(record)
    for name, value in record.items():
        length = lengths.get(name)
        if isinstance(value, str) and length and clamp.units(value) > length:
            fit = clamp.key if name == ext else clamp.text
            out[name] = fit(value, length)
    return out


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


def _item_error(item: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    errors = item.get("errors") or []
    if not errors:
        return "", "", ()
    first = errors[0]
    code = first.get("statusCode") or first.get("errorCode") or "UNKNOWN"
    fields = first.get("fields") or ()
    names = tuple(str(f) for f in fields) if isinstance(fields, list) else ()
    return str(code), str(first.get("message", "")), names


#: DML: "No such column 'X' on sobject of type Y" (reference/salesforce.md 2.5)
_NO_SUCH_COLUMN = re.compile(r"No such column '([^']{1,255})'")


def _missing_column(code: str, message: str) -> str:
    """The field an INVALID_FIELD refusal names, else ""."""
    found = _NO_SUCH_COLUMN.search(message) if code == "INVALID_FIELD" else None
    return found[1] if found else ""


def _failed(
    record: Mapping[str, Any],
    ext: str,
    code: str,
    message: str,
    fields: tuple[str, ...] = (),
) -> WriteResult:
    return WriteResult(str(record.get(ext)), False, False, code, message, fields)
