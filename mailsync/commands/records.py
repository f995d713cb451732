"""`mailsync records [OBJECT] [--format table|json|csv]` (contract section 1).

Reads the records mailsync maintains from the configured backend
(`CrmBackend.fetch_all`), with the contract's field names (section 4):

- json: one JSON array of objects, each with ``"object"`` plus its fields;
  money as two-decimal strings (``"270000.00"``), as `parse` writes it;
- csv: a header row; without OBJECT, every object with an ``object`` column;
  a cell a spreadsheet would run as a formula gets a leading ``'``
  (`mailsync.textsafe.csv_cell`);
- table (default): per object a title line and fixed-width columns of the
  most useful fields, long values truncated.

Values come from strangers: every control character is shown escaped
(`mailsync.textsafe.escape`) in the table and the CSV.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from mailsync import config
from mailsync.crm import mapping as m
from mailsync.crm.sync import crm_mapping, make_backend
from mailsync.errors import InputError
from mailsync.textsafe import csv_cell, escape

_WIDTH = 32  #: widest table column; longer values end in "…"


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    objects = _objects(args.object)
    mapping = crm_mapping(settings)
    crm_file = settings.crm.sqlite_path
    if settings.crm.backend == "sqlite" and not crm_file.exists():
        # Read-only: an empty answer, never a new file.
        print(
            f"mailsync: no records yet: {crm_file} does not exist; `mailsync run`"
            " creates it",
            file=sys.stderr,
        )
        rows: dict[str, list[dict[str, Any]]] = {obj: [] for obj in objects}
    else:
        backend = make_backend(settings)
        try:
            rows = {
                obj: [
                    _logical(obj, mapping.from_crm(obj, r))
                    for r in backend.fetch_all(mapping.obj(obj))
                ]
                for obj in objects
            }
        finally:
            backend.close()
    out = sys.stdout
    if args.format == "json":
        flat = [{"object": obj, **json_fields(r)} for obj in objects for r in rows[obj]]
        out.write(json.dumps(flat, indent=2, default=str) + "\n")
    elif args.format == "csv":
        _csv(rows, single=args.object is not None)
    else:
        _table(rows)
    return 0


def _objects(name: str | None) -> tuple[str, ...]:
    if name is None:
        return m.OBJECTS
    name = next((o for o in m.OBJECTS if o.casefold() == name.casefold()), name)
    if name not in m.OBJECTS:
        raise InputError(
            f"unknown OBJECT {name!r}; valid objects: {', '.join(m.OBJECTS)}"
        )
    return (name,)


def _logical(obj: str, record: dict[str, Any]) -> dict[str, Any]:
    """`Id` first, then the contract's fields in contract order."""
    out: dict[str, Any] = {"Id": record.get("Id")}
    for f in m.FIELDS[obj]:
        value = record.get(f)
        if f in m.INTEGER_FIELDS and isinstance(value, float | Decimal):
            value = int(value)  # a count of days, not an amount
        out[f] = value
    for f, v in record.items():
        if f not in out and f != "attributes":
            out[f] = v
    return out


def money_text(value: Any) -> str:
    """A CRM number as the contract's money amount: two decimals, never a
    float (``270000.0`` -> ``"270000.00"``)."""
    try:
        return str(Decimal(str(value)).quantize(Decimal("0.01")))
    except InvalidOperation:
        return str(value)


def json_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """`record` for JSON output: the money fields as two-decimal strings."""
    return {
        k: money_text(v)
        if k in m.NUMBER_FIELDS
        and k not in m.INTEGER_FIELDS
        and isinstance(v, int | float | Decimal)
        and not isinstance(v, bool)
        else v
        for k, v in record.items()
    }


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | Decimal):
        return money_text(value)
    return str(value)


def _csv_text(value: Any) -> str:
    """A CSV cell: formula-looking text prefixed with ``'``, then escaped."""
    return escape(csv_cell(_plain(value)))


def _one_line(value: Any) -> str:
    """A table value: whitespace runs as one space, controls escaped."""
    return escape(" ".join(_plain(value).split()))


def _csv(rows: dict[str, list[dict[str, Any]]], *, single: bool) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    if single:
        (obj,) = rows
        header = ["Id", *m.FIELDS[obj]]
        writer.writerow(header)
        for r in rows[obj]:
            writer.writerow([_csv_text(r.get(h)) for h in header])
        return
    header = ["object", "Id"]
    for obj in rows:
        header += [f for f in m.FIELDS[obj] if f not in header]
    writer.writerow(header)
    for obj, records in rows.items():
        for r in records:
            writer.writerow([obj, *(_csv_text(r.get(h)) for h in header[1:])])


def _cell(value: Any, width: int) -> str:
    text = _one_line(value)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.ljust(width)


def _table(rows: dict[str, list[dict[str, Any]]]) -> None:
    out = sys.stdout
    first = True
    for obj, records in rows.items():
        if not first:
            out.write("\n")
        first = False
        out.write(f"{obj} ({len(records)})\n")
        if not records:
            continue
        cols = m.TABLE_COLUMNS[obj]
        widths = [
            min(_WIDTH, max(len(c), *(len(_one_line(r.get(c))) for r in records)))
            for c in cols
        ]
        out.write(
            "  ".join(_cell(c, w) for c, w in zip(cols, widths, strict=True)).rstrip()
            + "\n"
        )
        out.write("  ".join("-" * w for w in widths) + "\n")
        for r in records:
            line = "  ".join(
                _cell(r.get(c), w) for c, w in zip(cols, widths, strict=True)
            )
            out.write(line.rstrip() + "\n")
