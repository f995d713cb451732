"""Golden Seller Data Feed buckets: each folder under tests/sdds_fixtures holds
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


def test_demo_bucket_puts_invoices_next_to_the_sample_inbox_agreements(
    tmp_path: Path,
) -> None:
    root = Path(__file__).resolve().parent.parent
    config = tmp_path / "mailsync.toml"
    config.write_text(
        f'[state]\npath = "{tmp_path / "state.sqlite3"}"\n'
        f'[source.maildir]\npath = "{root / "examples/inbox"}"\n'
        f'[source.sdds]\npath = "{root / "examples/sdds"}"\n'
        "[security]\nrequire_dkim = false\n"
        f'[crm]\nbackend = "sqlite"\n[crm.sqlite]\npath = "{tmp_path / "crm.db"}"\n'
    )
    assert main(["run", "--once", "--config", str(config)]) == 0
    s = settings(tmp_path)
    invoices = records(s, "AWS_Invoice__c")
    agreements = records(s, "AWS_Agreement__c")
    assert sorted(invoices) == [
        "inv-2026100001:agmt-co9p1m4x7c2v5b8n0q3w6e9r2",
        "inv-2026110007:agmt-nw5z2x8c1v4b7n0m3q6w9e2r5",
    ]
    paid, open_ = (invoices[k] for k in sorted(invoices))
    assert (paid["Disbursement_Status__c"], paid["Outstanding_Amount__c"]) == (
        "Disbursed",
        0.0,
    )
    assert (open_["Net_Amount__c"], open_["Days_Past_Due__c"]) == (5820.0, 2)
    northwind = agreements["agmt-nw5z2x8c1v4b7n0m3q6w9e2r5"]
    # from the replaced-agreement email and from the feed
    assert northwind["Customer_Name__c"] == "Northwind Traders Inc."
    assert northwind["Outstanding_Amount__c"] == 5820.0
    assert agreements["agmt-nw3k8d0v7q2m5xw9b1c4n6r8t"]["Status__c"] == "Payment Failed"


def test_single_files_named_by_their_folder_path(tmp_path: Path) -> None:
    case = CASES[0]
    config = tmp_path / "mailsync.toml"
    config.write_text(
        f'[state]\npath = "{tmp_path / "state.sqlite3"}"\n'
        f'[crm]\nbackend = "sqlite"\n[crm.sqlite]\npath = "{tmp_path / "crm.db"}"\n'
    )
    paths = [str(p) for p in sorted((case / "bucket").rglob("data.csv"))]
    assert main(["import", "--config", str(config), *paths]) == 0
    assert_expected(case, _all(tmp_path))
    stray = tmp_path / "elsewhere" / "data.csv"
    stray.parent.mkdir()
    stray.write_text("a,b\n")
    assert main(["import", "--config", str(config), str(stray)]) == 2
