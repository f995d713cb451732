"""Logical (contract) CRM names <-> the names of one CRM, as configured.

``[crm.salesforce] mapping`` renames objects, fields and picklist values, and
opts in extra fields; every table is optional and the default is identity:

```toml
[crm.salesforce.mapping.objects]          # logical object -> CRM object
AWS_Agreement__c = "My_Agreement__c"
[crm.salesforce.mapping.fields.AWS_Agreement__c]   # logical field -> CRM field
Status__c = "Stage__c"
Margin__c = ""                            # "" = do not write this field
[crm.salesforce.mapping.values.AWS_Agreement__c]   # picklist value renames
Active = "Live"
[crm.salesforce.mapping.extra_fields.AWS_Agreement__c]  # opt-in extra fields
Product_Code__c = "product_code"          # CRM field = event key (section 2)
```

`CrmMapping(config)` validates the table (a `ConfigError` naming the bad key
and the valid choices) and renames records both ways (`to_crm`, `from_crm`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailsync.crm.mapping_model import (
    ACCOUNT,
    ACCOUNT_LOOKUP,
    ACCOUNT_REF,
    AGREEMENT,
    AGREEMENT_LOOKUP,
    AGREEMENT_REF,
    EXTERNAL_ID,
    FIELDS,
    OBJECTS,
    OPPORTUNITY,
    STATUS,
)
from mailsync.errors import ConfigError


class CrmMapping:
    """Logical (contract) names <-> the CRM's names; identity by default."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        config = dict(config or {})
        where = "[crm.salesforce] mapping"
        unknown = set(config) - {"objects", "fields", "values", "extra_fields"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {sorted(unknown)[0]!r}; use objects, fields, "
                "values or extra_fields"
            )
        self.objects = _str_table(config.get("objects", {}), f"{where}.objects")
        self.fields = _nested(config.get("fields", {}), f"{where}.fields")
        self.values = _nested(config.get("values", {}), f"{where}.values")
        self.extra_fields = _nested(
            config.get("extra_fields", {}), f"{where}.extra_fields"
        )
        for name, table in (
            ("objects", dict.fromkeys(self.objects)),
            ("fields", self.fields),
            ("values", self.values),
            ("extra_fields", self.extra_fields),
        ):
            for obj in table:
                if obj not in FIELDS and obj != OPPORTUNITY:
                    raise ConfigError(
                        f"{where}.{name}.{obj}: unknown object; valid: "
                        + ", ".join(OBJECTS)
                    )
        for obj, renames in self.fields.items():
            for f in renames:
                if f not in FIELDS.get(obj, ()):
                    raise ConfigError(
                        f"{where}.fields.{obj}.{f}: unknown field; valid: "
                        + ", ".join(FIELDS[obj])
                    )
                if f == EXTERNAL_ID.get(obj) and not renames[f]:
                    raise ConfigError(
                        f"{where}.fields.{obj}.{f}: the external ID cannot be "
                        "switched off"
                    )

    def obj(self, logical: str) -> str:
        return self.objects.get(logical, logical)

    def field(self, obj: str, logical: str) -> str:
        """The CRM name of a field; "" when switched off."""
        return self.fields.get(obj, {}).get(logical, logical)

    def external_id(self, obj: str) -> str:
        return self.field(obj, EXTERNAL_ID[obj])

    def to_crm(self, obj: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Rename a logical record for the CRM (fields, picklist values, and the
        `Account__r` reference by external ID)."""
        out: dict[str, Any] = {}
        values = self.values.get(obj, {})
        for name, value in record.items():
            if name == ACCOUNT_REF:
                lookup = self.field(obj, ACCOUNT_LOOKUP)
                if lookup:
                    ref = _relationship(lookup)
                    out[ref] = {self.external_id(ACCOUNT): value[EXTERNAL_ID[ACCOUNT]]}
                continue
            if name == AGREEMENT_REF:
                lookup = self.field(obj, AGREEMENT_LOOKUP)
                if lookup:
                    ref = _relationship(lookup)
                    out[ref] = {
                        self.external_id(AGREEMENT): value[EXTERNAL_ID[AGREEMENT]]
                    }
                continue
            crm = self.field(obj, name) if name in FIELDS[obj] else name
            if not crm:
                continue
            out[crm] = values.get(value, value) if name == STATUS else value
        return out

    def from_crm(self, obj: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Rename a CRM record back to the contract's field names."""
        back = {self.field(obj, f): f for f in FIELDS[obj] if self.field(obj, f)}
        values = {v: k for k, v in self.values.get(obj, {}).items()}
        out: dict[str, Any] = {}
        for name, value in record.items():
            logical = back.get(name, name)
            out[logical] = values.get(value, value) if logical == STATUS else value
        return out


def _relationship(lookup_field: str) -> str:
    """`Account__c` -> `Account__r`; a standard `AccountId` -> `Account`."""
    if lookup_field.endswith("__c"):
        return lookup_field[:-3] + "__r"
    return lookup_field[:-2] if lookup_field.endswith("Id") else lookup_field


def _str_table(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(v, str) for v in value.values()
    ):
        raise ConfigError(f"{where}: expected a table of strings")
    return dict(value)


def _nested(value: Any, where: str) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table of tables")
    return {k: _str_table(v, f"{where}.{k}") for k, v in value.items()}
