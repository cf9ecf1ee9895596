"""The once-a-minute sweep: whatever a crash, a lost message or a missing upload left behind.

Each job reads one sparse GSI2 list (never a scan) and acts through the same conditional
transitions as the workers, so a sweep racing a worker changes nothing twice:

- uploads that never arrived, after the deadline: their files become failed units, so the session
  finishes instead of waiting forever;
- running units whose lease ran out long ago (their message was lost): the next attempt is
  queued, or, attempts used up, the unit ends as timeout;
- work messages SQS dead-lettered (every delivery crashed before the unit could be recorded):
  a unit still pending is failed with `dead_lettered`, so the session can finish;
- finished sessions whose notification was never recorded as sent (SNS was down): published now.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.errors import PermanentError, RetryableError
from chalicelib.fanout import failed_unit
from chalicelib.log import logger
from chalicelib.models import UnitSource, UnitStatus, WorkMessage
from chalicelib.notify import complete_if_done, publish_completion
from chalicelib.services import Services
from chalicelib.store import (
    LEASE_INDEX,
    META_SK,
    NOTIFY_INDEX,
    UPLOAD_INDEX,
    ClaimOutcome,
    Item,
    Store,
    meta_pk,
)
from chalicelib.worker import finish_with_error, retry_or_give_up

# A notification is left to the worker that claimed completion for this long before the sweep
# takes it over.
NOTIFY_GRACE_S = 60.0


@dataclass
class SweepReport:
    uploads_expired: int = 0
    units_reset: int = 0
    dead_letters: int = 0
    notifications_sent: int = 0


def sweep(services: Services) -> SweepReport:
    store = Store(services.ddb, services.settings.table)
    report = SweepReport()
    now = services.clock.now()
    for meta in store.due(UPLOAD_INDEX, now):
        report.uploads_expired += expire_missing_uploads(services, store, meta)
    for unit in store.due(LEASE_INDEX, now - services.settings.stuck_grace_s):
        report.units_reset += reset_stuck_unit(services, store, unit)
    report.dead_letters = fail_dead_letters(services, store)
    for meta in store.due(NOTIFY_INDEX, now - NOTIFY_GRACE_S):
        session = store.load_session(str(meta["sid"]), consistent=True)
        if session is not None:
            publish_completion(services, store, session)
            report.notifications_sent += 1
    logger.info("sweep done", extra={"report": report.__dict__})
    return report


def expire_missing_uploads(services: Services, store: Store, meta: Item) -> int:
    """Fail every declared file that never arrived; the number failed."""
    sid = str(meta["sid"])
    expired = 0
    if int(meta["files_pending"]) > 0 and meta["state"] != "cancelled":
        now = services.clock.now()
        missing = PermanentError(
            "This file was never uploaded: its upload link expired before any bytes arrived.",
            code="upload_missing",
        )
        for declared in store.declared_files(sid):
            if "fanned_out_at" in declared:
                continue
            file = int(str(declared["SK"]).removeprefix("D#"))
            attrs: Item = {"max_attempts": services.settings.max_attempts, "size": 0}
            unit = failed_unit(file, 0, str(declared["name"]), missing, attrs)
            if store.claim_file(sid, file, [unit], now):
                store.put_units(sid, [unit], now, recovering=False)
                store.mark_file_sent(sid, file)
                expired += 1
        complete_if_done(services, store, sid)
    store.leave_index(meta_pk(sid), META_SK, UPLOAD_INDEX)
    return expired


def reset_stuck_unit(services: Services, store: Store, unit: Item) -> int:
    """Queue the next attempt of a unit whose worker and message are both gone; 1 if done."""
    sid = str(unit["PK"]).removeprefix("S#")
    meta = store.get_meta(sid)
    if meta is None or "source" not in unit:
        return 0
    message = WorkMessage(
        sid=sid,
        owner=str(meta["owner"]),
        file=int(unit["file"]),
        index=int(unit["index"]),
        attempt=int(unit["attempt"]),
        name=str(unit["name"]),
        content_type=str(unit.get("content_type", "application/octet-stream")),
        job_type=str(meta["job_type"]),
        priority=int(meta["priority"]),
        source=UnitSource.model_validate(unit["source"]),
    )
    stuck = RetryableError(
        "Processing stopped responding and its work message was lost.", code="unit_stuck"
    )
    started = float(unit.get("started_at", services.clock.now()))
    finished = retry_or_give_up(
        services, store, message, message.attempt, started, stuck, UnitStatus.TIMEOUT
    )
    if finished:
        complete_if_done(services, store, sid)
    return 1


DEAD_LETTER_BATCHES = 10


def fail_dead_letters(services: Services, store: Store) -> int:
    """Fail the pending units whose work messages were dead-lettered; the messages handled."""
    settings = services.settings
    handled = 0
    for url in filter(None, (settings.work_dlq_url, settings.work_high_dlq_url)):
        for _ in range(DEAD_LETTER_BATCHES):
            batch = services.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            messages = batch.get("Messages", [])
            for received in messages:
                try:
                    message = WorkMessage.model_validate_json(received["Body"])
                except ValueError:
                    # Not ours to interpret: it stays in the DLQ for a person, and is logged.
                    logger.error("unreadable dead letter", extra={"body": received["Body"][:500]})
                    continue
                fail_dead_lettered_unit(services, store, message)
                services.sqs.delete_message(QueueUrl=url, ReceiptHandle=received["ReceiptHandle"])
                handled += 1
            if len(messages) < 10:
                break
    return handled


def fail_dead_lettered_unit(services: Services, store: Store, message: WorkMessage) -> None:
    unit = store.get_unit(message.sid, message.file, message.index)
    # A running unit is the lease sweep's; a finished one needs nothing.
    if unit is None or unit["status"] != "pending":
        return
    now = services.clock.now()
    attempt = int(unit["attempt"]) + 1
    claim = store.claim_unit(message.sid, message.file, message.index, attempt, now, now)
    if claim.outcome is not ClaimOutcome.CLAIMED:
        return
    problem = RetryableError(
        "Processing this file kept failing for reasons outside the file itself; it can be retried.",
        code="dead_lettered",
    )
    message = message.model_copy(update={"attempt": attempt})
    if finish_with_error(services, store, message, attempt, now, UnitStatus.FAILED, problem):
        complete_if_done(services, store, message.sid)
