"""The emulated org's schema, read from the shipped metadata.

The custom objects and fields come from ``config/salesforce`` (the same source
an admin deploys), so a test run also checks that the metadata matches what
mailsync writes. Standard objects get the few standard fields Salesforce
requires on insert (Account ``Name``; Opportunity ``Name``, ``StageName``,
``CloseDate``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

METADATA = (
    Path(__file__).resolve().parents[2] / "config/salesforce/force-app/main/default"
)
NS = {"m": "http://soap.sforce.com/2006/04/metadata"}

#: Metadata field type -> describe ``type``.
DESCRIBE_TYPE = {
    "Text": "string",
    "LongTextArea": "textarea",
    "Picklist": "picklist",
    "Number": "double",
    "Currency": "currency",
    "Date": "date",
    "DateTime": "datetime",
    "Checkbox": "boolean",
    "Lookup": "reference",
}
KEY_PREFIX = {"Account": "001", "Contact": "003", "Opportunity": "006", "Task": "00T"}


@dataclass
class FieldDef:
    name: str
    type: str  #: describe type
    length: int = 0
    external_id: bool = False
    unique: bool = False
    required: bool = False
    reference_to: str = ""
    picklist: tuple[str, ...] = ()
    restricted: bool = False

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type,
            "length": self.length,
            "externalId": self.external_id,
            "unique": self.unique,
            "caseSensitive": False,
            "nillable": not self.required,
            "createable": self.name != "Id",
            "updateable": self.name != "Id",
            "picklistValues": [
                {"value": v, "label": v, "active": True} for v in self.picklist
            ],
            "referenceTo": [self.reference_to] if self.reference_to else [],
            "relationshipName": self.name[:-3] + "__r" if self.reference_to else None,
        }


@dataclass
class ObjectDef:
    name: str
    key_prefix: str
    fields: dict[str, FieldDef] = field(default_factory=dict)

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")


def _text(el: ET.Element, tag: str, default: str = "") -> str:
    found = el.find(f"m:{tag}", NS)
    return found.text or default if found is not None else default


def _field(path: Path) -> FieldDef:
    root = ET.parse(path).getroot()
    mtype = _text(root, "type")
    return FieldDef(
        name=_text(root, "fullName"),
        type=DESCRIBE_TYPE[mtype],
        length=int(_text(root, "length", "0") or 0),
        external_id=_text(root, "externalId") == "true",
        unique=_text(root, "unique") == "true",
        required=_text(root, "required") == "true",
        reference_to=_text(root, "referenceTo"),
        picklist=tuple(v.text or "" for v in root.findall(".//m:value/m:fullName", NS)),
        restricted=_text(root.find("m:valueSet", NS) or root, "restricted") == "true",
    )


def load_schema(metadata: Path = METADATA) -> dict[str, ObjectDef]:
    """Standard objects plus everything under `metadata`/objects."""
    objects: dict[str, ObjectDef] = {}
    for i, obj_dir in enumerate(sorted((metadata / "objects").iterdir())):
        name = obj_dir.name
        obj = ObjectDef(name, KEY_PREFIX.get(name, f"a0{i:X}"))
        obj.fields["Name"] = FieldDef(
            "Name", "string", 255 if name == "Account" else 80, required=not obj.custom
        )
        if name == "Opportunity":
            obj.fields["Name"].length = 120
            obj.fields["StageName"] = FieldDef(
                "StageName", "picklist", 255, required=True
            )
            obj.fields["CloseDate"] = FieldDef("CloseDate", "date", required=True)
        for path in sorted((obj_dir / "fields").glob("*.field-meta.xml")):
            f = _field(path)
            obj.fields[f.name] = f
        objects[name] = obj
    for obj in objects.values():
        for system in ("Id", "OwnerId"):
            obj.fields[system] = FieldDef(
                system, "id" if system == "Id" else "reference", 18
            )
        for system in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            obj.fields[system] = FieldDef(system, "datetime")
        obj.fields["IsDeleted"] = FieldDef("IsDeleted", "boolean")
    return objects
