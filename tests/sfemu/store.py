"""Record storage, DML validation and a small SOQL subset for the emulator.

Semantics follow the REST API guide as summarised in
``reference/salesforce.md`` section 2: upsert by external ID (201 created /
200 updated with ``created``), case-insensitive unique external IDs, parents
set by external ID (``Account__r: {AWS_Account_ID__c: ...}``), 400 error lists
``[{"errorCode", "message", "fields"}]``.
"""

# ruff: noqa: E501

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .schema import ObjectDef

#: (obj, old record or None, new values) -> (errorCode, message, fields) or None
Validator = Callable[
    [str, dict[str, Any] | None, dict[str, Any]], tuple[str, str, list[str]] | None
]


class DmlError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        fields: list[str] | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.fields, self.status = (
            code,
            message,
            fields or [],
            status,
        )

    def as_list(self) -> list[dict[str, Any]]:
        return [
            {"errorCode": self.code, "message": self.message, "fields": self.fields}
        ]

    def as_item(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


def _checksum_id(id15: str) -> str:
    """The documented 15 -> 18 character Id suffix."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, c in enumerate(chunk) if c.isupper())
        suffix += alphabet[bits]
    return id15 + suffix


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class Store:
    def __init__(self, schema: dict[str, ObjectDef]) -> None:
        self.schema = schema
        self.records: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in schema}
        self.validators: list[Validator] = []
        self.lock = threading.RLock()
        self._seq = itertools.count(1)
        #: (obj, field) -> lower-cased value -> record Ids, for external IDs
        self.index: dict[tuple[str, str], dict[str, list[str]]] = {}

    # -- lookups --------------------------------------------------------------
    def obj(self, name: str) -> ObjectDef:
        if name not in self.schema:
            raise DmlError(
                "NOT_FOUND", "The requested resource does not exist", status=404
            )
        return self.schema[name]

    def find_by(self, obj: str, field: str, value: Any) -> list[dict[str, Any]]:
        want = str(value).lower()
        f = self.schema[obj].fields.get(field)
        if f is not None and f.external_id:
            ids = self.index.get((obj, field), {}).get(want, [])
            return [self.records[obj][i] for i in ids]
        return [
            r
            for r in self.records[obj].values()
            if r.get(field) is not None and str(r[field]).lower() == want
        ]

    def new_id(self, obj: ObjectDef) -> str:
        return _checksum_id(f"{obj.key_prefix}{next(self._seq):012d}"[:15])

    # -- DML --------------------------------------------------------------------
    def upsert(
        self, obj_name: str, ext: str, value: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Return (record, created)."""
        obj = self.obj(obj_name)
        f = obj.fields.get(ext)
        if f is None or (not f.external_id and ext != "Id"):
            raise DmlError(
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {ext}",
                status=404,
            )
        with self.lock:
            matches = self.find_by(obj_name, ext, value)
            if len(matches) > 1:
                raise DmlError("MULTIPLE_CHOICES", "multiple records", status=300)
            old = matches[0] if matches else None
            values = self._validate(
                obj, old, {**body, ext: value} if old is None else body
            )
            return self._save(obj, old, values), old is None

    def create(self, obj_name: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = self.obj(obj_name)
        with self.lock:
            return self._save(obj, None, self._validate(obj, None, body))

    def update(
        self, obj_name: str, record_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        obj = self.obj(obj_name)
        with self.lock:
            old = self.records[obj_name].get(record_id)
            if old is None:
                raise DmlError(
                    "NOT_FOUND", "The requested resource does not exist", status=404
                )
            return self._save(obj, old, self._validate(obj, old, body))

    def check_columns(self, obj_name: str, body: dict[str, Any]) -> None:
        """INVALID_FIELD for the first key of `body` that is no column of
        the object (a relationship ``X__r`` needs its lookup ``X__c``)."""
        obj = self.schema.get(obj_name)
        if obj is None:
            return  # the DML answers for an unknown object
        for key in body:
            if key in ("attributes", "Id", "id"):
                continue
            column = key[:-3] + "__c" if key.endswith("__r") else key
            if column not in obj.fields:
                raise DmlError(
                    "INVALID_FIELD",
                    f"No such column '{key}' on sobject of type {obj.name}",
                    [key],
                )

    def _validate(
        self, obj: ObjectDef, old: dict[str, Any] | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, value in body.items():
            if key in ("attributes", "Id", "id"):
                continue
            if key.endswith("__r") and isinstance(value, dict):
                fname = key[:-3] + "__c"
                f = obj.fields.get(fname)
                parent_ext = [k for k in value if k != "attributes"]
                if f is None or not f.reference_to or len(parent_ext) != 1:
                    raise DmlError(
                        "INVALID_FIELD",
                        f"No such column '{key}' on sobject of type {obj.name}",
                        [key],
                    )
                pext = parent_ext[0]
                parents = self.find_by(f.reference_to, pext, value[pext])
                if not parents:
                    raise DmlError(
                        "INVALID_FIELD",
                        f"Foreign key external ID: {value[pext]} not found for field {pext} in entity {f.reference_to}",
                        [fname],
                    )
                values[fname] = parents[0]["Id"]
                continue
            f = obj.fields.get(key)
            if f is None or key in (
                "CreatedDate",
                "LastModifiedDate",
                "SystemModstamp",
                "IsDeleted",
            ):
                raise DmlError(
                    "INVALID_FIELD",
                    f"No such column '{key}' on sobject of type {obj.name}",
                    [key],
                )
            if (
                isinstance(value, str)
                and f.length
                and f.type in ("string", "textarea")
                and len(value) > f.length
            ):
                raise DmlError(
                    "STRING_TOO_LONG",
                    f"{f.name}: data value too large: {value[:40]} (max length={f.length})",
                    [key],
                )
            if f.restricted and value is not None and value not in f.picklist:
                raise DmlError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{f.name}: bad value for restricted picklist field: {value}",
                    [key],
                )
            values[key] = value
        merged = {**(old or {}), **values}
        missing = [
            f.name
            for f in obj.fields.values()
            if f.required and merged.get(f.name) in (None, "")
        ]
        if missing:
            raise DmlError(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        for validator in self.validators:
            refused = validator(obj.name, dict(old) if old else None, merged)
            if refused:
                raise DmlError(*refused)
        return values

    def _save(
        self, obj: ObjectDef, old: dict[str, Any] | None, values: dict[str, Any]
    ) -> dict[str, Any]:
        now = _now()
        if old is None:
            old = {
                "Id": self.new_id(obj),
                "CreatedDate": now,
                "IsDeleted": False,
                "OwnerId": "005000000000001AAA",
            }
            for ext in (f.name for f in obj.fields.values() if f.unique):
                if values.get(ext) is not None and self.find_by(
                    obj.name, ext, values[ext]
                ):
                    raise DmlError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {ext} duplicates value on record",
                        [ext],
                    )
            self.records[obj.name][old["Id"]] = old
        for name, value in values.items():
            f = obj.fields.get(name)
            if f is not None and f.external_id and value is not None:
                key = str(value).lower()
                idx = self.index.setdefault((obj.name, name), {})
                previous = old.get(name)
                if previous is not None and str(previous).lower() != key:
                    idx.get(str(previous).lower(), []).remove(old["Id"])
                if old["Id"] not in idx.setdefault(key, []):
                    idx[key].append(old["Id"])
        old.update(values)
        old["LastModifiedDate"] = old["SystemModstamp"] = now
        return old

    # -- SOQL -------------------------------------------------------------------
    def query(self, soql: str) -> list[dict[str, Any]]:
        m = _SOQL.match(soql.strip())
        if not m:
            raise DmlError("MALFORMED_QUERY", f"unsupported query: {soql[:80]}")
        fields = [f.strip() for f in m["fields"].split(",")]
        obj = self.schema.get(m["obj"])
        if obj is None:
            raise DmlError(
                "INVALID_TYPE", f"sObject type '{m['obj']}' is not supported."
            )
        conds = (
            [c.strip() for c in re.split(r"\s+AND\s+", m["where"], flags=re.I)]
            if m["where"]
            else []
        )
        rows = [
            r
            for r in self.records[obj.name].values()
            if all(_match(obj, c, r) for c in conds)
        ]
        if m["order"]:
            rows.sort(key=lambda r: str(r.get(m["order"]) or ""))
        if m["limit"]:
            rows = rows[: int(m["limit"])]
        return [self._project(obj, fields, r) for r in rows]

    def _project(
        self, obj: ObjectDef, fields: list[str], row: dict[str, Any]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": obj.name,
                "url": f"/services/data/v59.0/sobjects/{obj.name}/{row['Id']}",
            }
        }
        for name in fields:
            if "." in name:
                rel, pfield = name.split(".", 1)
                ref = obj.fields.get(rel[:-3] + "__c")
                if ref is None or not ref.reference_to:
                    raise DmlError(
                        "INVALID_FIELD",
                        f"No such column '{name}' on entity '{obj.name}'",
                    )
                parent = self.records[ref.reference_to].get(row.get(ref.name) or "")
                out[rel] = (
                    None
                    if parent is None
                    else {
                        "attributes": {"type": ref.reference_to},
                        pfield: parent.get(pfield),
                    }
                )
            elif name not in obj.fields:
                raise DmlError(
                    "INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'"
                )
            else:
                out[name] = row.get(name)
        return out


_SOQL = re.compile(
    r"SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>\w+))?(?:\s+LIMIT\s+(?P<limit>\d+))?$",
    re.I | re.S,
)
_STRING = re.compile(r"'((?:[^'\\]|\\.)*)'")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _match(obj: ObjectDef, cond: str, row: dict[str, Any]) -> bool:
    m = re.match(r"(\w+)\s+IN\s+\((.*)\)$", cond, re.I | re.S)
    if m:
        _check_field(obj, m[1])
        wanted = {_unquote(v).lower() for v in _STRING.findall(m[2])}
        return row.get(m[1]) is not None and str(row[m[1]]).lower() in wanted
    m = re.match(r"(\w+)\s*(=|!=)\s*(null|'(?:[^'\\]|\\.)*')$", cond, re.I)
    if not m:
        raise DmlError("MALFORMED_QUERY", f"unsupported condition: {cond[:80]}")
    _check_field(obj, m[1])
    value = row.get(m[1])
    if m[3].lower() == "null":
        return (value is None) == (m[2] == "=")
    equal = value is not None and str(value).lower() == _unquote(m[3][1:-1]).lower()
    return equal == (m[2] == "=")


def _check_field(obj: ObjectDef, name: str) -> None:
    if name not in obj.fields:
        raise DmlError(
            "INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'"
        )
