"""The local stand-in for email: what SNS delivers to the outbox queue is printed and kept.

The queue is subscribed to the events topic with the same filter policy the email subscriptions
use on AWS, so what shows up here is what would have been mailed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger("chute.outbox")
_PREVIEW_LINES = 6


def parse(message: MessageTypeDef, received_at: float) -> dict[str, Any]:
    """One outbox entry from an SQS message carrying an SNS notification envelope."""
    body = message["Body"]
    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = None
    if isinstance(envelope, dict) and envelope.get("Type") == "Notification":
        attributes = {
            name: value.get("Value")
            for name, value in (envelope.get("MessageAttributes") or {}).items()
        }
        return {
            "received_at": received_at,
            "subject": envelope.get("Subject"),
            "message": envelope.get("Message", ""),
            "attributes": attributes,
        }
    # Raw delivery: the body is the message, attributes are SQS message attributes.
    raw = {n: v.get("StringValue") for n, v in message.get("MessageAttributes", {}).items()}
    return {"received_at": received_at, "subject": None, "message": body, "attributes": raw}


def render(entry: dict[str, Any]) -> str:
    title = entry["subject"] or entry["attributes"].get("event") or "(no subject)"
    lines = str(entry["message"]).splitlines() or [""]
    shown = [f"  {line}" for line in lines[:_PREVIEW_LINES]]
    if len(lines) > _PREVIEW_LINES:
        shown.append(f"  … ({len(lines) - _PREVIEW_LINES} more lines)")
    return "\n".join([f"── email outbox ── {title}", *shown])


class OutboxPrinter:
    def __init__(self, sqs: SQSClient, queue_url: str, path: Path, wait_time_s: int = 1) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._path = path
        self._wait_time_s = wait_time_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:
                log.exception("reading the email outbox failed")
                self._stop.wait(1.0)

    def poll(self) -> int:
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self._wait_time_s,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        now = time.time()
        with self._path.open("a", encoding="utf-8") as out:
            for message in messages:
                entry = parse(message, now)
                print(render(entry), flush=True)
                out.write(json.dumps(entry) + "\n")
        self._sqs.delete_message_batch(
            QueueUrl=self._queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
        return len(messages)
