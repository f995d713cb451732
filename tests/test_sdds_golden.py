"""Golden Seller Data Feed buckets: each folder under tests/fixtures/sdds holds
a bucket, the deliveries that built it, and the records computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from sdds_helpers import (
    CASES,
    assert_expected,
    deliveries,
    files,
    flush,
    records,
    settings,
    write_tree,
)

from mailsync.cli import main


def _import(tmp: Path, tree: Path) -> int:
    config = tmp / "mailsync.toml"
    config.write_text(
        f'[state]\npath = "{tmp / "state.sqlite3"}"\n'
        f'[crm]\nbackend = "sqlite"\n[crm.sqlite]\npath = "{tmp / "crm.db"}"\n'
    )
    return main(["import", "--config", str(config), str(tree)])


def _all(tmp: Path) -> dict[str, dict[str, dict[str, object]]]:
    s = settings(tmp)
    return {o: records(s, o) for o in ("AWS_Invoice__c", "AWS_Agreement__c", "Account")}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_one_read_gives_the_expected_records(case: Path, tmp_path: Path) -> None:
    assert _import(tmp_path, case / "bucket") == 0
    assert_expected(case, _all(tmp_path))
    # the same files again: nothing is recomputed or written
    assert _import(tmp_path, case / "bucket") == 0
    assert flush(settings(tmp_path)) == 0


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_day_by_day_equals_one_read(case: Path, tmp_path: Path) -> None:
    tree = tmp_path / "bucket"
    for content in deliveries(case):
        write_tree(tree, content)
        assert _import(tmp_path, tree) == 0
    assert_expected(case, _all(tmp_path))
    assert files(case) == {
        "/".join(p.relative_to(tree).parts): p.read_bytes()
        for p in sorted(tree.rglob("*.csv"))
    }
