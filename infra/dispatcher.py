"""Play the Lambda SQS event source (and the 1-minute schedule) for the local stack.

Each route long-polls its queues and calls the handler with the event Lambda would send: up to 10
records per batch in Lambda's record shape. After the handler returns, every record it did not name
in `batchItemFailures` is deleted (one DeleteMessageBatch); the failed ones are left alone and come
back when the queue's visibility timeout passes, as with ReportBatchItemFailures on AWS. We do not
shorten that timeout: local retries take as long as they will on AWS, and code that wants a faster
retry has to say so (ChangeMessageVisibility) where AWS would see it too. If the handler raises, or
answers with an identifier that is not in the batch, the whole batch is left, as Lambda does.
Redrive to the DLQ after maxReceiveCount receives is SQS's job and happens in moto.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueOutputTypeDef, MessageTypeDef

Handler = Callable[[dict[str, Any], Any], Any]
log = logging.getLogger("chute.dispatcher")

BATCH_SIZE = 10


@dataclass(frozen=True)
class Route:
    function: str  # the Lambda function's name (without the app-stage prefix)
    handler: Handler
    queue_urls: tuple[str, ...]  # in order of preference: an earlier queue is drained first
    concurrency: int = 1
    timeout_s: int = 300
    memory_mb: int = 1024


class LambdaContext:
    """The attributes of the Python runtime's context object that handlers and Powertools read."""

    def __init__(
        self, function_name: str, *, timeout_s: int, memory_mb: int, region: str, account: str
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def queue_arn(queue_url: str, region: str) -> str:
    """SQS queue URLs end in /{account}/{name}, locally and on AWS."""
    account, name = urlparse(queue_url).path.strip("/").split("/")[-2:]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def _lambda_attribute(value: MessageAttributeValueOutputTypeDef) -> dict[str, Any]:
    # Lambda renames SQS's message attribute fields to camelCase and base64-encodes binary values.
    shaped: dict[str, Any] = {"stringListValues": [], "binaryListValues": []}
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        shaped["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    shaped["dataType"] = value["DataType"]
    return shaped


def sqs_event(messages: Sequence[MessageTypeDef], queue_url: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source sends for one batch of received messages."""
    arn = queue_arn(queue_url, region)
    records = []
    for message in messages:
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: _lambda_attribute(value)
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


def failed_message_ids(result: Any, batch_ids: set[str]) -> set[str]:
    """The messages to leave on the queue, from a handler's ReportBatchItemFailures answer."""
    if not isinstance(result, Mapping) or not result.get("batchItemFailures"):
        return set()
    failures = result["batchItemFailures"]
    named = [f.get("itemIdentifier") if isinstance(f, Mapping) else None for f in failures]
    if not isinstance(failures, list) or not all(n in batch_ids for n in named):
        # Lambda treats a malformed answer, or one naming a message not in the batch, as a
        # failure of the whole batch.
        log.error("invalid batchItemFailures %r: leaving the whole batch", failures)
        return set(batch_ids)
    return {str(n) for n in named}


def scheduled_event(rule: str, region: str, account: str) -> dict[str, Any]:
    """The event EventBridge sends a scheduled Lambda."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": now,
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/{rule}"],
        "detail": {},
    }


class Dispatcher:
    def __init__(
        self,
        sqs: SQSClient,
        routes: Sequence[Route],
        *,
        region: str,
        account: str = "123456789012",
        function_prefix: str = "chute-dev-",
        schedule: Handler | None = None,
        schedule_every_s: float = 60.0,
        wait_time_s: int = 1,
    ) -> None:
        self._sqs = sqs
        self._routes = tuple(routes)
        self._region = region
        self._account = account
        self._prefix = function_prefix
        self._schedule = schedule
        self._schedule_every_s = schedule_every_s
        # Short long-polls: a stopping dispatcher waits at most this long for its threads.
        self._wait_time_s = wait_time_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for route in self._routes:
            for n in range(route.concurrency):
                self._spawn(f"{route.function}-{n}", self._run_route, route)
        if self._schedule is not None:
            self._spawn("schedule", self._run_schedule, self._schedule)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"dispatch-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Let running handlers finish (up to timeout_s in all) and stop polling."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s is still running a handler; leaving it", thread.name)
        self._threads.clear()

    def _run_route(self, route: Route) -> None:
        while not self._stop.is_set():
            try:
                self.poll(route)
            except Exception:
                # SQS unreachable or similar: say so, back off, keep the thread.
                log.exception("polling for %s failed", route.function)
                self._stop.wait(1.0)

    def _run_schedule(self, handler: Handler) -> None:
        name = f"{self._prefix}sweeper"
        while not self._stop.wait(self._schedule_every_s):
            event = scheduled_event(name, self._region, self._account)
            with contextlib.suppress(Exception):  # logged by invoke; the next tick tries again
                self.invoke(name, handler, event, timeout_s=900)

    def poll(self, route: Route) -> int:
        """Receive one batch from the first of the route's queues that has messages, hand it to
        the handler and settle it; the number of messages received."""
        for i, url in enumerate(route.queue_urls):
            last = i == len(route.queue_urls) - 1
            messages = self._sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=BATCH_SIZE,
                # Only the last queue is long-polled: the preferred ones are checked first.
                WaitTimeSeconds=self._wait_time_s if last else 0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if messages:
                self._handle_batch(route, url, messages)
                return len(messages)
        return 0

    def invoke(
        self,
        function: str,
        handler: Handler,
        event: dict[str, Any],
        *,
        timeout_s: int,
        memory_mb: int = 1024,
    ) -> Any:
        """Call a handler as Lambda would; an exception is logged and re-raised."""
        context = LambdaContext(
            function,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            region=self._region,
            account=self._account,
        )
        try:
            return handler(event, context)
        except Exception:
            log.exception("%s failed (request %s)", function, context.aws_request_id)
            raise

    def _handle_batch(self, route: Route, url: str, messages: Sequence[MessageTypeDef]) -> None:
        event = sqs_event(messages, url, self._region)
        try:
            result = self.invoke(
                self._prefix + route.function,
                route.handler,
                event,
                timeout_s=route.timeout_s,
                memory_mb=route.memory_mb,
            )
        except Exception:
            return  # the whole batch comes back after the visibility timeout
        ids = {m["MessageId"] for m in messages}
        failed = failed_message_ids(result, ids)
        done = [m for m in messages if m["MessageId"] not in failed]
        if not done:
            return
        answer = self._sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
            ],
        )
        for failure in answer.get("Failed", []):
            log.error("could not delete a processed message from %s: %s", url, failure)
