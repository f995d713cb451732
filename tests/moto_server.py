"""Local AWS stand-ins for the SQS/SNS tests.

- `MotoServer`: moto in server mode (`ThreadedMotoServer`) on 127.0.0.1, a free
  port; SNS topics subscribed to SQS queues, raw and non-raw.
- `SigningAuthority`: a locally generated RSA key and self-signed certificate
  that sign SNS envelopes exactly as SNS does (SignatureVersion 1 and 2), and a
  certificate fetcher that serves them without any network.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from mailsync.security.sns_verify import string_to_sign

MARKETPLACE_ACCOUNT = "287250355862"
PRODUCT_CODE = "4x9k2m7q1z8p3v6b0n5c2w7r1"
SUB_TOPIC = (
    f"arn:aws:sns:us-east-1:{MARKETPLACE_ACCOUNT}:"
    f"aws-mp-subscription-notification-{PRODUCT_CODE}"
)
CERT_URL = (
    "https://sns.us-east-1.amazonaws.com/"
    "SimpleNotificationService-0123456789abcdef0123456789abcdef.pem"
)
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """moto's threaded server; `reset()` clears every resource between tests."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(
            ip_address="127.0.0.1", port=free_port(), verbose=False
        )
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def client(self, service: str) -> Any:
        return boto3.client(
            service, endpoint_url=self.url, region_name="us-east-1", **CREDENTIALS
        )

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        self.server.stop()

    def queue(self, name: str | None = None) -> str:
        """A new queue; returns its URL."""
        sqs = self.client("sqs")
        return str(
            sqs.create_queue(QueueName=name or f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        )

    def topic_to_queue(self, queue_url: str, *, raw: bool, name: str = "") -> str:
        """An SNS topic subscribed to `queue_url`; returns the topic ARN."""
        sns, sqs = self.client("sns"), self.client("sqs")
        topic = sns.create_topic(
            Name=name or f"aws-mp-subscription-notification-{PRODUCT_CODE}"
        )["TopicArn"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        if raw:
            sns.set_subscription_attributes(
                SubscriptionArn=sub["SubscriptionArn"],
                AttributeName="RawMessageDelivery",
                AttributeValue="true",
            )
        return str(topic)


_SHARED: list[MotoServer] = []


def shared_server() -> MotoServer:
    """One moto server for the whole test session (started on first use; its
    thread ends with the interpreter). Tests call `reset()` for isolation."""
    if not _SHARED:
        _SHARED.append(MotoServer())
    return _SHARED[0]


class SigningAuthority:
    """A test key and certificate that sign envelopes the way SNS does."""

    def __init__(
        self,
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        common_name: str = "sns.amazonaws.com",
    ) -> None:
        now = datetime.now(UTC)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(days=30))
            .not_valid_after(not_after or now + timedelta(days=365))
            .sign(self.key, hashes.SHA256())
        )
        self.pem = cert.public_bytes(serialization.Encoding.PEM)
        self.fetched: list[str] = []

    def fetch(self, url: str) -> bytes:
        """A certificate fetcher serving this authority's certificate."""
        self.fetched.append(url)
        return self.pem

    def sign(self, envelope: Mapping[str, Any], version: str = "1") -> dict[str, Any]:
        """`envelope` with SignatureVersion, Signature and SigningCertURL set."""
        out = {"SigningCertURL": CERT_URL, **envelope, "SignatureVersion": version}
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(string_to_sign(out), padding.PKCS1v15(), algorithm)
        out["Signature"] = base64.b64encode(signature).decode("ascii")
        return out


def notification(
    message: Mapping[str, Any],
    *,
    topic: str = SUB_TOPIC,
    timestamp: datetime | None = None,
    message_id: str | None = None,
    subject: str | None = None,
) -> dict[str, Any]:
    """An unsigned SNS Notification envelope carrying `message` as JSON text."""
    stamp = (timestamp or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    env: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": json.dumps(message),
        "Timestamp": stamp + "Z",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }
    if subject is not None:
        env["Subject"] = subject
    return env


def subscribe_success(customer: str = "QbT3kZx9LmA", **extra: Any) -> dict[str, Any]:
    return {
        "action": "subscribe-success",
        "customer-identifier": customer,
        "product-code": PRODUCT_CODE,
        "offer-identifier": "offer-b2xk7m4q9d1zs",
        "isFreeTrialTermPresent": "false",
        **extra,
    }
