"""Hostile queue bodies and error bodies: time per KB of the SQS admission
(`sqs_policy.admit_json`, depth bound included) and of `redact`.

Each shape is about 1 MB. The baseline, measured in the same run, is
`json.loads` of a flat valid JSON document of the same size (one long
string): linear work on the same number of bytes. A ratio that stays flat as
`--kb` grows shows the cost is linear.

Usage: .venv/bin/python bench/hostile_json.py [--kb 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from mailsync.aws.sqs_policy import admit_json
from mailsync.config import SqsSettings
from mailsync.errors import RejectedError
from mailsync.redact import redact
from mailsync.security.sns_verify import SnsVerifier


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def queue_shapes(size: int) -> dict[str, str]:
    return {
        "deep brackets": "[" * size,
        "deep objects": '{"a":' * (size // 5),
        "unclosed escaped string": '"' + '\\"' * (size // 2),
        "wrapper around deep body": json.dumps({"Body": "[" * size}),
        "SNS Message deep": json.dumps(
            {"Type": "Notification", "MessageId": "m", "Message": "[" * size}
        ),
    }


def error_shapes(size: int) -> dict[str, str]:
    return {
        "Bearer run": "Bearer " * (size // 7),
        "unclosed sessionId": '"sessionId": "' * (size // 14),
        "Credential= run": "Credential=" * (size // 11),
        "session-ID lookalike": "00D000000000001" * (size // 15),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.kb * 1024
    flat = json.dumps("x" * size)
    base = best(lambda: json.loads(flat), args.repeat)
    kb = len(flat) / 1024
    print(f"baseline json.loads of {kb:.0f} KB: {base / kb * 1e3:.4f} ms/KB")
    settings = SqsSettings(queue_url="", verify_signatures=False)
    verifier = SnsVerifier(fetch=None)

    def admit(body: str) -> None:
        try:
            admit_json(body, settings, verifier)
        except RejectedError:
            pass

    for name, body in queue_shapes(size).items():
        took = best(lambda body=body: admit(body), args.repeat)  # type: ignore[misc]
        per = took / (len(body) / 1024)
        print(
            f"admit_json {name:28s} {len(body) / 1024:7.0f} KB"
            f" {per * 1e3:8.4f} ms/KB  x{per / (base / kb):6.1f} baseline"
        )
    for name, text in error_shapes(size).items():
        took = best(lambda text=text: redact(text), args.repeat)  # type: ignore[misc]
        per = took / (len(text) / 1024)
        print(
            f"redact     {name:28s} {len(text) / 1024:7.0f} KB"
            f" {per * 1e3:8.4f} ms/KB  x{per / (base / kb):6.1f} baseline"
        )


if __name__ == "__main__":
    main()
