"""The SQS API calls of the SQS source, and the queue's name and counts.

`make_client` builds the boto3 client (credentials from the standard AWS
chain). `receive`, `delete` and `extend_visibility` are the three calls one
pass makes; `queue_counts` / `status_lines` answer `mailsync status` and
`mailsync check`. A call that cannot reach SQS raises `TransientError` with a
one-line message, except `delete` and `extend_visibility`: their failure only
means a redelivery, which the ledger and the outbox absorb, so they log it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from mailsync.config import SqsSettings
from mailsync.errors import TransientError
from mailsync.log import kv

# The source's records keep one logger name (`logger` in JSON logs), whichever
# of its modules writes them.
log = logging.getLogger("mailsync.aws.sqs")

_COUNT_ATTRS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
#: The most entries one SQS batch call takes (ReceiveMessage, DeleteMessageBatch,
#: ChangeMessageVisibilityBatch).
BATCH = 10


def make_client(settings: SqsSettings) -> Any:
    """A boto3 SQS client; credentials from the standard AWS chain."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=10,
        # A long poll holds the connection for up to 20 s before answering.
        read_timeout=settings.wait_time_seconds + 20,
        retries={"mode": "standard", "max_attempts": 3},
    )
    return boto3.session.Session().client(
        "sqs",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url or None,
        config=config,
    )


def _aws_error(action: str, err: Exception) -> TransientError:
    return TransientError(f"SQS {action} failed: {' '.join(str(err).split())}")


def source_name(settings: SqsSettings) -> str:
    """`sqs:<queue name>`, the name used in the ledger and by `status`."""
    return f"sqs:{settings.queue_url.rstrip('/').rsplit('/', 1)[-1]}"


def queue_counts(settings: SqsSettings, client: Any = None) -> dict[str, int]:
    """`{"waiting": n, "in_flight": m}` from GetQueueAttributes (for `status`);
    raise `TransientError` when the queue cannot be reached."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = client or make_client(settings)
    try:
        attrs = client.get_queue_attributes(
            QueueUrl=settings.queue_url, AttributeNames=_COUNT_ATTRS
        )["Attributes"]
    except (BotoCoreError, ClientError) as err:
        raise _aws_error("GetQueueAttributes", err) from None
    return {
        "waiting": int(attrs.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
    }


def status_lines(settings: SqsSettings, client: Any = None) -> list[str]:
    """Lines for `mailsync status`: the queue's approximate counts; never raises."""
    try:
        counts = queue_counts(settings, client)
    except TransientError as err:
        return [f"  queue: unreachable ({err})"]
    return [
        f"  queue waiting: {counts['waiting']}",
        f"  queue in flight: {counts['in_flight']}",
    ]


def receive(client: Any, settings: SqsSettings, wait: int) -> list[dict[str, Any]]:
    """One ReceiveMessage of up to 10 messages, waiting up to `wait` seconds,
    with the receive count and the sent time; raise `TransientError`."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.receive_message(
            QueueUrl=settings.queue_url,
            MaxNumberOfMessages=BATCH,
            WaitTimeSeconds=wait,
            VisibilityTimeout=settings.visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
    except (BotoCoreError, ClientError) as err:
        raise _aws_error("ReceiveMessage", err) from None
    return list(response.get("Messages", []))


def delete(
    client: Any, queue_url: str, handles: Sequence[tuple[str, str]], source: str
) -> None:
    """Delete `(message id, receipt handle)` pairs; a failed delete is logged
    under `source` (it only means a redelivery)."""
    from botocore.exceptions import BotoCoreError, ClientError

    for start in range(0, len(handles), BATCH):
        chunk = handles[start : start + BATCH]
        try:
            response = client.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h} for i, (_, h) in enumerate(chunk)
                ],
            )
        except (BotoCoreError, ClientError) as err:
            log.warning("SQS delete failed", extra=kv(source=source, error=str(err)))
            continue
        for failed in response.get("Failed", []):
            log.warning(
                "SQS delete failed",
                extra=kv(source=source, error=failed.get("Message")),
            )


def extend_visibility(
    client: Any, settings: SqsSettings, handles: Sequence[str], source: str
) -> None:
    """Reset the visibility timeout of up to 10 receipt handles to
    `visibility_timeout` (SQS ChangeMessageVisibility: the new timeout counts
    from the call); a failure is logged under `source`."""
    from botocore.exceptions import BotoCoreError, ClientError

    entries = [
        {
            "Id": str(i),
            "ReceiptHandle": handle,
            "VisibilityTimeout": settings.visibility_timeout,
        }
        for i, handle in enumerate(handles[:BATCH])
    ]
    if not entries:
        return
    try:
        client.change_message_visibility_batch(
            QueueUrl=settings.queue_url, Entries=entries
        )
    except (BotoCoreError, ClientError) as err:
        log.warning(
            "SQS visibility extension failed",
            extra=kv(source=source, error=str(err)),
        )
