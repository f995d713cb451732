"""The pure Seller Data Feed core: CSV reader, versioning rule, computation."""

from __future__ import annotations

import io
import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsync.sdds import csvfeed
from mailsync.sdds.compute import Agreement, Billing, Invoice, Rollup, compute
from mailsync.sdds.csvfeed import ACCOUNT, AGREEMENTS, FeedError
from mailsync.sdds.store import FeedStore
from mailsync.sdds.versioning import current, version

# -- reader --------------------------------------------------------------------


def read(text: str, spec: csvfeed.FeedSpec = ACCOUNT) -> list[tuple[str | None, ...]]:
    return list(csvfeed.read(io.BytesIO(text.encode()), spec, "f/data.csv"))


def test_columns_by_name_unknown_ignored_both_timestamp_forms() -> None:
    rows = read(
        "\ufeffExtra, AWS_Account_ID ,account_id,valid_from,update_date,delete_date\n"
        'x,"012345678901",g1,2024-12-24 11:31:47.0,2018-12-31T00:04:07Z,\n'
    )
    assert rows == [
        ("g1", "2024-12-24T11:31:47Z", "2018-12-31T00:04:07Z", None, "012345678901")
    ]


def test_header_only_and_empty_files_have_no_rows() -> None:
    assert read("account_id,aws_account_id,valid_from\n") == []
    assert read("") == []


def test_missing_required_column_names_file_and_column() -> None:
    with pytest.raises(FeedError, match=r"f/data.csv: required column 'valid_from'"):
        read("account_id,aws_account_id\n")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("1500", True),
        ("-127.5", True),
        ("60000.000000", True),
        ("+3", True),
        ("1e5", False),
        ("1,000", False),
        ("NaN", False),
        ("12.", False),
    ],
)
def test_amounts_are_plain_decimals(value: str, ok: bool) -> None:
    text = (
        "agreement_id,valid_from,status,acceptor_account_id,estimated_agreement_value\n"
        f'a,2024-01-01T00:00:00Z,ACTIVE,g,"{value}"\n'
    )
    if ok:
        (row,) = read(text, AGREEMENTS)
        assert Decimal(str(row[AGREEMENTS.index("estimated_agreement_value")])) == (
            Decimal(value)
        )
    else:
        with pytest.raises(
            FeedError, match="line 2: column 'estimated_agreement_value'"
        ):
            read(text, AGREEMENTS)


@pytest.mark.parametrize("ts", ["2024-02-30T00:00:00Z", "24-01-01", "2024-01-01T25:00"])
def test_bad_timestamps_are_errors(ts: str) -> None:
    with pytest.raises(FeedError, match="column 'valid_from'"):
        read(f"account_id,aws_account_id,valid_from\ng,1,{ts}\n")


def test_quoted_commas_json_and_control_characters() -> None:
    (row,) = read(
        "account_id,aws_account_id,valid_from,x\n"
        '"a,b\x07c",1,2024-01-01,"{""k"":[1,2]}"\n'
    )
    assert row[0] == "a,b c"


def test_bidi_overrides_are_removed_from_text() -> None:
    (row,) = read(
        "account_id,aws_account_id,valid_from\n"
        '"Evil\u202eCorp\u2066",1,2024-01-01\n'
    )
    assert row[0] == "EvilCorp"


def test_not_utf8_is_an_error() -> None:
    with pytest.raises(FeedError, match="not UTF-8"):
        list(
            csvfeed.read(
                io.BytesIO(
                    b"account_id,aws_account_id,valid_from\n\xff,1,2024-01-01\n"
                ),
                ACCOUNT,
                "f",
            )
        )


# -- versioning ------------------------------------------------------------------


def test_latest_valid_from_then_update_date_and_deletes() -> None:
    rows = [
        ("k", version("2024-01-01", "2024-01-01", None, 0), "v1"),
        ("k", version("2024-01-01", "2024-01-05", None, 0), "v1 corrected"),
        ("k", version("2024-02-01", "2024-02-01", None, 0), "v2"),
        ("k", version("2024-02-01", "2024-02-03", "2024-02-03", 0), "v2 deleted"),
    ]
    assert current(rows, per_revision=True) == {"k": "v1 corrected"}
    assert current(rows, per_revision=False) == {}


rev = st.tuples(
    st.sampled_from(["a", "b"]),
    st.sampled_from(["2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"]),
    st.sampled_from(["2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z", None]),
    st.booleans(),
    st.sampled_from(["111111111111", "222222222222", "333333333333"]),
)


@given(st.lists(rev, max_size=12), st.randoms())
def test_store_applies_the_same_rule_in_any_order(
    revs: list[tuple[str, str, str | None, bool, str]], rnd: random.Random
) -> None:
    conn = open_db_memory()
    rows = [
        (g, vf, ud, "2024-04-01T00:00:00Z" if d else None, n)
        for g, vf, ud, d, n in revs
    ]
    rnd.shuffle(rows)
    FeedStore(conn).add("account", rows)
    from mailsync.sdds.versioning import checksum

    want = current(
        [(r[0], version(r[1], r[2], r[3], checksum(r)), r[4]) for r in rows],
        per_revision=True,
    )
    assert FeedStore(conn).accounts() == want


