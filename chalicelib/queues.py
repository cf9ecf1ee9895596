"""SQS both ways: sending work in batches of 10, and running an SQS batch with partial failures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.config import WorkSettings
from chalicelib.log import logger
from chalicelib.models import WorkMessage
from chalicelib.services import Services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from chalicelib.store.items import SessionMeta, UnitItem

SQS_BATCH = 10
MAX_DELAY_S = 900  # SQS's largest DelaySeconds


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
    event: dict[str, Any], context: Any, handle: Callable[[SQSRecord], None]
) -> dict[str, Any]:
    """Run handle() per record; failed records are reported so only they are redelivered."""
    # Imported on first use: Powertools' batch utility loads its parser models, ~80 ms of a cold
    # start that an API request never needs.
    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )

    # A BatchProcessor keeps per-batch state: one per invocation keeps concurrent calls apart.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def logged(record: SQSRecord) -> None:
        try:
            handle(record)
        except Exception:
            logger.exception(
                "record failed; SQS will redeliver it", extra={"id": record.message_id}
            )
            raise

    return dict(process_partial_response(event, logged, processor, context))
