"""The embedded CRM: a SQLite file with the same objects and fields as the
default Salesforce model (contract section 4), for users without Salesforce.

One table per object, one column per field, a generated `Id`, the external ID
column UNIQUE. A parent reference written the Salesforce way
(``"Account__r": {"AWS_Account_ID__c": "..."}``) is resolved to the Account's
`Id` in `Account__c`; an unknown Account or field is refused per record, like
Salesforce does (``INVALID_FIELD``), and the rest of the batch lands. A locked
or read-only file raises `TransientError`: nothing of the batch is written.
The file is separate from the state store (`[crm.sqlite] path`).
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mailsync.crm import mapping as m
from mailsync.crm.backend import WriteResult
from mailsync.errors import CrmStoreError, TransientError
from mailsync.fileperms import private_sqlite
from mailsync.sources.base import CheckLine
from mailsync.statedb import enable_wal

#: Salesforce-like key prefixes, so `Id`s say which object they belong to.
_PREFIX = {
    m.ACCOUNT: "001",
    m.AGREEMENT: "a01",
    m.OFFER: "a02",
    m.SUBSCRIPTION: "a03",
    m.EVENT: "a04",
    m.INVOICE: "a05",
}


def store_error(path: Path, err: BaseException) -> CrmStoreError:
    """The error for an unusable CRM file, naming it (not the state store)."""
    text = str(err)
    if isinstance(err, sqlite3.DatabaseError) and not isinstance(
        err, sqlite3.OperationalError
    ):
        hint = (
            "the file is damaged or not a mailsync CRM: restore it from a "
            "backup, or move it away and a new one is created; pending events "
            "stay in the outbox"
        )
    else:
        hint = "check that its folder exists, is writable and the disk is not full"
    return CrmStoreError(
        f"CRM file {path} ([crm.sqlite] path) cannot be used ({text}); {hint}"
    )


def _column_type(name: str) -> str:
    if name in m.NUMBER_FIELDS:
        return "REAL"
    if name in m.BOOLEAN_FIELDS:
        return "INTEGER"
    return "TEXT"


def _ddl() -> str:
    parts = []
    for obj, fields in m.FIELDS.items():
        ext = m.EXTERNAL_ID[obj]
        cols = ['"Id" TEXT PRIMARY KEY']
        for f in fields:
            unique = " NOT NULL UNIQUE" if f == ext else ""
            cols.append(f'"{f}" {_column_type(f)}{unique}')
        parts.append(f'CREATE TABLE IF NOT EXISTS "{obj}" ({", ".join(cols)});')
    return "\n".join(parts)


def _add_new_columns(conn: sqlite3.Connection) -> None:
    """A store created by an older version gains the fields added since."""
    for obj, fields in m.FIELDS.items():
        have = {str(r[1]) for r in conn.execute(f'PRAGMA table_info("{obj}")')}
        for f in fields:
            if f not in have:
                conn.execute(f'ALTER TABLE "{obj}" ADD COLUMN "{f}" {_column_type(f)}')


class SqliteStore:
    """`CrmBackend` over a local SQLite file (see the module docstring)."""

    name = "sqlite"

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        try:
            private_sqlite(path)  # deal data: 0600, folders 0700 (any umask)
            self.conn = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None
            )
            enable_wal(self.conn)
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(_ddl())
            _add_new_columns(self.conn)
        except (OSError, sqlite3.Error) as err:
            raise store_error(path, err) from None

    # -- CrmBackend ----------------------------------------------------------

    def existing_account_names(self, account_ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        ids = sorted(set(account_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f'SELECT "AWS_Account_ID__c", "Name" FROM "Account" '
                f'WHERE "AWS_Account_ID__c" IN ({marks})',
                chunk,
            )
            out.update({str(a): str(n or "") for a, n in rows})
        return out

    def upsert(
        self,
        obj: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
    ) -> list[WriteResult]:
        """Create or update `records` by `external_id_field`, in one
        transaction; per-record refusals come back `ok=False`."""
        if obj not in m.FIELDS or external_id_field != m.EXTERNAL_ID[obj]:
            return [
                WriteResult(
                    str(r.get(external_id_field)),
                    False,
                    False,
                    "INVALID_TYPE",
                    f"unknown object or external ID {obj}.{external_id_field}",
                )
                for r in records
            ]
        results: list[WriteResult] = []
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for record in records:
                    results.append(self._upsert_one(obj, external_id_field, record))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as err:
            # "database is locked", "attempt to write a readonly database",
            # disk full: the whole batch is retried later.
            raise TransientError(
                f"CRM store {self.path} cannot be written: {err}"
            ) from None
        except sqlite3.DatabaseError as err:  # damaged since it was opened
            raise store_error(self.path, err) from None
        return results

    def fetch_all(self, obj: str) -> list[dict[str, Any]]:
        """Every `obj` record (all columns, `None` when unset), oldest first."""
        if obj not in m.FIELDS:
            return []
        cur = self.conn.execute(f'SELECT * FROM "{obj}" ORDER BY rowid')
        names = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            record = dict(zip(names, row, strict=True))
            for f in m.BOOLEAN_FIELDS & set(record):
                if record[f] is not None:
                    record[f] = bool(record[f])
            out.append(record)
        return out

    def check(self) -> list[CheckLine]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("ROLLBACK")
        except sqlite3.Error as err:
            return [CheckLine("crm sqlite", False, f"{self.path}: {err}")]
        return [CheckLine("crm sqlite", True, f"{self.path} is writable")]

    def usage(self) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        self.conn.close()

    # -- internals -------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as err:
            raise TransientError(
                f"CRM store {self.path} cannot be read: {err}"
            ) from None
        except sqlite3.DatabaseError as err:
            raise store_error(self.path, err) from None

    def _upsert_one(self, obj: str, ext: str, record: Mapping[str, Any]) -> WriteResult:
        key = record.get(ext)
        if not isinstance(key, str) or not key:
            return WriteResult(
                str(key),
                False,
                False,
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{ext}]",
            )
        values: dict[str, Any] = {}
        for name, value in record.items():
            if name == m.ACCOUNT_REF and obj != m.ACCOUNT:
                parent = self._account_id(value)
                if parent is None:
                    return WriteResult(
                        key,
                        False,
                        False,
                        "INVALID_FIELD",
                        f"Foreign key external ID: {value} not "
                        "found for field AWS_Account_ID__c in "
                        "entity Account",
                    )
                values[m.ACCOUNT_LOOKUP] = parent
            elif name == m.AGREEMENT_REF and obj == m.INVOICE:
                agreement = self._parent_id(m.AGREEMENT, value)
                if agreement is None:
                    return WriteResult(
                        key,
                        False,
                        False,
                        "INVALID_FIELD",
                        f"Foreign key external ID: {value} not found for field "
                        "Agreement_ID__c in entity AWS_Agreement__c",
                    )
                values[m.AGREEMENT_LOOKUP] = agreement
            elif name not in m.FIELDS[obj]:
                return WriteResult(
                    key,
                    False,
                    False,
                    "INVALID_FIELD",
                    f"No such column '{name}' on entity '{obj}'",
                )
            else:
                values[name] = int(value) if isinstance(value, bool) else value
        # A SAVEPOINT per record: a CHECK constraint or a trigger that RAISEs
        # (the SQLite counterpart of a Salesforce validation rule) refuses this
        # record only; "CODE: message" in the trigger text becomes the code.
        self.conn.execute("SAVEPOINT rec")
        try:
            created = self._write_row(obj, ext, key, values)
        except sqlite3.IntegrityError as err:
            self.conn.execute("ROLLBACK TO rec")
            self.conn.execute("RELEASE rec")
            code, _, message = str(err).partition(": ")
            if not message or not code.replace("_", "").isupper():
                code, message = "FIELD_CUSTOM_VALIDATION_EXCEPTION", str(err)
            return WriteResult(key, False, False, code, message)
        self.conn.execute("RELEASE rec")
        return WriteResult(key, True, created)

    def _write_row(
        self, obj: str, ext: str, key: str, values: Mapping[str, Any]
    ) -> bool:
        exists = self.conn.execute(
            f'SELECT 1 FROM "{obj}" WHERE "{ext}" = ?', (key,)
        ).fetchone()
        cols = [c for c in values if c != ext]
        if exists:
            if cols:
                sets = ", ".join(f'"{c}" = ?' for c in cols)
                self.conn.execute(
                    f'UPDATE "{obj}" SET {sets} WHERE "{ext}" = ?',
                    [values[c] for c in cols] + [key],
                )
            return False
        new_id = _PREFIX[obj] + secrets.token_hex(8)[:15].upper()
        names = ", ".join(f'"{c}"' for c in ["Id", ext, *cols])
        marks = ", ".join("?" * (len(cols) + 2))
        self.conn.execute(
            f'INSERT INTO "{obj}" ({names}) VALUES ({marks})',
            [new_id, key, *(values[c] for c in cols)],
        )
        return True

    def _parent_id(self, obj: str, ref: Any) -> str | None:
        if not isinstance(ref, Mapping):
            return None
        ext = m.EXTERNAL_ID[obj]
        row = self.conn.execute(
            f'SELECT "Id" FROM "{obj}" WHERE "{ext}" = ?', (ref.get(ext),)
        ).fetchone()
        return str(row[0]) if row else None

    def _account_id(self, ref: Any) -> str | None:
        if not isinstance(ref, Mapping):
            return None
        key = ref.get(m.EXTERNAL_ID[m.ACCOUNT])
        row = self.conn.execute(
            'SELECT "Id" FROM "Account" WHERE "AWS_Account_ID__c" = ?', (key,)
        ).fetchone()
        return str(row[0]) if row else None
