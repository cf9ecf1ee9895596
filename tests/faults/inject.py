"""Faults AWS has and the in-process moto does not: transaction conflicts, failing calls.

moto runs every DynamoDB call under one lock, so the TransactionConflict that AWS raises when two
transactions touch one item at once never happens in tests. These hooks make botocore answer an
operation with the error instead of sending it, as AWS would.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from botocore.client import BaseClient


@dataclass
class Injected:
    """How many calls were answered with the fault."""

    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _conflict(items: int) -> dict[str, Any]:
    return {
        "Error": {
            "Code": "TransactionCanceledException",
            "Message": "Transaction cancelled, please refer cancellation reasons for specific "
            "reasons [TransactionConflict]",
        },
        "CancellationReasons": [
            {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        ]
        + [{"Code": "None"}] * (items - 1),
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }


def inject_conflicts(
    client: BaseClient,
    *,
    rate: float = 1.0,
    seed: int = 7,
    when: Callable[[dict[str, Any]], bool] = lambda _params: True,
    limit: int | None = None,
) -> Injected:
    """Cancel TransactWriteItems calls (those `when` picks) with TransactionConflict at `rate`,
    at most `limit` times."""
    rng = random.Random(seed)
    injected = Injected()

    def answer(params: dict[str, Any], **_kwargs: Any) -> tuple[Any, dict[str, Any]] | None:
        # `params` is the serialized request: its body is the operation's JSON.
        request = json.loads(params["body"])
        with injected.lock:
            if limit is not None and injected.count >= limit:
                return None
            if not when(request) or rng.random() >= rate:
                return None
            injected.count += 1
        http = SimpleNamespace(status_code=400, headers={})
        return http, _conflict(len(request["TransactItems"]))

    client.meta.events.register("before-call.dynamodb.TransactWriteItems", answer)  # type: ignore[arg-type]
    return injected


def fail_calls(
    client: BaseClient,
    event: str,
    *,
    times: int = 1,
    error: type[Exception] = RuntimeError,
    when: Callable[[dict[str, Any]], bool] = lambda _params: True,
) -> Injected:
    """Make the next `times` calls of `event` (e.g. "before-call.sqs.SendMessageBatch") that
    `when` picks by their parameters raise. (The parameters are the API's, such as Bucket and
    Key, for "provide-client-params.*" events; serialized for "before-call.*" ones.)"""
    injected = Injected()

    def boom(**kwargs: Any) -> None:
        if not when(kwargs.get("params") or {}):
            return
        with injected.lock:
            if injected.count >= times:
                return
            injected.count += 1
        raise error(f"injected failure of {event}")

    client.meta.events.register(event, boom)
    return injected


class _Body:
    """The raw body of a made-up HTTP response, as botocore reads one."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs: Any) -> Any:
        yield self._data


def throttle(client: BaseClient, *, rate: float, seed: int = 7) -> Callable[[], int]:
    """Answer `rate` of a JSON-protocol client's HTTP requests (DynamoDB, SQS) with the service's
    throttling error, at the HTTP layer: botocore parses it and retries it as it would AWS's
    (standard mode: up to 5 tries, within its retry quota). A function that stops the fault and
    says how many requests were throttled."""
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    service = client.meta.service_model.service_name
    code = (
        "ProvisionedThroughputExceededException" if service == "dynamodb" else "ThrottlingException"
    )
    body = json.dumps({"__type": f"com.amazonaws.{service}#{code}", "message": "Rate exceeded"})
    rng, injected = random.Random(seed), Injected()

    def answer(request: Any, **_kwargs: Any) -> AWSResponse | None:
        with injected.lock:
            if rng.random() >= rate:
                return None
            injected.count += 1
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        headers["x-amzn-RequestId"] = "throttled"
        return AWSResponse(request.url, 400, headers, _Body(body.encode()))

    unique = f"throttle-{service}-{id(answer)}"
    # First: moto answers requests at this same event, and the first answer wins.
    client.meta.events.register_first("before-send", answer, unique_id=unique)  # type: ignore[arg-type]

    def stop() -> int:
        client.meta.events.unregister("before-send", unique_id=unique)
        return injected.count

    return stop
