"""The dispatcher against an in-memory SQS: event shape, settlement, preference, resilience."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import pytest

from infra.dispatcher import Dispatcher, Route
from infra.testing import wait_for

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

WORK = "http://127.0.0.1:4566/123456789012/chute-work"
HIGH = "http://127.0.0.1:4566/123456789012/chute-work-high"


class FakeSQS:
    """Just the SQS calls the dispatcher makes. Received messages leave the queue (in flight)."""

    def __init__(self) -> None:
        self.queues: dict[str, list[dict[str, Any]]] = {WORK: [], HIGH: []}
        self.receives: list[dict[str, Any]] = []
        self.deleted: list[str] = []  # receipt handles
        self.delete_calls = 0
        self._changed = threading.Condition()
        self._n = 0

    def put(self, url: str, body: str, attributes: dict[str, Any] | None = None) -> str:
        with self._changed:
            self._n += 1
            message_id = f"m-{self._n}"
            message: dict[str, Any] = {
                "MessageId": message_id,
                "ReceiptHandle": f"rh-{self._n}",
                "Body": body,
                "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
            }
            if attributes:
                message["MessageAttributes"] = attributes
                message["MD5OfMessageAttributes"] = "0" * 32
            self.queues[url].append(message)
            self._changed.notify_all()
            return message_id

    def receive_message(self, **request: Any) -> dict[str, Any]:
        self.receives.append(request)
        queue = self.queues[request["QueueUrl"]]
        with self._changed:
            # A scaled-down long poll: wake up when a message arrives.
            self._changed.wait_for(lambda: queue, timeout=request["WaitTimeSeconds"] * 0.05)
            batch = queue[: request["MaxNumberOfMessages"]]
            del queue[: len(batch)]
        return {"Messages": batch} if batch else {}

    def delete_message_batch(self, **request: Any) -> dict[str, Any]:
        self.delete_calls += 1
        entries = request["Entries"]
        self.deleted.extend(entry["ReceiptHandle"] for entry in entries)
        return {"Successful": [{"Id": entry["Id"]} for entry in entries], "Failed": []}


class Recorder:
    """A handler that records its calls and answers with what `answer` says."""

    def __init__(self, answer: Callable[[dict[str, Any]], Any] = lambda event: None) -> None:
        self.calls: list[tuple[dict[str, Any], Any]] = []
        self._answer = answer

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.calls.append((event, context))
        return self._answer(event)


def failing(bodies: set[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def answer(event: dict[str, Any]) -> dict[str, Any]:
        failed = [r["messageId"] for r in event["Records"] if r["body"] in bodies]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}

    return answer


def dispatcher(sqs: FakeSQS, handler: Any, **kwargs: Any) -> tuple[Dispatcher, Route]:
    route = Route("worker", handler, (HIGH, WORK), concurrency=2, timeout_s=300)
    return Dispatcher(cast("SQSClient", sqs), [route], region="us-east-1", **kwargs), route


def test_handler_gets_lambda_shaped_sqs_event_and_context() -> None:
    sqs, handler = FakeSQS(), Recorder()
    attributes = {
        "event": {"DataType": "String", "StringValue": "unit.ready"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    }
    message_id = sqs.put(WORK, '{"unit": 1}', attributes)
    d, route = dispatcher(sqs, handler)

    assert d.poll(route) == 1

    (event, context), *_ = handler.calls
    assert event == {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": "rh-1",
                "body": '{"unit": 1}',
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
                "messageAttributes": {
                    "event": {
                        "stringValue": "unit.ready",
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": "String",
                    },
                    "blob": {
                        "binaryValue": base64.b64encode(b"\x00\x01").decode(),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": "Binary",
                    },
                },
                "md5OfBody": hashlib.md5(b'{"unit": 1}').hexdigest(),
                "md5OfMessageAttributes": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:chute-work",
                "awsRegion": "us-east-1",
            }
        ]
    }
    assert context.function_name == "chute-dev-worker"
    assert context.invoked_function_arn == (
        "arn:aws:lambda:us-east-1:123456789012:function:chute-dev-worker"
    )
    assert context.memory_limit_in_mb == 1024
    assert context.aws_request_id
    assert 0 < context.get_remaining_time_in_millis() <= 300_000


def test_receives_in_batches_of_ten_with_all_attributes() -> None:
    sqs, handler = FakeSQS(), Recorder()
    for n in range(25):
        sqs.put(WORK, f"unit {n}")
    d, route = dispatcher(sqs, handler)

    assert [d.poll(route) for _ in range(4)] == [10, 10, 5, 0]

    assert [len(event["Records"]) for event, _ in handler.calls] == [10, 10, 5]
    assert all(r["MaxNumberOfMessages"] == 10 for r in sqs.receives)
    assert all(r["MessageSystemAttributeNames"] == ["All"] for r in sqs.receives)
    assert all(r["MessageAttributeNames"] == ["All"] for r in sqs.receives)
    # One DeleteMessageBatch per batch, not one request per message.
    assert sqs.delete_calls == 3
    assert len(sqs.deleted) == 25


def test_partial_failure_deletes_only_the_messages_not_reported() -> None:
    sqs = FakeSQS()
    for body in ("ok-1", "bad", "ok-2"):
        sqs.put(WORK, body)
    d, route = dispatcher(sqs, Recorder(failing({"bad"})))

    d.poll(route)

    assert sqs.deleted == ["rh-1", "rh-3"]


def test_handler_exception_leaves_the_whole_batch() -> None:
    sqs = FakeSQS()
    for body in ("a", "b"):
        sqs.put(WORK, body)

    def explode(event: dict[str, Any]) -> None:
        raise RuntimeError("worker crashed")

    d, route = dispatcher(sqs, Recorder(explode))

    assert d.poll(route) == 2
    assert sqs.deleted == []


@pytest.mark.parametrize(
    "answer",
    [
        {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{}]},
    ],
)
def test_a_failure_report_naming_no_message_of_the_batch_fails_the_whole_batch(
    answer: dict[str, Any],
) -> None:
    sqs = FakeSQS()
    sqs.put(WORK, "a")
    d, route = dispatcher(sqs, Recorder(lambda event: answer))

    d.poll(route)

    assert sqs.deleted == []


@pytest.mark.parametrize("answer", [None, {}, {"batchItemFailures": []}, "done"])
def test_an_answer_without_failures_deletes_the_batch(answer: Any) -> None:
    sqs = FakeSQS()
    sqs.put(WORK, "a")
    d, route = dispatcher(sqs, Recorder(lambda event: answer))

    d.poll(route)

    assert sqs.deleted == ["rh-1"]


def test_high_priority_queue_is_drained_first_and_only_the_last_queue_is_long_polled() -> None:
    sqs, handler = FakeSQS(), Recorder()
    sqs.put(WORK, "normal")
    sqs.put(HIGH, "urgent")
    d, route = dispatcher(sqs, handler)

    d.poll(route)
    d.poll(route)

    assert [event["Records"][0]["body"] for event, _ in handler.calls] == ["urgent", "normal"]
    assert [(r["QueueUrl"], r["WaitTimeSeconds"]) for r in sqs.receives] == [
        (HIGH, 0),
        (HIGH, 0),
        (WORK, 1),
    ]


def test_running_dispatcher_keeps_going_after_handler_errors_and_stops_cleanly() -> None:
    sqs = FakeSQS()
    calls = 0

    def flaky(event: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first call fails")

    d, _ = dispatcher(sqs, Recorder(flaky))
    d.start()
    try:
        sqs.put(WORK, "first")
        wait_for(lambda: calls >= 1, what="the first call")
        sqs.put(WORK, "second")
        wait_for(lambda: sqs.deleted == ["rh-2"], what="the second message to be deleted")
    finally:
        d.stop(timeout_s=10)
    assert not [t for t in threading.enumerate() if t.name.startswith("dispatch-")]


def test_schedule_calls_the_sweeper_with_a_scheduled_event_even_after_it_fails() -> None:
    events: list[dict[str, Any]] = []

    def sweeper(event: dict[str, Any], context: Any) -> None:
        events.append(event)
        if len(events) == 1:
            raise RuntimeError("sweeper failed once")

    d = Dispatcher(
        cast("SQSClient", FakeSQS()),
        [],
        region="us-east-1",
        schedule=sweeper,
        schedule_every_s=0.01,
    )
    d.start()
    try:
        wait_for(lambda: len(events) >= 2, what="two sweeps")
    finally:
        d.stop(timeout_s=10)
    assert events[0]["source"] == "aws.events"
    assert events[0]["detail-type"] == "Scheduled Event"
    assert events[0]["resources"] == [
        "arn:aws:events:us-east-1:123456789012:rule/chute-dev-sweeper"
    ]
