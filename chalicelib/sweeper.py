"""The once-a-minute sweep: whatever a crash, a lost message or a missing upload left behind.

Each job reads one sparse due list (never a scan), page after page, and acts through the same
transitions and idempotent steps as the workers, so a sweep racing a worker changes nothing twice.
Jobs and items are independent: one that fails is logged and counted, and the sweep goes on.

- OPEN sessions past their upload deadline: files that never arrived become failed units; any
  OPEN session that is due is checked for completion that no finisher claimed, and looked at again
  later if it is still running.
- FANOUT files claimed but never all sent (the fan-out crashed, its message is gone): finished
  from the plan the claim recorded.
- LEASE: running units whose lease ran out long ago (their worker and message are lost): the next
  attempt is queued, or, attempts used up, the unit ends as timeout.
- RETRY: units requeued whose next message never came: it is sent again.
- dead letters: work messages SQS gave up on fail their pending unit; upload events it gave up on
  fail their file (after one more try).
- NOTIFY: finished sessions whose notification was never recorded as sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from chalicelib import control
from chalicelib.budget import NOTIFY_CLAIM_S, RECHECK_S, STUCK_GRACE_S
from chalicelib.completion import after_completion, complete_if_done
from chalicelib.config import SweeperSettings
from chalicelib.errors import PermanentError, RetryableError
from chalicelib.fanout import fail_file, fan_out_object, finish_fan_out
from chalicelib.log import log_keys, logger
from chalicelib.models import SessionState, UnitError, UnitStatus, WorkMessage
from chalicelib.presign import parse_upload_key
from chalicelib.queues import DEAD_LETTERED, send_work, work_message
from chalicelib.services import Services
from chalicelib.store import Outcome
from chalicelib.store.codec import Item
from chalicelib.store.items import DeclaredFile, SessionMeta, UnitItem, UnitPatch
from chalicelib.store.keys import DueList, UnitRef, meta_key
from chalicelib.worker import requeue

S = UnitStatus
DEAD_LETTER_BATCHES = 10
# The sweep stops taking new items this long before its invocation ends.
SWEEP_MARGIN_S = 20.0


@dataclass
class SweepReport:
    uploads_expired: int = 0
    sessions_completed: int = 0
    fanouts_finished: int = 0
    units_reset: int = 0
    retries_resent: int = 0
    dead_letters: int = 0
    upload_dead_letters: int = 0
    notifications_sent: int = 0
    controls_finished: int = 0
    errors: int = 0
    jobs_failed: list[str] = field(default_factory=list)


def sweep(
    services: Services[SweeperSettings], remaining_ms: Callable[[], int] | None = None
) -> SweepReport:
    report = SweepReport()
    now = services.clock.now()

    def out_of_time() -> bool:
        return remaining_ms is not None and remaining_ms() / 1000 < SWEEP_MARGIN_S

    jobs: list[tuple[str, Callable[[], Iterable[object]], Callable[[object], None]]] = [
        ("open sessions", lambda: services.store.due(DueList.OPEN, now),
         lambda i: _open_session(services, _item(i), report)),
        ("fan-outs", lambda: services.store.due(DueList.FANOUT, now),
         lambda i: _finish_fan_out(services, _item(i), report)),
        ("leases", lambda: services.store.due(DueList.LEASE, now - STUCK_GRACE_S),
         lambda i: _reset_stuck_unit(services, _item(i), report)),
        ("retries", lambda: services.store.due(DueList.RETRY, now),
         lambda i: _resend_retry(services, _item(i), report)),
        ("dead letters", lambda: _dead_letters(services, _work_dlqs(services)),
         lambda m: _fail_dead_lettered_unit(services, m, report)),
        ("upload dead letters", lambda: _dead_letters(services, _upload_dlqs(services)),
         lambda m: _retry_dead_lettered_upload(services, m, report)),
        ("notifications", lambda: services.store.due(DueList.NOTIFY, now - NOTIFY_CLAIM_S),
         lambda i: _notify(services, _item(i), report)),
    ]  # fmt: skip
    for name, items, handle in jobs:
        try:
            for item in items():
                if out_of_time():
                    break
                try:
                    handle(item)
                except Exception:
                    logger.exception("sweep: an item failed", extra={"job": name})
                    report.errors += 1
        except Exception:
            logger.exception("sweep: a job failed", extra={"job": name})
            report.jobs_failed.append(name)
    logger.info("sweep done", extra={"report": report.__dict__})
    return report


def _item(item: object) -> Item:
    assert isinstance(item, dict)
    return item


def _open_session(services: Services[SweeperSettings], item: Item, report: SweepReport) -> None:
    meta = SessionMeta.model_validate(item)
    now = services.clock.now()
    with log_keys(session_id=meta.sid):
        if meta.files_pending > 0 and now > meta.upload_deadline:
            missing = PermanentError(
                "This file was never uploaded: its upload link expired before any bytes "
                "arrived. Start a new session to upload it.",
                code="upload_missing",
            )
            for declared in services.store.declared_files(meta.sid):
                if declared.fanned_out_at is None and fail_file(services, meta, declared, missing):
                    report.uploads_expired += 1
        report.controls_finished += _finish_control(services, meta)
        if complete_if_done(services, meta.sid):
            report.sessions_completed += 1
            return
        services.store.reschedule(meta_key(meta.sid), DueList.OPEN, now + RECHECK_S, meta.sid)


def _finish_control(services: Services[SweeperSettings], meta: SessionMeta) -> int:
    """Finish a cancel or a resume whose request stopped half-way (an API timeout on a large
    session): a cancelling session's waiting units are cancelled, a resumed session's parked
    units put back. Each is the control itself, run again: idempotent. 1 when there was any."""
    if meta.state not in (SessionState.CANCELLING, SessionState.ACTIVE):
        return 0
    view = services.store.load_session(meta.sid, consistent=True)
    if view is None or view.meta.done_at is not None:
        return 0
    if meta.state == SessionState.CANCELLING:
        if view.count(S.PENDING) + view.count(S.PAUSED) == 0 and not view.meta.files_pending:
            return 0
        logger.warning("finishing an interrupted cancel")
        control.cancel(services, view)
        return 1
    if view.count(S.PAUSED) == 0:
        return 0
    logger.warning("finishing an interrupted resume")
    control.unpark(services, view.meta)
    return 1


def _finish_fan_out(services: Services[SweeperSettings], item: Item, report: SweepReport) -> None:
    declared = DeclaredFile.model_validate(item)
    meta = services.store.get_meta(declared.sid)
    if meta is None:
        return
    with log_keys(session_id=declared.sid, file=declared.file):
        finish_fan_out(services, meta, declared.file)
        report.fanouts_finished += 1


def _reset_stuck_unit(services: Services[SweeperSettings], item: Item, report: SweepReport) -> None:
    """Queue the next attempt of a unit whose worker and message are both gone."""
    unit = UnitItem.model_validate(item)
    meta = services.store.get_meta(unit.sid)
    if meta is None or unit.source is None:
        return
    with log_keys(session_id=unit.sid, ordinal=unit.ref.ordinal):
        job = services.jobs.get(meta.job_type)
        stuck = RetryableError(
            "Processing stopped responding and its work message was lost.", code="unit_stuck"
        )
        started = unit.started_at or services.clock.now()
        if unit.attempt >= job.max_attempts:
            now = services.clock.now()
            patch = UnitPatch(error=UnitError.of(stuck), retryable=True)
            moved = services.store.move(
                unit.ref, S.RUNNING, S.TIMEOUT, attempt=unit.attempt, now=now, patch=patch,
                expired=True,
            )  # fmt: skip
            if moved is Outcome.LAST_IN_SHARD:
                complete_if_done(services, unit.sid)
        else:
            message = work_message(meta, unit, unit.attempt)
            moved = requeue(services, message, unit.attempt, job, stuck, started, expired=True)
        if moved is not Outcome.STALE:
            report.units_reset += 1


def _resend_retry(services: Services[SweeperSettings], item: Item, report: SweepReport) -> None:
    """A requeued unit whose next message is overdue: its send was lost. Send it again."""
    unit = UnitItem.model_validate(item)
    meta = services.store.get_meta(unit.sid)
    if meta is None or unit.source is None or unit.status != S.PENDING:
        return
    now = services.clock.now()
    # Pushed back first: if the send then fails, the next sweep tries again.
    if not services.store.reschedule(
        unit.ref.key, DueList.RETRY, now + STUCK_GRACE_S, unit.sid, unit.ref.key["SK"]
    ):
        return
    send_work(services, [work_message(meta, unit, unit.attempt + 1)], priority=meta.priority)
    report.retries_resent += 1


def _work_dlqs(services: Services[SweeperSettings]) -> list[str]:
    settings = services.settings
    return [u for u in (settings.work_dlq_url, settings.work_high_dlq_url) if u]


def _upload_dlqs(services: Services[SweeperSettings]) -> list[str]:
    return [u for u in (services.settings.uploads_dlq_url,) if u]


@dataclass(frozen=True)
class DeadLetter:
    queue_url: str
    receipt: str
    body: str


def _dead_letters(services: Services[SweeperSettings], urls: list[str]) -> Iterable[DeadLetter]:
    """The messages waiting in dead-letter queues; each is deleted once it has been handled."""
    for url in urls:
        for _ in range(DEAD_LETTER_BATCHES):
            batch = services.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            messages = batch.get("Messages", [])
            for received in messages:
                yield DeadLetter(url, received["ReceiptHandle"], received["Body"])
            if len(messages) < 10:
                break


def _settle(services: Services[SweeperSettings], letter: DeadLetter) -> None:
    services.sqs.delete_message(QueueUrl=letter.queue_url, ReceiptHandle=letter.receipt)


def _fail_dead_lettered_unit(
    services: Services[SweeperSettings], letter: object, report: SweepReport
) -> None:
    assert isinstance(letter, DeadLetter)
    try:
        message = WorkMessage.model_validate_json(letter.body)
    except ValueError:
        # Not ours to interpret: it stays in the DLQ for a person, and is logged.
        logger.error("unreadable dead letter", extra={"body": letter.body[:500]})
        return
    ref = UnitRef(message.sid, message.file, message.index)
    unit = services.store.get_unit(ref)
    # A running unit is the lease sweep's; a finished one needs nothing.
    if unit is not None and unit.status == S.PENDING:
        problem = RetryableError(
            "Processing this file kept failing for reasons outside the file itself; "
            "it can be retried.",
            code=DEAD_LETTERED,
        )
        patch = UnitPatch(error=UnitError.of(problem), retryable=True)
        now = services.clock.now()
        moved = services.store.move(
            ref, S.PENDING, S.FAILED, attempt=unit.attempt, now=now, patch=patch
        )
        if moved is not Outcome.STALE:
            # For `chute dlq redrive` (chalicelib.redrive), once whatever failed is fixed.
            services.store.list_dead_letter(ref, unit.attempt, now)
        if moved is Outcome.LAST_IN_SHARD:
            complete_if_done(services, message.sid)
    _settle(services, letter)
    report.dead_letters += 1


def _retry_dead_lettered_upload(
    services: Services[SweeperSettings], letter: object, report: SweepReport
) -> None:
    """An upload event whose fan-out kept failing: one more try, then its file fails."""
    assert isinstance(letter, DeadLetter)
    records = json.loads(letter.body).get("Records", [])
    for record in records:
        key = unquote_plus(record["s3"]["object"]["key"])
        try:
            fan_out_object(services, key, int(record["s3"]["object"]["size"]))
        except Exception:
            logger.exception("fan-out failed again; failing the file", extra={"key": key})
            _fail_unfannable(services, key)
    _settle(services, letter)
    report.upload_dead_letters += 1


def _fail_unfannable(services: Services[SweeperSettings], key: str) -> None:
    parsed = parse_upload_key(key)
    if parsed is None:
        return
    sid, file, _ = parsed
    meta = services.store.get_meta(sid)
    declared = services.store.get_declared_file(sid, file)
    if meta is None or declared is None:
        return
    problem = PermanentError(
        "This file could not be split into units: reading it kept failing. Upload it again in "
        "a new session; if it fails again, it may be damaged.",
        code="fanout_failed",
    )
    if not fail_file(services, meta, declared, problem):
        finish_fan_out(services, meta, file)


def _notify(services: Services[SweeperSettings], item: Item, report: SweepReport) -> None:
    sid = str(item["sid"])
    with log_keys(session_id=sid):
        if after_completion(services, sid):
            report.notifications_sent += 1
