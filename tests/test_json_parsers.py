"""SNS / EventBridge parsing: the parts the golden files cannot show.

(Internal fields such as `dedupe_ids` and `resource_arn`, the exported envelope
helpers, SQS wrappers and the handling of hostile or odd values.)
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsync.errors import InputError, ParseError
from mailsync.event import Channel, Kind, Role
from mailsync.parsers.eventbridge import parse_eventbridge, split_detail_type
from mailsync.parsers.files import parse_bytes, parse_path
from mailsync.parsers.json_input import parse_json
from mailsync.parsers.sns import normalize_envelope, unwrap_envelope

FIXTURES = Path(__file__).parent / "fixtures"


def _load(rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / rel).read_text(encoding="utf-8"))
    return data


# -- SNS ---------------------------------------------------------------------


def test_envelope_dedupe_id_is_the_message_id() -> None:
    raw = (FIXTURES / "sns/subscribe_fail.json").read_bytes()
    event = parse_json(raw)
    assert event.kind is Kind.SUBSCRIPTION_FAILED
    assert event.dedupe_ids == ("c90f056d-3857-4e24-a26c-22defe1b0b66",)


def test_bare_message_uses_the_queue_sent_time() -> None:
    raw = (FIXTURES / "sns/raw_entitlement_updated.json").read_bytes()
    sent = datetime(2026, 5, 1, 12, 0, 0, 987000, tzinfo=UTC)
    event = parse_json(raw, sqs_sent_at=sent)
    assert event.occurred_at == datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert event.source_id is None
    assert event.dedupe_ids == ()
    assert parse_json(raw).occurred_at is None
    naive = parse_json(raw, sqs_sent_at=datetime(2026, 5, 2, 7, 30))
    assert naive.occurred_at == datetime(2026, 5, 2, 7, 30, tzinfo=UTC)


def test_envelope_timestamp_wins_over_the_queue_sent_time() -> None:
    raw = (FIXTURES / "sns/unsubscribe_success.json").read_bytes()
    event = parse_json(raw, sqs_sent_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert event.occurred_at == datetime(2026, 4, 1, 9, 0, 0, tzinfo=UTC)


def test_lambda_casing_is_normalized_for_the_signature_verifier() -> None:
    record = _load("sns/lambda_record_casing.json")
    envelope = normalize_envelope(record)
    assert envelope is not None
    assert envelope["SigningCertURL"].endswith(".pem")
    assert envelope["UnsubscribeURL"].startswith("https://sns.us-east-1.")
    assert "SigningCertUrl" not in envelope
    # The signed Message stays the exact string that was delivered.
    assert envelope["Message"] == record["Sns"]["Message"]
    assert isinstance(envelope["Message"], str)


def test_unwrap_envelope_returns_the_decoded_message() -> None:
    envelope, message = unwrap_envelope(_load("sns/subscribe_success_envelope.json"))
    assert envelope is not None and envelope["Type"] == "Notification"
    assert message["action"] == "subscribe-success"
    assert message["isFreeTrialTermPresent"] == "false"
    bare, message = unwrap_envelope(_load("sns/raw_unsubscribe_pending.json"))
    assert bare is None and message["action"] == "unsubscribe-pending"


def test_unwrap_envelope_raises_for_a_confirmation() -> None:
    with pytest.raises(ParseError, match="not JSON"):
        unwrap_envelope(_load("sns/subscription_confirmation.json"))
    with pytest.raises(ParseError):
        unwrap_envelope({"hello": "world"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("FALSE", False), (True, True), (False, False), ("yes", None)],
)
def test_free_trial_flag_forms(value: object, expected: bool | None) -> None:
    message = {"action": "subscribe-success", "customer-identifier": "Ab1"}
    message["isFreeTrialTermPresent"] = value  # type: ignore[assignment]
    assert parse_json(json.dumps(message)).free_trial is expected


def test_confirmation_is_never_a_subscription() -> None:
    event = parse_json((FIXTURES / "sns/subscription_confirmation.json").read_bytes())
    assert event.kind is Kind.UNRECOGNIZED
    assert event.reason is not None and "never auto-confirms" in event.reason


def test_unsubscribe_confirmation_is_unrecognized() -> None:
    data = _load("sns/subscription_confirmation.json")
    data["Type"] = "UnsubscribeConfirmation"
    event = parse_json(json.dumps(data))
    assert event.kind is Kind.UNRECOGNIZED
    assert event.reason is not None
    assert event.reason.startswith("SNS UnsubscribeConfirmation")


# -- SQS wrappers ------------------------------------------------------------


def test_lambda_sqs_batch_of_one_record() -> None:
    body = (FIXTURES / "sns/raw_subscribe_success.json").read_text(encoding="utf-8")
    batch = {
        "Records": [
            {
                "messageId": "m-1",
                "body": body,
                "attributes": {"SentTimestamp": "1767225600000"},
                "eventSource": "aws:sqs",
            }
        ]
    }
    event = parse_json(json.dumps(batch))
    assert event.kind is Kind.SUBSCRIPTION_SUCCEEDED
    assert event.occurred_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_batch_of_several_records_is_refused() -> None:
    event = parse_json(json.dumps({"Records": [{}, {}]}))
    assert event.kind is Kind.UNRECOGNIZED
    assert event.reason == "a batch of 2 records; save one record per file"


def test_sqs_body_holding_an_eventbridge_event() -> None:
    body = (FIXTURES / "eventbridge/license_updated.json").read_text(encoding="utf-8")
    event = parse_json(json.dumps({"MessageId": "x", "Body": body}))
    assert event.kind is Kind.LICENSE_UPDATED
    assert event.channel is Channel.EVENTBRIDGE


def test_self_nested_wrappers_stop() -> None:
    obj: dict[str, Any] = {"Body": "{}"}
    for _ in range(10):
        obj = {"Body": json.dumps(obj)}
    event = parse_json(json.dumps(obj))
    assert event.kind is Kind.UNRECOGNIZED
    assert event.reason == "SQS wrappers nested too deeply"


@pytest.mark.parametrize(
    ("data", "reason_start"),
    [
        (b"\xff\xfe{}", "JSON input is not UTF-8"),
        (b"[1, 2]", "JSON input is a list"),
        (b"", "not valid JSON"),
        (b"[" * 100000, "JSON nested deeper than 64 levels"),
        (b'{"a": 1}', "JSON object is not an SNS message"),
    ],
)
def test_bad_json_is_unrecognized(data: bytes, reason_start: str) -> None:
    event = parse_json(data)
    assert event.kind is Kind.UNRECOGNIZED
    assert event.reason is not None and event.reason.startswith(reason_start)


# -- EventBridge -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Purchase Agreement Created - Proposer",
            ("purchase agreement created", "proposer"),
        ),
        (
            "Purchase Agreement Amended Acceptor",
            ("purchase agreement amended", "acceptor"),
        ),
        ("License Updated -Manufacturer", ("license updated", "manufacturer")),
        ("  Offer   Released ", ("offer released", None)),
        ("Proposer", ("proposer", None)),
    ],
)
def test_split_detail_type(text: str, expected: tuple[str, str | None]) -> None:
    assert split_detail_type(text) == expected


def test_eventbridge_dedupe_ids_namespace_the_request_id() -> None:
    event = parse_path(FIXTURES / "eventbridge/created_proposer_cppo.json")
    data = _load("eventbridge/created_proposer_cppo.json")
    assert event.dedupe_ids == (data["id"], "requestId:" + data["detail"]["requestId"])


def test_disbursement_paused_keeps_the_bank_account_arn() -> None:
    event = parse_path(FIXTURES / "eventbridge/disbursement_paused.json")
    data = _load("eventbridge/disbursement_paused.json")
    assert event.kind is Kind.DISBURSEMENT_PAUSED
    assert event.resource_arn == data["resources"][0]
    assert event.resource_arn is not None
    assert event.resource_arn.startswith("arn:aws:payments:")
    assert event.to_record()["resource_arn"] == event.resource_arn


def test_agreement_id_never_comes_from_resources() -> None:
    data = _load("eventbridge/ended_expired.json")
    del data["detail"]["agreement"]["id"]
    event = parse_eventbridge(data)
    assert event.kind is Kind.AGREEMENT_ENDED
    assert event.agreement_id is None


def test_malformed_values_become_null() -> None:
    data = _load("eventbridge/created_proposer_direct.json")
    agreement = data["detail"]["agreement"]
    agreement.update(status="active", startTime="yesterday", endTime=12)
    data["detail"]["acceptor"]["accountId"] = 123456789012  # a number, not text
    data["detail"]["proposer"]["accountId"] = "12345678901x"
    data["time"] = "not a time"
    event = parse_eventbridge(data)
    assert event.agreement_status == "ACTIVE"  # case is normalized
    assert (event.start_date, event.end_date) == (None, None)
    assert event.acceptance_date == date(2026, 4, 15)
    assert event.customer_account_id is None and event.isv_account_id is None
    assert event.isv_name == "Acme Software Corp"
    assert event.occurred_at is None


def test_end_in_year_9999_with_an_offset_is_no_end() -> None:
    data = _load("eventbridge/created_proposer_direct.json")
    data["detail"]["agreement"]["endTime"] = "9999-12-31T23:59:59-05:00"
    assert parse_eventbridge(data).end_date is None


def test_cancellation_style_acceptor_id() -> None:
    data = _load("eventbridge/negative_cancellation_request_approved.json")
    data["detail-type"] = "Purchase Agreement Ended - Proposer"
    event = parse_eventbridge(data)
    detail = data["detail"]["agreement"]
    assert event.customer_account_id == detail["acceptorId"]
    assert event.product_id == detail["productId"]
    assert event.offer_id == detail["offerId"]
    assert event.recipient_role is Role.ISV


def test_missing_id_is_structurally_broken() -> None:
    data = _load("eventbridge/license_updated.json")
    del data["id"]
    event = parse_eventbridge(data)
    assert event.kind is Kind.UNRECOGNIZED
    assert event.reason == "EventBridge 'License Updated - Manufacturer' without an id"


def test_offer_released_seen_by_the_isv_of_a_cppo_offer() -> None:
    data = _load("eventbridge/offer_released_cppo.json")
    data["account"] = data["detail"]["manufacturer"]["accountId"]
    event = parse_eventbridge(data)
    assert event.recipient_role is Role.ISV
    assert event.channel_partner_name == "Globex Reseller LLC"


# -- files -------------------------------------------------------------------


def test_dispatch_by_content_without_an_extension() -> None:
    raw = (FIXTURES / "sns/raw_subscribe_success.json").read_bytes()
    assert parse_bytes(b"\xef\xbb\xbf \n" + raw, name="saved").kind is (
        Kind.SUBSCRIPTION_SUCCEEDED
    )
    assert parse_bytes(b"From: a@example.com\r\n\r\nhi", name="saved").channel is (
        Channel.EMAIL
    )


def test_unreadable_paths_raise_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        parse_path(tmp_path / "missing.json")
    with pytest.raises(InputError, match="is a directory"):
        parse_path(tmp_path)


def test_eventbridge_event_carried_by_an_sns_notification() -> None:
    envelope = _load("sns/subscribe_fail.json")
    event_text = (FIXTURES / "eventbridge/ended_expired.json").read_text("utf-8")
    envelope["Message"] = event_text
    event = parse_json(json.dumps(envelope))
    assert event.kind is Kind.AGREEMENT_ENDED
    assert event.channel is Channel.EVENTBRIDGE
    assert event.source_id == json.loads(event_text)["id"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)
_KEYS = st.sampled_from(
    [
        "Type",
        "MessageId",
        "Message",
        "Timestamp",
        "Sns",
        "Body",
        "body",
        "Records",
        "Attributes",
        "action",
        "customer-identifier",
        "product-code",
        "isFreeTrialTermPresent",
        "detail-type",
        "source",
        "id",
        "time",
        "detail",
        "resources",
        "agreement",
        "acceptor",
        "proposer",
        "offer",
        "product",
        "manufacturer",
        "sellerOfRecord",
        "targetedBuyerAccountIds",
        "resaleAuthorization",
        "status",
        "endTime",
        "accountId",
        "requestId",
    ]
)
_SHAPED = st.recursive(
    _JSON,
    lambda inner: (
        st.dictionaries(_KEYS, inner, max_size=8)
        | st.dictionaries(_KEYS, inner.map(json.dumps), max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(_SHAPED)
def test_parse_json_never_raises(value: object) -> None:
    event = parse_json(json.dumps(value))
    assert event.channel in (Channel.SNS, Channel.EVENTBRIDGE)
    assert json.loads(json.dumps(event.to_json()))["kind"] == event.kind.value


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted((FIXTURES / "eventbridge").glob("[!n]*[!d].json"))),
    st.data(),
)
def test_mutated_fixtures_never_raise(path: Path, data: st.DataObject) -> None:
    event_obj = _load(str(path.relative_to(FIXTURES)))
    detail = event_obj.get("detail")
    if isinstance(detail, dict) and detail:
        key = data.draw(st.sampled_from(sorted(detail)))
        detail[key] = data.draw(_JSON)
    event_obj["time"] = data.draw(_JSON | st.just("9999-12-31T23:59:59-12:00"))
    event = parse_eventbridge(event_obj)
    assert event.channel is Channel.EVENTBRIDGE