def open_db_memory():  # type: ignore[no-untyped-def]
    import sqlite3

    return sqlite3.connect(":memory:", isolation_level=None)


# -- computation -----------------------------------------------------------------

AGR = Agreement(
    "agmt-1",
    "2024-01-01T00:00:00Z",
    None,
    "ACTIVE",
    "g-buyer",
    "1000",
    "USD",
    "offer-1",
    None,
    None,
    None,
    None,
)


def row(action: str, ttype: str, amount: str, **kw: str | None) -> Billing:
    base: dict[str, str | None] = {
        "agreement_id": "agmt-1",
        "line": "TR-1",
        "action": action,
        "transaction_type": ttype,
        "amount": amount,
        "currency": "USD",
        "balance_impacting": "1",
        "invoice_id": "inv-1",
        "invoice_date": "2024-01-10T00:00:00Z",
        "payment_due_date": "2024-02-09T00:00:00Z",
        "transaction_reference_id": "TR-1",
        "buyer_transaction_reference_id": "TR-1",
        "disbursement_billing_event_id": None,
        "from_account_id": "g-payer",
        "product_id": "prod-1",
        "broker_id": "AWS_INC",
        "buyer_invoice_id": None,
        "buyer_invoice_date": None,
        "offer_id": None,
    }
    base.update(kw)
    return Billing(**base)  # type: ignore[arg-type]


def run(rows: list[Billing], as_of: str = "2024-03-01") -> list[Invoice | Rollup]:
    return list(
        compute(
            {"agmt-1": AGR},
            {"g-buyer": "111122223333", "g-payer": "444455556666"},
            {"d-1": "2024-02-20T00:00:00Z", "d-2": "2024-02-25T00:00:00Z"},
            rows,
            as_of,
        )
    )


def test_agreement_without_invoice_rolls_up_to_zero() -> None:
    (rollup,) = run([])
    assert isinstance(rollup, Rollup)
    assert (rollup.invoiced, rollup.outstanding, rollup.next_payment_due_date) == (
        0,
        0,
        None,
    )
    assert rollup.customer_account_id == "111122223333"


def test_reversed_disbursement_and_aging_from_the_data() -> None:
    rows = [
        row("INVOICED", "SELLER_REV_SHARE", "100"),
        row("INVOICED", "AWS_REV_SHARE", "-3"),
        row(
            "DISBURSED",
            "SELLER_REV_SHARE",
            "-100",
            disbursement_billing_event_id="d-1",
            balance_impacting="0",
        ),
        row(
            "DISBURSED",
            "AWS_REV_SHARE",
            "3",
            disbursement_billing_event_id="d-1",
            balance_impacting="0",
        ),
        row(
            "DISBURSED",
            "SELLER_REV_SHARE",
            "100",
            disbursement_billing_event_id="d-2",
            balance_impacting="0",
        ),
        row(
            "DISBURSED",
            "AWS_REV_SHARE",
            "-3",
            disbursement_billing_event_id="d-2",
            balance_impacting="0",
        ),
    ]
    rollup, inv = run(rows)
    assert isinstance(inv, Invoice) and isinstance(rollup, Rollup)
    assert (inv.net, inv.disbursed, inv.outstanding) == (97, 0, 97)
    assert inv.disbursement_status == "Disbursement reversed"
    assert inv.disbursement_date == "2024-02-25"
    assert inv.days_past_due == 21  # 2024-02-09 -> 2024-03-01 (leap year)
    assert inv.payer_account_id == "444455556666"
    assert rollup.next_payment_due_date == "2024-02-09"
    assert run(rows, as_of="2024-02-01")[1].days_past_due == 0  # type: ignore[union-attr]


def test_rows_of_unknown_agreements_and_lines_are_skipped() -> None:
    from mailsync.sdds.compute import Stats

    stats = Stats()
    out = list(
        compute(
            {"agmt-1": AGR},
            {},
            {},
            [
                row("INVOICED", "SELLER_REV_SHARE", "5", line=""),
                row("INVOICED", "SELLER_REV_SHARE", "7", agreement_id="agmt-2"),
            ],
            None,
            stats,
        )
    )
    assert [type(o) for o in out] == [Rollup]
    assert (stats.skipped_no_line, stats.skipped_no_agreement) == (1, 1)


def test_over_disbursed_counts_as_disbursed_and_sums_stay_exact() -> None:
    rows = [
        row("INVOICED", "SELLER_REV_SHARE", "0.105"),
        row("INVOICED", "SELLER_REV_SHARE", "0.105", line="TR-1"),
        row(
            "DISBURSED", "SELLER_REV_SHARE", "-0.3", disbursement_billing_event_id="d-1"
        ),
    ]
    _, inv = run(rows)
    assert isinstance(inv, Invoice)
    assert inv.net == Decimal("0.210") and inv.disbursement_status == "Disbursed"
    assert inv.days_past_due is None
