"""SQS both ways: sending work in batches of 10, and running an SQS batch with partial failures."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from chalicelib.config import WorkSettings
from chalicelib.jobs import JobRegistry
from chalicelib.log import logger
from chalicelib.models import WorkMessage
from chalicelib.services import Services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from chalicelib.store.items import SessionMeta, UnitItem

SQS_BATCH = 10
MAX_DELAY_S = 900  # SQS's largest DelaySeconds


# The error code of a unit whose message went to a dead-letter queue (the sweeper fails it).
DEAD_LETTERED = "dead_lettered"


def work_queue_url(services: Services[WorkSettings], priority: int) -> str:
    settings = services.settings
    if priority >= settings.high_priority_threshold:
        return settings.work_high_queue_url
    return settings.work_queue_url


def work_message(meta: SessionMeta, unit: UnitItem, attempt: int) -> WorkMessage:
    """The message that asks a worker for `attempt` of `unit`: the one place one is built."""
    if unit.source is None:
        raise ValueError(f"unit {unit.ref.ordinal} has nothing to read")
    return WorkMessage(
        sid=meta.sid,
        owner=meta.owner,
        file=unit.file,
        index=unit.index,
        attempt=attempt,
        name=unit.name,
        content_type=unit.content_type,
        job_type=meta.job_type,
        priority=meta.priority,
        source=unit.source,
        options=meta.options,
    )


def backoff_s(base_s: int, attempt: int) -> int:
    """The delay before attempt `attempt + 1`: exponential, capped by SQS's largest delay."""
    return min(base_s * (1 << max(attempt - 1, 0)), MAX_DELAY_S)


def send_work(
    services: Services[WorkSettings],
    messages: Sequence[WorkMessage],
    *,
    priority: int,
    delay_s: int = 0,
) -> None:
    """Send messages 10 per SendMessageBatch, resending entries SQS reports as failed."""
    url = work_queue_url(services, priority)
    for start in range(0, len(messages), SQS_BATCH):
        entries: list[Any] = [
            {
                "Id": str(i),
                "MessageBody": message.model_dump_json(),
                "DelaySeconds": min(delay_s, MAX_DELAY_S),
            }
            for i, message in enumerate(messages[start : start + SQS_BATCH])
        ]
        for _ in range(5):
            response = services.sqs.send_message_batch(QueueUrl=url, Entries=entries)
            failed = {f["Id"] for f in response.get("Failed", [])}
            entries = [e for e in entries if e["Id"] in failed]
            if not entries:
                break
        if entries:
            raise RuntimeError(f"SQS refused {len(entries)} work messages after 5 tries")


def run_batch(
    event: dict[str, Any],
    handle: Callable[[SQSRecord], None],
    *,
    concurrency: int = 1,
) -> dict[str, Any]:
    """Run handle() per record, up to `concurrency` at once; the records that raised are reported
    (ReportBatchItemFailures) so only they are redelivered.

    Powertools' BatchProcessor runs records one after another; rows that wait on a model call run
    side by side here instead, each in its own thread (log keys are per thread, chalicelib.log).
    """
    # Imported on first use: ~10 ms of a cold start that an API request never needs.
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    records = [SQSRecord(raw) for raw in event.get("Records", [])]

    def failed(record: SQSRecord) -> str | None:
        try:
            handle(record)
        except Exception:
            logger.exception(
                "record failed; SQS will redeliver it", extra={"id": record.message_id}
            )
            return record.message_id
        return None

    workers = min(concurrency, len(records))
    if workers <= 1:
        outcomes = [failed(record) for record in records]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="record") as pool:
            outcomes = list(pool.map(failed, records))
    return {"batchItemFailures": [{"itemIdentifier": m} for m in outcomes if m is not None]}


def batch_concurrency(event: dict[str, Any], jobs: JobRegistry, io_bound_concurrency: int) -> int:
    """How many of a work batch's records to run at once: side by side only when every one waits
    on I/O (a model call); a document is CPU and memory, run one at a time."""
    for raw in event.get("Records", []):
        try:
            job_type = json.loads(raw.get("body", "")).get("job_type")
            io_bound = jobs.get(str(job_type)).io_bound
        except (ValueError, AttributeError, LookupError):
            io_bound = False
        if not io_bound:
            return 1
    return io_bound_concurrency
