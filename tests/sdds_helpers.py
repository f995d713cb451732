"""Helpers for the Seller Data Feeds tests: golden fixture folders, partial
deliveries (month files cut after N data lines), and record comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mailsync.config import Settings, from_dict
from mailsync.crm.sync import CrmSync, make_backend
from mailsync.statedb import open_db

FIXTURES = Path(__file__).parent / "sdds_fixtures"
CASES = sorted(p for p in FIXTURES.iterdir() if (p / "expected.json").is_file())


def settings(tmp: Path) -> Settings:
    return from_dict(
        {
            "state": {"path": str(tmp / "state.sqlite3")},
            "crm": {"backend": "sqlite", "sqlite": {"path": str(tmp / "crm.db")}},
        }
    )


def files(case: Path) -> dict[str, bytes]:
    """Key (``<folder>/year=…/data.csv``) -> bytes of the final bucket."""
    root = case / "bucket"
    return {
        "/".join(p.relative_to(root).parts): p.read_bytes()
        for p in sorted(root.rglob("*.csv"))
    }


def deliveries(case: Path) -> list[dict[str, bytes]]:
    """The bucket after each delivery: every file cut after the number of data
    lines deliveries.json gives (files not yet named do not exist)."""
    final = files(case)
    steps = json.loads((case / "deliveries.json").read_text())
    out: list[dict[str, bytes]] = []
    state: dict[str, bytes] = {}
    for step in steps:
        for key, lines in step.items():
            text = final[key].split(b"\n")
            state[key] = b"\n".join(text[: 1 + lines]) + b"\n"
        out.append(dict(state))
    return out


def write_tree(root: Path, content: dict[str, bytes]) -> None:
    for key, data in content.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def flush(s: Settings) -> int:
    conn = open_db(s.state.path)
    try:
        sync = CrmSync(s, conn)
        try:
            result = sync.flush()
        finally:
            sync.close()
    finally:
        conn.close()
    assert result.pending == 0, result
    return result.records


def records(s: Settings, obj: str) -> dict[str, dict[str, Any]]:
    from mailsync.crm import mapping as m

    backend = make_backend(s)
    try:
        return {r[m.EXTERNAL_ID[obj]]: r for r in backend.fetch_all(obj)}
    finally:
        backend.close()


def assert_expected(case: Path, got: dict[str, dict[str, dict[str, Any]]]) -> None:
    expected = json.loads((case / "expected.json").read_text())
    from mailsync.crm import mapping as m

    for obj in ("AWS_Invoice__c", "AWS_Agreement__c"):
        want = {r[m.EXTERNAL_ID[obj]]: r for r in expected[obj]}
        assert sorted(got[obj]) == sorted(want), obj
        for key, fields in want.items():
            have = got[obj][key]
            diff = {f: (have.get(f), v) for f, v in fields.items() if have.get(f) != v}
            assert not diff, f"{obj} {key}: (got, expected) {diff}"
    assert sorted(got["Account"]) == expected["Account"]
