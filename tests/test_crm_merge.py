"""The merge rules of contract section 4, rule by rule, with values."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from mailsync.crm import mapping as m
from mailsync.crm import merge
from mailsync.errors import ConfigError
from mailsync.event import Channel, Event, Kind, Money, Trust

BUYER = "111122223333"


def at(hour: int, day: int = 1) -> datetime:
    return datetime(2024, 5, day, hour, 0, tzinfo=UTC)


def ev(kind: Kind, hour: int = 12, **kw: Any) -> Event:
    kw.setdefault("source_id", f"{kind}-{hour}-{kw.get('agreement_id')}@example")
    return Event(kind=kind, occurred_at=at(hour), **kw)


def fold(events: Iterable[Event]) -> dict[tuple[str, str], dict[str, Any]]:
    records: dict[tuple[str, str], merge.MirrorRecord] = {}
    for event in events:
        for touch in m.touches(event):
            key = (touch.obj, touch.key)
            record = records.setdefault(key, merge.MirrorRecord(*key))
            merge.apply(record, touch, m.event_version(event))
    return {k: merge.render(r) for k, r in records.items()}


def agreement(events: Iterable[Event], agreement_id: str = "agmt-1") -> dict[str, Any]:
    return fold(events)[(m.AGREEMENT, agreement_id)]


# -- business-event keys -----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "suffix"),
    [
        (Kind.OFFER_ACCEPTED, "created"),
        (Kind.AGREEMENT_REPLACED, "created"),
        (Kind.AGREEMENT_CREATED, "created"),
        (Kind.AGREEMENT_STARTED, "started"),
        (Kind.AGREEMENT_CANCELLED, "ended"),
        (Kind.AGREEMENT_ENDED, "ended"),
        (Kind.AGREEMENT_PAYMENT_FAILED, "payment_failed"),
        (Kind.AGREEMENT_CREATION_FAILED, "creation_failed"),
    ],
)
def test_agreement_event_keys(kind: Kind, suffix: str) -> None:
    event = ev(kind, agreement_id="agmt-9")
    assert m.event_key(event) == f"agreement:agmt-9:{suffix}"


def test_offer_published_and_released_share_a_key() -> None:
    email = ev(Kind.OFFER_PUBLISHED, offer_id="offer-7")
    bridge = ev(Kind.OFFER_RELEASED, channel=Channel.EVENTBRIDGE, offer_id="offer-7")
    assert m.event_key(email) == m.event_key(bridge) == "offer:offer-7:published"


def test_disbursement_key_is_arn_and_utc_date() -> None:
    arn = "arn:aws:payments:us-east-1:123456789012:paymentinstrument:pi-0"
    event = ev(Kind.DISBURSEMENT_PAUSED, 23, resource_arn=arn)
    assert m.event_key(event) == f"disbursement:{arn}:2024-05-01"


def test_other_events_use_transport_keys() -> None:
    assert m.event_key(ev(Kind.SECURITY_SCAN_REPORTED, source_id="a@b")) == "email:a@b"
    sns = ev(Kind.ENTITLEMENT_UPDATED, channel=Channel.SNS, source_id="m-1")
    assert m.event_key(sns) == "sns:m-1"
    eb = ev(Kind.LICENSE_UPDATED, channel=Channel.EVENTBRIDGE, source_id="e-1")
    assert m.event_key(eb) == "eventbridge:e-1"
    bare = Event(kind=Kind.SUBSCRIPTION_SUCCEEDED, channel=Channel.SNS)
    key = m.event_key(bare)
    assert key.startswith("sns:sha256:") and len(key) == len("sns:sha256:") + 32
    # An offer.accepted without an agreement ID is its own event.
    assert m.event_key(ev(Kind.OFFER_ACCEPTED, source_id="x@y")) == "email:x@y"


def test_two_channels_one_event_row_first_delivery_kept() -> None:
    email = ev(Kind.AGREEMENT_CANCELLED, 10, agreement_id="agmt-1")
    bridge = ev(
        Kind.AGREEMENT_ENDED,
        11,
        channel=Channel.EVENTBRIDGE,
        source_id="eb-1",
        agreement_id="agmt-1",
        agreement_status="CANCELLED",
        customer_account_id=BUYER,
    )
    for order in ([email, bridge], [bridge, email]):
        rows = [k for k in fold(order) if k[0] == m.EVENT]
        assert rows == [(m.EVENT, "agreement:agmt-1:ended")]
        row = fold(order)[(m.EVENT, "agreement:agmt-1:ended")]
        assert row["Channel__c"] == "email"
        assert row["Source_ID__c"] == email.source_id
        # the later delivery still fills what the first did not say
        assert row["Customer_AWS_Account_ID__c"] == BUYER


# -- agreement status ranks --------------------------------------------------


def test_status_never_rolls_back_to_active() -> None:
    cancel = ev(Kind.AGREEMENT_CANCELLED, 14, agreement_id="agmt-1")
    late_created = ev(Kind.OFFER_ACCEPTED, 16, agreement_id="agmt-1")
    assert agreement([cancel, late_created])["Status__c"] == "Cancelled"
    assert agreement([late_created, cancel])["Status__c"] == "Cancelled"


def test_payment_failed_outranks_active_and_is_outranked_by_terminal() -> None:
    active = ev(Kind.AGREEMENT_STARTED, 10, agreement_id="agmt-1")
    failed = ev(Kind.AGREEMENT_PAYMENT_FAILED, 11, agreement_id="agmt-1")
    newer_active = ev(Kind.AGREEMENT_AMENDED, 12, agreement_id="agmt-1")
    assert agreement([active, failed, newer_active])["Status__c"] == "Payment Failed"
    ended = ev(
        Kind.AGREEMENT_ENDED, 9, agreement_id="agmt-1", agreement_status="TERMINATED"
    )
    assert agreement([failed, ended])["Status__c"] == "Terminated"


def test_equal_rank_newer_event_wins_in_any_order() -> None:
    cancelled = ev(Kind.AGREEMENT_CANCELLED, 10, agreement_id="agmt-1")
    expired = ev(
        Kind.AGREEMENT_ENDED, 11, agreement_id="agmt-1", agreement_status="EXPIRED"
    )
    assert agreement([cancelled, expired])["Status__c"] == "Expired"
    assert agreement([expired, cancelled])["Status__c"] == "Expired"


@pytest.mark.parametrize(
    ("status", "value"),
    [
        ("CANCELLED", "Cancelled"),
        ("EXPIRED", "Expired"),
        ("TERMINATED", "Terminated"),
        ("RENEWED", "Renewed"),
        ("REPLACED", "Replaced"),
    ],
)
def test_eventbridge_ended_maps_agreement_status(status: str, value: str) -> None:
    ended = ev(Kind.AGREEMENT_ENDED, agreement_id="agmt-1", agreement_status=status)
    assert agreement([ended])["Status__c"] == value


def test_creation_failed_and_ending_statuses() -> None:
    failed = ev(Kind.AGREEMENT_CREATION_FAILED, agreement_id="agmt-1")
    assert agreement([failed])["Status__c"] == "Creation Failed"
    ending = ev(Kind.AGREEMENT_ENDING, agreement_id="agmt-2")
    assert "Status__c" not in agreement([ending], "agmt-2")


# -- facts ---------------------------------------------------------------------


def test_facts_are_never_blanked_and_newest_wins() -> None:
    first = ev(
        Kind.OFFER_ACCEPTED,
        10,
        agreement_id="agmt-1",
        customer_account_id=BUYER,
        customer_name="Acme",
        end_date=date(2025, 4, 30),
        purchase_amount=Money(Decimal("48000"), "USD"),
    )
    amended = ev(
        Kind.AGREEMENT_AMENDED,
        12,
        agreement_id="agmt-1",
        end_date=date(2026, 4, 30),
        purchase_amount=Money(Decimal("60000.5"), "EUR"),
    )
    older = ev(Kind.AGREEMENT_STARTED, 11, agreement_id="agmt-1", customer_name="Old")
    for order in ([first, amended, older], [older, amended, first]):
        rec = agreement(order)
        assert rec["End_Date__c"] == "2026-04-30"
        assert rec["Purchase_Amount__c"] == 60000.5
        assert rec["Currency__c"] == "EUR"
        assert rec["Customer_Name__c"] == "Old"  # 11:00 is newer than 10:00
        assert rec["Customer_AWS_Account_ID__c"] == BUYER  # never blanked
        assert rec["Account__r"] == {"AWS_Account_ID__c": BUYER}
        assert rec["Last_Event_At__c"] == "2024-05-01T12:00:00Z"
        assert rec["Last_Event_Kind__c"] == "agreement.amended"


def test_agreement_record_carries_every_contract_fact() -> None:
    event = ev(
        Kind.OFFER_ACCEPTED,
        agreement_id="agmt-1",
        customer_account_id=BUYER,
        customer_name="Acme",
        offer_id="offer-1",
        offer_name="Annual",
        product_id="prod-1",
        product_name="Widget",
        acceptance_date=date(2024, 5, 1),
        start_date=date(2024, 5, 2),
        end_date=date(2025, 5, 1),
        purchase_amount=Money(Decimal("100"), "USD"),
        wholesale_price=Money(Decimal("80"), "USD"),
        margin=Money(Decimal("20"), "USD"),
        channel_partner_name="Reseller",
        channel_partner_account_id="444455556666",
        isv_name="ISV",
        isv_account_id="777788889999",
        previous_agreement_id="agmt-0",
    )
    rec = agreement([event])
    assert rec == {
        "Agreement_ID__c": "agmt-1",
        "Name": "agmt-1",
        "Status__c": "Active",
        "Account__r": {"AWS_Account_ID__c": BUYER},
        "Customer_AWS_Account_ID__c": BUYER,
        "Customer_Name__c": "Acme",
        "Offer_ID__c": "offer-1",
        "Offer_Name__c": "Annual",
        "Product_ID__c": "prod-1",
        "Product_Name__c": "Widget",
        "Acceptance_Date__c": "2024-05-01",
        "Start_Date__c": "2024-05-02",
        "End_Date__c": "2025-05-01",
        "Purchase_Amount__c": 100.0,
        "Wholesale_Price__c": 80.0,
        "Margin__c": 20.0,
        "Currency__c": "USD",
        "Channel_Partner_Name__c": "Reseller",
        "Channel_Partner_AWS_Account_ID__c": "444455556666",
        "ISV_Name__c": "ISV",
        "ISV_AWS_Account_ID__c": "777788889999",
        "Previous_Agreement_ID__c": "agmt-0",
        "Last_Event_At__c": "2024-05-01T12:00:00Z",
        "Last_Event_Kind__c": "offer.accepted",
    }
    assert set(rec) - {"Account__r"} <= set(m.FIELDS[m.AGREEMENT])


def test_replacement_names_the_old_agreement_without_changing_it() -> None:
    replaced = ev(
        Kind.AGREEMENT_CREATED,
        channel=Channel.EVENTBRIDGE,
        agreement_id="agmt-new",
        previous_agreement_id="agmt-old",
        agreement_status="ACTIVE",
    )
    records = fold([ev(Kind.AGREEMENT_STARTED, 8, agreement_id="agmt-old"), replaced])
    assert records[(m.AGREEMENT, "agmt-new")]["Previous_Agreement_ID__c"] == "agmt-old"
    assert records[(m.AGREEMENT, "agmt-old")]["Status__c"] == "Active"
    ended = ev(
        Kind.AGREEMENT_ENDED, 13, agreement_id="agmt-old", agreement_status="REPLACED"
    )
    records = fold([replaced, ended])
    assert records[(m.AGREEMENT, "agmt-old")]["Status__c"] == "Replaced"


# -- offers --------------------------------------------------------------------


def test_offer_published_then_accepted_in_any_order() -> None:
    published = ev(
        Kind.OFFER_PUBLISHED,
        9,
        offer_id="offer-1",
        offer_name="Private offer",
        customer_account_ids=(BUYER, "222233334444"),
        offer_expiration_date=date(2024, 6, 1),
    )
    accepted = ev(
        Kind.OFFER_ACCEPTED,
        12,
        agreement_id="agmt-1",
        offer_id="offer-1",
        customer_account_id=BUYER,
    )
    for order in ([published, accepted], [accepted, published]):
        records = fold(order)
        offer = records[(m.OFFER, "offer-1")]
        assert offer["Status__c"] == "Accepted"
        assert offer["Name"] == "Private offer"
        assert offer["Customer_AWS_Account_IDs__c"] == f"{BUYER},222233334444"
        assert offer["Expiration_Date__c"] == "2024-06-01"
    # a published offer alone creates no Account for its targets
    assert not [k for k in fold([published]) if k[0] == m.ACCOUNT]
    assert fold([published])[(m.OFFER, "offer-1")]["Status__c"] == "Published"


def test_any_event_naming_offer_and_agreement_creates_accepted_offer() -> None:
    started = ev(Kind.AGREEMENT_STARTED, agreement_id="agmt-1", offer_id="offer-2")
    offer = fold([started])[(m.OFFER, "offer-2")]
    assert offer["Status__c"] == "Accepted"
    assert offer["Name"] == "offer-2"  # no offer name known: the ID as label


# -- subscriptions -------------------------------------------------------------


def sub(kind: Kind, hour: int, **kw: Any) -> Event:
    return ev(
        kind,
        hour,
        channel=Channel.SNS,
        product_code="code1",
        customer_identifier="cust1",
        **kw,
    )


def sub_status(events: list[Event]) -> str:
    return str(fold(events)[(m.SUBSCRIPTION, "code1:cust1")]["Status__c"])


def test_subscription_ranks() -> None:
    assert sub_status([sub(Kind.SUBSCRIPTION_FAILED, 10)]) == "Subscribe Failed"
    succeeded, failed = (
        sub(Kind.SUBSCRIPTION_SUCCEEDED, 11),
        sub(Kind.SUBSCRIPTION_FAILED, 10),
    )
    assert sub_status([succeeded, failed]) == "Subscribed"  # equal rank: newer
    pending = sub(Kind.SUBSCRIPTION_UNSUBSCRIBE_PENDING, 9)
    assert sub_status([succeeded, pending]) == "Unsubscribe Pending"


def test_newer_success_reopens_an_unsubscribed_subscription() -> None:
    unsubscribed = sub(Kind.SUBSCRIPTION_UNSUBSCRIBED, 10)
    newer = sub(Kind.SUBSCRIPTION_SUCCEEDED, 12)
    older = sub(Kind.SUBSCRIPTION_SUCCEEDED, 8)
    stale_pending = sub(Kind.SUBSCRIPTION_UNSUBSCRIBE_PENDING, 9)
    assert sub_status([unsubscribed, older]) == "Unsubscribed"
    for order in (
        [unsubscribed, newer, stale_pending, older],
        [older, stale_pending, newer, unsubscribed],
    ):
        assert sub_status(order) == "Subscribed"
    later_pending = sub(Kind.SUBSCRIPTION_UNSUBSCRIBE_PENDING, 13)
    assert sub_status([newer, unsubscribed, later_pending]) == "Unsubscribe Pending"


def test_subscription_facts_and_account() -> None:
    events = [
        sub(Kind.SUBSCRIPTION_SUCCEEDED, 10, offer_id="offer-9", free_trial=True),
        sub(Kind.ENTITLEMENT_UPDATED, 11, customer_account_id=BUYER),
    ]
    records = fold(events)
    rec = records[(m.SUBSCRIPTION, "code1:cust1")]
    assert rec["Product_Code__c"] == "code1"
    assert rec["Customer_Identifier__c"] == "cust1"
    assert rec["Offer_ID__c"] == "offer-9"
    assert rec["Free_Trial__c"] is True
    assert rec["Customer_AWS_Account_ID__c"] == BUYER
    assert rec["Last_Entitlement_Update__c"] == "2024-05-01T11:00:00Z"
    assert records[(m.ACCOUNT, BUYER)] == {
        "AWS_Account_ID__c": BUYER,
        "Name": f"AWS account {BUYER}",
    }
    # an offer ID on a subscription event does not create an offer record
    assert (m.OFFER, "offer-9") not in records


# -- accounts --------------------------------------------------------------------


def test_account_name_placeholder_then_customer_name() -> None:
    nameless = ev(
        Kind.AGREEMENT_STARTED, 10, agreement_id="a1", customer_account_id=BUYER
    )
    named = ev(
        Kind.AGREEMENT_STARTED,
        9,
        agreement_id="a2",
        customer_account_id=BUYER,
        customer_name="Acme",
    )
    assert fold([nameless])[(m.ACCOUNT, BUYER)]["Name"] == f"AWS account {BUYER}"
    assert fold([nameless, named])[(m.ACCOUNT, BUYER)]["Name"] == "Acme"
    assert fold([named, nameless])[(m.ACCOUNT, BUYER)]["Name"] == "Acme"


def test_account_name_ownership() -> None:
    record = merge.MirrorRecord(m.ACCOUNT, BUYER)
    assert merge.account_name_owned(record, None)  # not in the CRM yet
    assert merge.account_name_owned(record, f"AWS account {BUYER}")
    assert not merge.account_name_owned(record, "Acme Holdings (set by sales)")
    record.written = {"AWS_Account_ID__c": BUYER, "Name": "Acme"}
    assert merge.account_name_owned(record, "Acme")
    assert not merge.account_name_owned(record, "Renamed by a user")


# -- what never reaches the CRM --------------------------------------------------


def test_unrecognized_and_rejected_events_touch_nothing() -> None:
    assert m.touches(Event.unrecognized("newsletter")) == []
    rejected = ev(Kind.AGREEMENT_STARTED, agreement_id="agmt-1", trust=Trust.REJECTED)
    assert m.touches(rejected) == []


def test_repeating_an_event_changes_nothing() -> None:
    event = ev(Kind.OFFER_ACCEPTED, agreement_id="agmt-1", customer_account_id=BUYER)
    assert fold([event]) == fold([event, event, event])


# -- the name mapping -------------------------------------------------------------


def test_mapping_renames_objects_fields_values_and_reference() -> None:
    mapping = m.CrmMapping(
        {
            "objects": {"AWS_Agreement__c": "Deal__c"},
            "fields": {
                "AWS_Agreement__c": {"Status__c": "Stage__c", "Margin__c": ""},
                "Account": {"AWS_Account_ID__c": "AWS_Id__c"},
            },
            "values": {"AWS_Agreement__c": {"Active": "Live"}},
        }
    )
    rec = agreement(
        [
            ev(
                Kind.OFFER_ACCEPTED,
                agreement_id="agmt-1",
                customer_account_id=BUYER,
                margin=Money(Decimal("5"), "USD"),
            )
        ]
    )
    crm = mapping.to_crm(m.AGREEMENT, rec)
    assert mapping.obj(m.AGREEMENT) == "Deal__c"
    assert crm["Stage__c"] == "Live"
    assert "Margin__c" not in crm and "Status__c" not in crm
    assert crm["Account__r"] == {"AWS_Id__c": BUYER}
    back = mapping.from_crm(m.AGREEMENT, {"Stage__c": "Live", "Agreement_ID__c": "x"})
    assert back == {"Status__c": "Active", "Agreement_ID__c": "x"}


def test_mapping_extra_fields_are_opt_in() -> None:
    event = ev(Kind.OFFER_ACCEPTED, agreement_id="agmt-1", customer_identifier="c1")
    plain = m.touches(event)
    extra = m.touches(event, {m.AGREEMENT: {"Customer_Ref__c": "customer_identifier"}})
    assert "Customer_Ref__c" not in plain[0].facts
    assert extra[0].facts["Customer_Ref__c"] == "c1"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"object": {}}, "unknown key 'object'"),
        ({"objects": {"Agreement": "X"}}, "objects.Agreement: unknown object"),
        ({"fields": {"AWS_Offer__c": {"Nope__c": "X"}}}, "Nope__c: unknown field"),
        ({"fields": {"Account": {"AWS_Account_ID__c": ""}}}, "cannot be switched off"),
        ({"objects": {"Account": 3}}, "expected a table of strings"),
    ],
)
def test_mapping_config_errors_name_the_key(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        m.CrmMapping(config)


# -- Agreement API snapshots and licenses (contract section 6) ---------------------


def test_snapshot_merges_facts_without_an_event_row() -> None:
    snap = ev(
        Kind.AGREEMENT_SNAPSHOT,
        13,
        channel=Channel.API,
        agreement_id="agmt-1",
        agreement_status="ROLLED_BACK",
        customer_account_id="111122223333",
        license_arn="arn:aws:license-manager::111122223333:license:l-1",
    )
    records = fold([ev(Kind.OFFER_ACCEPTED, 12, agreement_id="agmt-1"), snap])
    assert [k for k in records if k[0] == m.EVENT] == [
        (m.EVENT, "agreement:agmt-1:created")
    ]
    agreement = records[(m.AGREEMENT, "agmt-1")]
    assert agreement["Status__c"] == "Rolled Back"
    assert agreement["License_ARN__c"].endswith(":license:l-1")
    assert agreement["Last_Event_Kind__c"] == "agreement.snapshot"


@pytest.mark.parametrize("status", ["ARCHIVED", "ROLLED_BACK", "SUPERSEDED"])
def test_api_statuses_rank_three(status: str) -> None:
    later_active = ev(Kind.AGREEMENT_STARTED, 14, agreement_id="agmt-1")
    snap = ev(
        Kind.AGREEMENT_SNAPSHOT, 13, agreement_id="agmt-1", agreement_status=status
    )
    for order in ([snap, later_active], [later_active, snap]):
        got = fold(order)[(m.AGREEMENT, "agmt-1")]["Status__c"]
        assert got == status.replace("_", " ").title()


def test_stale_active_snapshot_never_undoes_cancelled() -> None:
    cancelled = ev(Kind.AGREEMENT_CANCELLED, 12, agreement_id="agmt-1")
    stale = ev(
        Kind.AGREEMENT_SNAPSHOT,
        15,
        agreement_id="agmt-1",
        agreement_status="ACTIVE",
        purchase_amount=Money(Decimal("10.00"), "EUR"),
    )
    record = fold([cancelled, stale])[(m.AGREEMENT, "agmt-1")]
    assert record["Status__c"] == "Cancelled"
    assert (record["Purchase_Amount__c"], record["Currency__c"]) == (10.0, "EUR")


def test_license_status_newer_event_wins() -> None:
    arn = "arn:aws:license-manager::111122223333:license:l-9"
    updated = ev(
        Kind.LICENSE_UPDATED,
        12,
        agreement_id="agmt-1",
        license_arn=arn,
        product_code="4x9k2m7q1z8p3v6b0n5c2w7r1",
    )
    gone = ev(Kind.LICENSE_DEPROVISIONED, 13, agreement_id="agmt-1", license_arn=arn)
    again = ev(Kind.LICENSE_UPDATED, 14, agreement_id="agmt-1", license_arn=arn)
    key = (m.AGREEMENT, "agmt-1")
    assert fold([gone, updated])[key]["License_Status__c"] == "Deprovisioned"
    record = fold([again, gone, updated])[key]
    assert record["License_Status__c"] == "Provisioned"
    assert record["Product_Code__c"] == "4x9k2m7q1z8p3v6b0n5c2w7r1"
    assert record["License_ARN__c"] == arn
    assert "Status__c" not in record  # license events propose no status
