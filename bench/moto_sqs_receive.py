"""SQS request cost in moto with N messages queued, with moto's code and with infra.moto_sqs_fast.

Run: .venv/bin/python -m bench.moto_sqs_receive [--queued 10000] [--repeat 3]
Prints one JSON line: median milliseconds per ReceiveMessage (10 messages), SendMessageBatch (10)
and DeleteMessageBatch (10), "before" (moto as shipped) and "after" (patched). In-process moto
(mock_aws), so HTTP is not included; the local stack adds about a millisecond per request on top.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING

import boto3
from moto import mock_aws

from bench.timing import median_ms
from infra import moto_sqs_fast

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def _send_batch(sqs: SQSClient, url: str) -> None:
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"unit {i}"} for i in range(10)]
    )


def _receive_and_delete(sqs: SQSClient, url: str, repeat: int) -> tuple[float, float]:
    handles: list[list[str]] = []

    def receive() -> None:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        handles.append([m["ReceiptHandle"] for m in messages])

    def delete() -> None:
        batch = handles.pop()
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(batch)]
        )

    return median_ms(receive, repeat), median_ms(delete, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    result: dict[str, float | int] = {"queued": args.queued}
    with mock_aws():
        sqs: SQSClient = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="bench", Attributes={"VisibilityTimeout": "600"})[
            "QueueUrl"
        ]
        # Queue through the patch: with moto's code, sending n messages costs O(n²) (minutes).
        moto_sqs_fast.install()
        for _ in range(args.queued // 10):
            _send_batch(sqs, url)
        for label, switch in (
            ("before", moto_sqs_fast.uninstall),
            ("after", moto_sqs_fast.install),
        ):
            switch()
            receive_ms, delete_ms = _receive_and_delete(sqs, url, args.repeat)
            result[f"receive_ms_{label}"] = receive_ms
            result[f"send_batch_ms_{label}"] = median_ms(lambda: _send_batch(sqs, url), args.repeat)
            result[f"delete_batch_ms_{label}"] = delete_ms
        moto_sqs_fast.uninstall()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
