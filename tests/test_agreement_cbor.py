"""The Agreement API over Smithy RPC v2 CBOR: the protocol a botocore that
prefers CBOR picks for marketplace-agreement. Unmodified botocore loads the
shipped model with only that protocol listed (from a data path of the test's
own), and the source gives the same snapshots as over JSON."""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import boto3
import botocore
import pytest
from agreement_emulator import Emulator
from botocore.exceptions import ClientError
from tenacity import wait_none

from mailsync.aws.agreement_api import AgreementApi, ApiCaller
from mailsync.aws.agreements_source import AgreementsSource
from mailsync.config import AgreementsSettings
from mailsync.crm.outbox import Outbox
from mailsync.statedb import open_db

MODEL = "marketplace-agreement/2020-03-01/service-2.json"


def client(emulator: Emulator, data: Path | None) -> Any:
    session = botocore.session.get_session()
    if data is not None:
        session.get_component("data_loader").search_paths.insert(0, str(data))
    factory: Any = boto3.session.Session(botocore_session=session).client
    return factory(
        "marketplace-agreement",
        region_name="us-east-1",
        endpoint_url=emulator.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
def cbor_data(tmp_path: Path) -> Path:
    shipped = Path(botocore.__file__).parent / "data" / (MODEL + ".gz")
    model = json.loads(gzip.decompress(shipped.read_bytes()))
    model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
    model["metadata"]["protocol"] = "smithy-rpc-v2-cbor"
    target = tmp_path / "data" / MODEL
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(model))
    return tmp_path / "data"


def snapshots(emulator: Emulator, api_client: Any, db: Path) -> list[dict[str, Any]]:
    conn: sqlite3.Connection = open_db(db)
    try:
        api = AgreementApi(client=api_client, caller=ApiCaller(wait=wait_none()))
        source = AgreementsSource(AgreementsSettings(), conn, api=api)
        result = source.run_pass(Outbox(conn), threading.Event())
        assert result.failed == 0, result.errors
        return [e.to_json() for _, e in Outbox(conn).pending()]
    finally:
        conn.close()


def test_cbor_and_json_give_the_same_snapshots(
    agreement_api: Emulator, cbor_data: Path, tmp_path: Path
) -> None:
    schedule = {
        "paymentScheduleTerm": {
            "currencyCode": "EUR",
            "schedule": [{"chargeDate": 1767312000, "chargeAmount": "500.00"}],
        }
    }
    agreement_api.put("agmt-cbor00000000000000000001", updated="2026-02-01T10:00:00Z")
    agreement_api.put(
        "agmt-cbor00000000000000000002",
        updated="2026-02-02T10:00:00Z",
        amount=None,
        currency=None,
        end=None,
        terms=[schedule],
        license_arn="arn:aws:license-manager::294406891311:license:l-0a1b2c3d",
    )
    cbor = client(agreement_api, cbor_data)
    assert cbor.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"
    over_cbor = snapshots(agreement_api, cbor, tmp_path / "cbor.sqlite3")
    paths = {op for op, _ in agreement_api.log}
    assert paths == {"SearchAgreements", "DescribeAgreement", "GetAgreementTerms"}
    assert set(agreement_api.protocols) == {"rpc-v2-cbor"}
    agreement_api.reset_calls()
    plain = client(agreement_api, None)
    assert plain.meta.service_model.resolved_protocol == "json"
    over_json = snapshots(agreement_api, plain, tmp_path / "json.sqlite3")
    assert agreement_api.protocols["json"] == len(agreement_api.log)
    assert over_cbor == over_json
    assert over_cbor[1]["purchase_amount"] == {"amount": "500.00", "currency": "EUR"}
    assert over_cbor[1]["license_arn"].endswith("l-0a1b2c3d")


def test_cbor_errors_parse_as_aws_errors(
    agreement_api: Emulator, cbor_data: Path
) -> None:
    cbor = client(agreement_api, cbor_data)
    agreement_api.faults.throttle["DescribeAgreement"] = 1
    with pytest.raises(ClientError) as throttled:
        cbor.describe_agreement(agreementId="agmt-cbor00000000000000000009")
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    with pytest.raises(ClientError) as missing:
        cbor.describe_agreement(agreementId="agmt-cbor00000000000000000009")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
