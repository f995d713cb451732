"""The Salesforce backend against the HTTP emulator: batching, parents by
external ID, and every fault class (nothing lost, nothing duplicated)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sfemu import Emulator
from sfemu.testing import emulator, sf_secrets, sf_settings

from mailsync.crm.salesforce import SalesforceBackend, open_salesforce
from mailsync.crm.salesforce.errors import ReloginLimit
from mailsync.errors import CrmPausedError, TransientError

__all__ = ["emulator", "sf_secrets"]
ACC, AGR = "AWS_Account_ID__c", "Agreement_ID__c"


@pytest.fixture
def backend(emulator: Emulator, sf_secrets: None) -> Iterator[SalesforceBackend]:
    b = open_salesforce(sf_settings(emulator, opportunity_stage="Closed Won"))
    b.sleep = lambda _s: None  # backoff is exercised, not waited for
    yield b
    b.close()


def accounts(n: int) -> list[dict[str, Any]]:
    return [{ACC: f"{i:012d}", "Name": f"Buyer {i}"} for i in range(n)]


def agreements(n: int, account: str = "000000000001") -> list[dict[str, Any]]:
    return [
        {
            AGR: f"agmt-{i}",
            "Name": f"agmt-{i}",
            "Status__c": "Active",
            "Account__r": {ACC: account},
        }
        for i in range(n)
    ]


def test_collections_upsert_created_then_updated(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    first = backend.upsert("Account", ACC, accounts(450))
    assert len(first) == 450 and all(r.ok and r.created for r in first)
    assert emulator.calls["collections_patch"] == 3  # 200 + 200 + 50
    renamed = [{ACC: "000000000007", "Name": "Renamed"}]
    second = backend.upsert("Account", ACC, renamed)
    assert [(r.external_id, r.ok, r.created) for r in second] == [
        ("000000000007", True, False)
    ]
    assert len(emulator.records("Account")) == 450
    assert backend.existing_account_names(["000000000007", "999999999999"]) == {
        "000000000007": "Renamed"
    }


def test_parent_by_external_id(backend: SalesforceBackend, emulator: Emulator) -> None:
    backend.upsert("Account", ACC, accounts(2))
    results = backend.upsert(
        "AWS_Agreement__c",
        AGR,
        [*agreements(1), {AGR: "agmt-orphan", "Account__r": {ACC: "555555555555"}}],
    )
    assert [r.ok for r in results] == [True, False]
    assert results[1].error_code == "INVALID_FIELD" and "555555555555" in (
        results[1].message or ""
    )
    (row,) = emulator.records("AWS_Agreement__c")
    parent = next(a for a in emulator.records("Account") if a[ACC] == "000000000001")
    assert row["Account__c"] == parent["Id"]
    (read,) = backend.fetch_all("AWS_Agreement__c")
    assert read[AGR] == "agmt-0" and read["Account__r"] == {ACC: "000000000001"}


def test_account_lookup_chunks_in_clauses(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    backend.upsert("Account", ACC, accounts(450))
    emulator.calls.clear()
    names = backend.existing_account_names([f"{i:012d}" for i in range(450)])
    assert len(names) == 450 and names["000000000449"] == "Buyer 449"
    assert emulator.calls["query"] == 3


def test_503_is_retried_then_lands(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    emulator.faults.unavailable = 2
    results = backend.upsert("Account", ACC, accounts(3))
    assert all(r.ok for r in results)
    assert emulator.calls["unavailable"] == 2
    assert len(emulator.records("Account")) == 3


def test_outage_beyond_retries_raises_transient_and_retry_does_not_duplicate(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    emulator.faults.unavailable = 100
    with pytest.raises(TransientError, match="gave up after 5 attempts"):
        backend.upsert("Account", ACC, accounts(3))
    assert emulator.records("Account") == []
    emulator.faults.unavailable = 0
    assert all(r.ok for r in backend.upsert("Account", ACC, accounts(3)))
    assert len(emulator.records("Account")) == 3


def test_locked_rows_are_resent(backend: SalesforceBackend, emulator: Emulator) -> None:
    backend.upsert("Account", ACC, accounts(2))
    emulator.faults.lock_rows = 2
    results = backend.upsert("AWS_Agreement__c", AGR, agreements(5))
    assert all(r.ok and r.created for r in results)
    assert emulator.calls["locked"] == 2
    assert sorted(r[AGR] for r in emulator.records("AWS_Agreement__c")) == [
        f"agmt-{i}" for i in range(5)
    ]


def test_lock_that_never_clears_is_transient(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    backend.upsert("Account", ACC, accounts(2))
    emulator.faults.lock_rows = 1000
    with pytest.raises(TransientError, match="UNABLE_TO_LOCK_ROW"):
        backend.upsert("AWS_Agreement__c", AGR, agreements(2))
    assert emulator.calls["locked"] == 5  # bounded attempts


def test_expired_session_relogs_in_once(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    emulator.expire_sessions()
    assert all(r.ok for r in backend.upsert("Account", ACC, accounts(2)))
    assert emulator.logins == 2 and backend.relogins == 1


def test_persistently_invalid_session_is_bounded(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    emulator.faults.always_invalid_session = True
    with pytest.raises(TransientError, match="INVALID_SESSION_ID"):
        backend.upsert("Account", ACC, accounts(1))
    assert emulator.logins == 1 + 3  # initial login + max_relogins
    emulator.faults.always_invalid_session = False
    assert all(r.ok for r in backend.upsert("Account", ACC, accounts(1)))


def test_sftype_path_recursion_is_bounded_too(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    # simple-salesforce's SFType.upsert re-logs in without bound on a
    # persistent 401; the backend's login guard stops it.
    emulator.faults.always_invalid_session = True
    with pytest.raises(ReloginLimit):
        backend.sf.Account.upsert(f"{ACC}/000000000001", {"Name": "x"})
    assert emulator.logins == 1 + 3


def test_daily_limit_pauses(backend: SalesforceBackend, emulator: Emulator) -> None:
    emulator.faults.limit_reached = True
    with pytest.raises(CrmPausedError, match="REQUEST_LIMIT_EXCEEDED"):
        backend.upsert("Account", ACC, accounts(1))
    assert emulator.calls["limit_exceeded"] == 1  # no retry storm


def test_validation_refusals_come_back_per_record(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    def rule(
        obj: str, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> tuple[str, str, list[str]] | None:
        if obj == "Account" and new.get("Name", "").endswith("3"):
            return (
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "Buyer names ending in 3 are refused",
                [],
            )
        return None

    emulator.add_validation(rule)
    too_long = {ACC: "000000000099", "Name": "x" * 300}
    results = backend.upsert("Account", ACC, [*accounts(5), too_long])
    assert [r.ok for r in results] == [True, True, True, False, True, True]
    assert (results[3].error_code, results[3].message) == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Buyer names ending in 3 are refused",
    )
    assert len(emulator.records("Account")) == 5
    # a value longer than the describe length is clamped, not refused
    (clamped,) = [a for a in emulator.records("Account") if a[ACC] == "000000000099"]
    assert clamped["Name"] == "x" * 254 + "…"


def test_missing_field_refuses_only_the_records_that_carry_it(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    """Salesforce refuses the whole collection for a column the object lacks
    (metadata not deployed); the records without it are sent again and land,
    the others come back refused with Salesforce's code, message and field:
    final, never "still locked"."""
    emulator.remove_field("Account", "Name")
    records = [{ACC: "000000000001", "Name": "A"}, {ACC: "000000000002"}]
    results = backend.upsert("Account", ACC, records)
    assert [(r.ok, r.error_code, r.message, r.fields) for r in results] == [
        (
            False,
            "INVALID_FIELD",
            "No such column 'Name' on sobject of type Account",
            ("Name",),
        ),
        (True, None, None, ()),
    ]
    assert [a[ACC] for a in emulator.records("Account")] == ["000000000002"]
    assert emulator.calls["collections_patch"] == 2


def test_missing_object_refuses_every_record_once(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    results = backend.upsert("Nope__c", "Key__c", [{"Key__c": "a"}, {"Key__c": "b"}])
    assert [(r.external_id, r.ok, r.error_code) for r in results] == [
        ("a", False, "NOT_FOUND"),
        ("b", False, "NOT_FOUND"),
    ]
    assert emulator.calls["collections_patch"] == 1  # final, not retried


def test_text_is_clamped_to_the_orgs_describe_length(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    """An admin shortened a field: values are cut to what describe says."""
    emulator.store.schema["AWS_Agreement__c"].fields["Customer_Name__c"].length = 40
    backend.upsert("Account", ACC, accounts(2))
    (agreement,) = agreements(1)
    agreement["Customer_Name__c"] = "Acme " * 20
    assert backend.upsert("AWS_Agreement__c", AGR, [agreement])[0].ok
    (row,) = emulator.records("AWS_Agreement__c")
    assert row["Customer_Name__c"] == ("Acme " * 8)[:39].rstrip() + "…"


def test_usage_from_limit_header(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    backend.upsert("Account", ACC, accounts(1))
    assert backend.usage() == {"used": emulator.api_calls, "max": 15000}


def test_check_passes_on_deployed_metadata(backend: SalesforceBackend) -> None:
    lines = backend.check()
    assert all(line.ok for line in lines), lines
    assert {line.name for line in lines} >= {
        "salesforce AWS_Agreement__c",
        "salesforce Opportunity",
        "salesforce Account",
    }


def test_check_names_missing_field_and_bad_flags(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    emulator.faults.hidden_fields.add(("AWS_Agreement__c", "End_Date__c"))
    emulator.store.schema["AWS_Offer__c"].fields["Offer_ID__c"].unique = False
    emulator.store.schema["AWS_Subscription__c"].fields["Free_Trial__c"].type = "string"
    lines = {line.name: line for line in backend.check()}
    agreement = lines["salesforce AWS_Agreement__c"]
    assert not agreement.ok and "missing fields: End_Date__c" in agreement.detail
    assert (
        "Offer_ID__c must be External ID and Unique"
        in lines["salesforce AWS_Offer__c"].detail
    )
    assert (
        "Free_Trial__c is string, expected boolean"
        in lines["salesforce AWS_Subscription__c"].detail
    )
    assert lines["salesforce Account"].ok


def test_check_names_missing_picklist_values(
    backend: SalesforceBackend, emulator: Emulator
) -> None:
    # An org deployed before the Agreement API statuses existed.
    status = emulator.store.schema["AWS_Agreement__c"].fields["Status__c"]
    status.picklist = tuple(v for v in status.picklist if v != "Rolled Back")
    lines = {line.name: line for line in backend.check()}
    agreement = lines["salesforce AWS_Agreement__c"]
    assert not agreement.ok
    assert "Status__c lacks picklist values: Rolled Back" in agreement.detail


def test_update_opportunities(backend: SalesforceBackend, emulator: Emulator) -> None:
    for i, offer in enumerate(["offer-a", "offer-b", "offer-c"]):
        emulator.store.create(
            "Opportunity",
            {
                "Name": f"Deal {i}",
                "StageName": "Negotiation",
                "CloseDate": "2026-12-31",
                "AWS_Offer_ID__c": offer,
            },
        )
    emulator.calls.clear()
    assert (
        backend.update_opportunities(
            [("offer-a", "agmt-1"), ("offer-b", "agmt-2"), ("offer-z", "agmt-9")]
        )
        == 2
    )
    assert emulator.calls["query"] == 1 and emulator.calls["collections_patch"] == 1
    by_offer = {r["AWS_Offer_ID__c"]: r for r in emulator.records("Opportunity")}
    assert (
        by_offer["offer-a"]["StageName"],
        by_offer["offer-a"]["AWS_Agreement_ID__c"],
    ) == ("Closed Won", "agmt-1")
    assert by_offer["offer-c"]["StageName"] == "Negotiation"
    assert backend.update_opportunities([("offer-a", "agmt-1")]) == 0  # already set


def test_checked_schema_is_exactly_what_the_mapping_writes() -> None:
    from mailsync.crm import mapping as m
    from mailsync.crm.salesforce.schema import expected_schema

    specs = {s.name: s for s in expected_schema(m.CrmMapping(), opportunities=False)}
    assert set(specs) == set(m.OBJECTS)
    for obj, fields in m.FIELDS.items():
        spec = specs[obj]
        assert {spec.external_id, *spec.field_names()} == set(fields), obj


def test_check_follows_mapping_renames(emulator: Emulator, sf_secrets: None) -> None:
    mapping = {
        "fields": {"AWS_Agreement__c": {"Margin__c": "", "Status__c": "Stage__c"}}
    }
    b = open_salesforce(sf_settings(emulator, mapping=mapping))
    line = next(x for x in b.check() if x.name == "salesforce AWS_Agreement__c")
    assert not line.ok
    assert line.detail.startswith("missing fields: Stage__c;")
    assert "Margin__c" not in line.detail
