"""Running an SQS batch: partial failures reported by id, and I/O-bound records side by side."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from chalicelib.errors import RetryableError
from chalicelib.jobs import BUILT_IN, DOCUMENTS, PROMPTS
from chalicelib.queues import MAX_DELAY_S, batch_concurrency, run_batch
from chalicelib.worker import retry_delay_s


def event(*bodies: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {"messageId": f"m{i}", "body": json.dumps(body), "eventSource": "aws:sqs"}
            for i, body in enumerate(bodies)
        ]
    }


def test_only_the_records_that_raised_are_reported() -> None:
    def handle(record: Any) -> None:
        if json.loads(record.body)["n"] % 2:
            raise RuntimeError("odd")

    answer = run_batch(event(*({"n": n} for n in range(5))), handle, concurrency=3)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]}


# Whole rounds of `expected` records, so that every round fills the barrier; a batch smaller than
# the concurrency runs all at once.
@pytest.mark.parametrize(
    ("concurrency", "records", "expected"), [(1, 10, 1), (4, 12, 4), (20, 10, 10)]
)
def test_records_run_side_by_side_up_to_the_concurrency(
    concurrency: int, records: int, expected: int
) -> None:
    lock, running, most = threading.Lock(), [0], [0]
    all_started = threading.Barrier(expected, timeout=5)

    def handle(record: Any) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if expected > 1:
            all_started.wait()  # deadlocks (times out) unless `expected` run at once
        time.sleep(0.01)
        with lock:
            running[0] -= 1

    batch = event(*({"n": n} for n in range(records)))
    assert run_batch(batch, handle, concurrency=concurrency) == {"batchItemFailures": []}
    assert most[0] == expected


def test_a_batch_runs_side_by_side_only_when_every_record_waits_on_io() -> None:
    prompts, documents = {"job_type": PROMPTS.name}, {"job_type": DOCUMENTS.name}
    assert batch_concurrency(event(prompts, prompts), BUILT_IN, 8) == 8
    assert batch_concurrency(event(prompts, documents), BUILT_IN, 8) == 1
    assert batch_concurrency(event(prompts, {"job_type": "nope"}), BUILT_IN, 8) == 1
    assert batch_concurrency({"Records": [{"body": "not json"}]}, BUILT_IN, 8) == 1


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [(1, None, 2), (2, None, 4), (1, 1.0, 2), (1, 7.2, 8), (3, 3, 8), (1, 5000, MAX_DELAY_S)],
)
def test_a_retry_waits_the_backoff_or_what_the_service_asked_whichever_is_longer(
    attempt: int, retry_after: float | None, expected: int
) -> None:
    details = {} if retry_after is None else {"retry_after_s": retry_after}
    problem = RetryableError("busy", code="model_rate_limited", details=details)
    assert retry_delay_s(PROMPTS, attempt, problem) == expected
