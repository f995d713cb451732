"""The event model serializes exactly as contract section 2 says."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from mailsync.event import Channel, Event, Kind, Money, all_json_keys


def test_every_key_present_in_contract_order() -> None:
    data = Event(kind=Kind.UNRECOGNIZED, reason="x").to_json()
    assert list(data) == list(all_json_keys())
    assert data["customer_account_ids"] == []
    assert data["trust"] == "unverified"
    assert data["free_trial"] is None
    assert "dedupe_ids" not in data


def test_values_serialize_to_contract_shapes() -> None:
    event = Event(
        kind=Kind.OFFER_ACCEPTED,
        channel=Channel.EMAIL,
        occurred_at=datetime(
            2026, 3, 3, 15, 7, 11, 900000, tzinfo=timezone(timedelta(hours=1))
        ),
        customer_account_id="012345678901",
        customer_account_ids=("012345678901",),
        start_date=date(2026, 3, 3),
        purchase_amount=Money(Decimal("1200000"), "JPY"),
    )
    data = event.to_json()
    assert data["occurred_at"] == "2026-03-03T14:07:11Z"
    assert data["start_date"] == "2026-03-03"
    assert data["purchase_amount"] == {"amount": "1200000.00", "currency": "JPY"}
    assert data["customer_account_id"] == "012345678901"


def test_record_round_trip() -> None:
    event = Event(
        kind=Kind.AGREEMENT_STARTED,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        margin=Money(Decimal("10.5"), "EUR"),
        dedupe_ids=("abc",),
        resource_arn="arn:aws:x",
    )
    back = Event.from_record(event.to_record())
    assert back == event
    assert back.dedupe_ids == ("abc",)
    assert back.resource_arn == "arn:aws:x"


@pytest.mark.parametrize("bad", ["12345678901", "1234567890123", "12345678901a"])
def test_account_ids_must_be_twelve_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="12 digits"):
        Event(kind=Kind.OFFER_ACCEPTED, customer_account_id=bad)
