"""The worker: claim a unit, run its job type's processor, record the outcome exactly once.

Every status change is a `Store.move`; this module only decides which one. The order of the
retry path matters: the unit goes back to `pending` (listed as RETRY) before its next message is
sent, so the message can never find the unit still running, and a send that fails is made good by
the sweeper.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable

from chalicelib.budget import MIN_START_S, STUCK_GRACE_S, WORKER_TIMEOUT_S
from chalicelib.completion import complete_if_done
from chalicelib.config import WorkSettings
from chalicelib.control import auto_pause_if_failing, unpark_unit
from chalicelib.errors import ChuteError, PermanentError, RetryableError, UnitSkipped
from chalicelib.jobs import JobType, UnknownJobType
from chalicelib.log import log_keys, logger
from chalicelib.models import SessionState, UnitError, UnitStatus, WorkMessage
from chalicelib.notify import announce_milestones
from chalicelib.processors import ProcessorOutput, registry
from chalicelib.processors.base import DEFAULT_SPANS
from chalicelib.queues import MAX_DELAY_S, backoff_s, send_work
from chalicelib.services import Services
from chalicelib.store import Outcome
from chalicelib.store.items import SessionMeta, UnitItem, UnitPatch
from chalicelib.store.keys import UnitRef
from chalicelib.unitrun import StaleAttemptError, TimeUpError, UnitRun

RemainingMs = Callable[[], int]

S = UnitStatus


class SessionStates:
    """The sessions' META as one worker invocation read it — at most once a second per session,
    not once per record: a batch of ten rows of one session costs one read, and a pause is seen
    by the next claim at most a second after it (a claim it races runs to its end either way)."""

    FRESH_S = 1.0

    def __init__(self, services: Services[WorkSettings]) -> None:
        self._store = services.store
        self._seen: dict[str, tuple[SessionMeta | None, float]] = {}
        self._lock = threading.Lock()

    def meta(self, sid: str) -> SessionMeta | None:
        with self._lock:  # held while reading: the records of one batch share one read
            seen = self._seen.get(sid)
            now = time.monotonic()
            if seen is None or now - seen[1] >= self.FRESH_S:
                seen = (self._store.get_meta(sid), now)
                self._seen[sid] = seen
            return seen[0]


# How many of a session's units, spread over it, look at its progress for the 25/50/75 %
# milestones when they finish: a few reads per session whatever its size, each milestone told
# within about 1/MILESTONE_LOOKS of the session after it is passed.
MILESTONE_LOOKS = 20


def looks_at_milestones(ref: UnitRef, total: int) -> bool:
    step = max(1, total // MILESTONE_LOOKS)
    return (ref.file * 100_003 + ref.index) % step == 0


def process_message(
    services: Services[WorkSettings],
    body: str,
    remaining_ms: RemainingMs | None = None,
    states: SessionStates | None = None,
) -> None:
    """One work message. Raises only for infrastructure failures, which SQS redelivers.
    `states`: the invocation's reads of session states (else one read for this message)."""
    message = WorkMessage.model_validate_json(body)
    ref = UnitRef(message.sid, message.file, message.index)
    with log_keys(session_id=message.sid, ordinal=ref.ordinal, attempt=message.attempt):
        now = services.clock.now()
        left_s = remaining_ms() / 1000 if remaining_ms else float(WORKER_TIMEOUT_S)
        if left_s < MIN_START_S:
            # Too late in this invocation to start: the message goes back for another one.
            send_work(services, [message], priority=message.priority)
            logger.info("handed back: the invocation is about to end", extra={"left_s": left_s})
            return
        states = states or SessionStates(services)
        worker = Worker(services, message, invocation_end=now + left_s, states=states)
        outcome = worker.run()
        if outcome is Outcome.LAST_IN_SHARD and complete_if_done(services, message.sid):
            return
        if outcome is not Outcome.STALE:
            meta = states.meta(message.sid)  # read for the claim a moment ago: no new read
            if meta is not None and looks_at_milestones(ref, meta.total):
                view = services.store.load_session(message.sid)
                if view is not None:
                    announce_milestones(services, view)


class Worker:
    """One delivery of one work message."""

    def __init__(
        self,
        services: Services[WorkSettings],
        message: WorkMessage,
        *,
        invocation_end: float,
        states: SessionStates,
    ) -> None:
        self.services = services
        self.states = states
        self.store = services.store
        self.message = message
        self.ref = UnitRef(message.sid, message.file, message.index)
        self.invocation_end = invocation_end
        self.job: JobType | None = None

    def run(self) -> Outcome:
        clock, message = self.services.clock, self.message
        try:
            job = self.services.jobs.get(message.job_type)
        except UnknownJobType:
            job = None
        self.job = job
        processor = registry.get(job.processor) if job else None
        started = clock.now()
        run = UnitRun(
            self.services,
            message,
            processor.spans if processor else DEFAULT_SPANS,
            attempt=message.attempt,
            started=started,
            unit_deadline=started + (job.unit_timeout_s if job else 0.0),
            invocation_end=self.invocation_end,
        )
        claimed = self._claim(run, started)
        if claimed is not Outcome.MOVED:
            return claimed
        if job is None or processor is None:
            missing = PermanentError(
                f"No processor handles job type {message.job_type!r}.", code="no_processor"
            )
            return self._finish(run, S.FAILED, missing)
        if run.attempt > job.max_attempts:
            stuck = RetryableError(
                f"Processing stopped responding {job.max_attempts} times.", code="unit_timeout"
            )
            return self._finish(run, S.TIMEOUT, stuck)
        return self._run(job, run)

    def _claim(self, run: UnitRun, now: float) -> Outcome:
        """pending → running for this message's attempt, or take over an expired lease.

        MOVED when this delivery now owns the unit (run.attempt says which attempt it is). A
        session that is not active holds its units back instead (parked, or cancelled)."""
        meta = self.states.meta(self.ref.sid)
        if meta is not None and meta.state != SessionState.ACTIVE:
            held = self._hold(meta, now)
            if held is not None:
                return held
        patch = UnitPatch(
            stage=run.current_stage, progress=0.0, started_at=now, lease_until=run.lease_until(now)
        )
        claim = self.store.move(
            self.ref, S.PENDING, S.RUNNING, attempt=run.attempt - 1, now=now, patch=patch
        )
        if claim is Outcome.MOVED:
            return claim
        unit = self.store.get_unit(self.ref)
        if unit is None:
            logger.warning("a message for a unit that does not exist")
            return Outcome.STALE
        if unit.status == S.RUNNING and (unit.lease_until or 0) < now:
            # The worker holding this unit died (its lease ran out): this delivery takes over and
            # it counts as a new attempt, so the dead worker's late writes fail their condition.
            took = self.store.move(
                self.ref, S.RUNNING, S.RUNNING, attempt=unit.attempt, now=now, patch=patch,
                expired=True,
            )  # fmt: skip
            run.attempt = unit.attempt + 1
            return took
        return self._skip(unit)

    def _hold(self, meta: SessionMeta, now: float) -> Outcome | None:
        """A pending unit of a paused session is parked and its message dropped; of a cancelled
        one, cancelled. None when the unit was not pending at this attempt (the claim decides)."""
        waiting = self.message.attempt - 1
        if meta.state != SessionState.PAUSED:  # cancelling or cancelled
            cancelled = self.store.move(self.ref, S.PENDING, S.CANCELLED, attempt=waiting, now=now)
            return None if cancelled is Outcome.STALE else cancelled
        if (
            self.store.move(self.ref, S.PENDING, S.PAUSED, attempt=waiting, now=now)
            is Outcome.STALE
        ):
            return None
        logger.info("parked: the session is paused")
        # A resume that listed the parked units just before this one was parked would miss it:
        # look again, and put it back to work if the session is active by now.
        again = self.store.get_meta(self.ref.sid)
        unit = self.store.get_unit(self.ref)
        if again is not None and again.state == SessionState.ACTIVE and unit is not None:
            unpark_unit(self.services, again, unit)
        return Outcome.STALE

    def _skip(self, unit: UnitItem) -> Outcome:
        """A duplicate or stale delivery: change nothing, but leave nothing hanging."""
        logger.info("skipping a duplicate or stale delivery", extra={"status": unit.status})
        if unit.terminal:
            # Its finisher may have died before checking completion (or lost the claim to a
            # conflict): the redelivery is the next chance to do it.
            return Outcome.LAST_IN_SHARD
        if unit.status == S.PENDING and unit.attempt == self.message.attempt:
            # This attempt requeued the unit but its next message may never have been sent.
            send_work(self.services, [self.message.next_attempt()], priority=self.message.priority)
        return Outcome.STALE

    def _run(self, job: JobType, run: UnitRun) -> Outcome:
        processor = registry.get(job.processor)
        assert processor is not None, "checked by run()"
        try:
            output = processor.run(run)
            result_key = self._save_result(run, output)
        except StaleAttemptError:
            logger.info("another attempt owns this unit now; stopping")
            return Outcome.STALE
        except TimeUpError as time_up:
            if time_up.unit_limit:
                over = RetryableError(
                    f"Processing took longer than the {job.unit_timeout_s:.0f} s a unit may take.",
                    code="unit_time_limit",
                )
                return self._finish(run, S.TIMEOUT, over)
            late = RetryableError(
                "The worker ran out of time before this unit was done; it will be tried again.",
                code="worker_time_up",
            )
            return self._retry(job, run, late, exhausted=S.TIMEOUT)
        except UnitSkipped as skipped:
            return self._finish(run, S.SKIPPED, skipped)
        except PermanentError as problem:
            return self._finish(run, S.FAILED, problem)
        except RetryableError as problem:
            return self._retry(job, run, problem)
        except Exception as exc:  # a processor bug or a flaky dependency: worth another attempt
            logger.exception("processor raised")
            unexpected = RetryableError(
                f"Processing failed unexpectedly ({type(exc).__name__}: {exc}).",
                code="processor_error",
            )
            return self._retry(job, run, unexpected)
        now = self.services.clock.now()
        patch = UnitPatch(
            result_key=result_key,
            result=output.metadata,
            stage=run.current_stage,
            progress=100.0,
            duration_ms=int((now - run.started) * 1000),
            retryable=False,
        )
        return self.store.move(
            self.ref, S.RUNNING, S.COMPLETED, attempt=run.attempt, now=now, patch=patch,
            amounts=output.amounts,
        )  # fmt: skip

    def _save_result(self, run: UnitRun, output: ProcessorOutput) -> str:
        # The attempt is part of the key: a stale attempt finishing late writes its own object
        # and can never overwrite the one the winning attempt recorded.
        key = f"results/{run.session_id}/{run.ordinal}.{run.attempt}.json"
        document = {"name": run.name, "metadata": output.metadata, **output.body}
        self.services.s3.put_object(
            Bucket=self.services.settings.bucket,
            Key=key,
            Body=json.dumps(document, ensure_ascii=False).encode(),
            ContentType="application/json",
        )
        return key

    def _finish(self, run: UnitRun, outcome: UnitStatus, problem: ChuteError) -> Outcome:
        """Record the unit as failed, timed out or skipped, with why."""
        now = self.services.clock.now()
        logger.warning("unit did not complete", extra={"code": problem.code, "outcome": outcome})
        patch = UnitPatch(
            error=UnitError.of(problem),
            retryable=isinstance(problem, RetryableError),
            duration_ms=int((now - run.started) * 1000),
            # Progress writes are coalesced, so the item may still show an earlier stage.
            stage=run.current_stage,
        )
        moved = self.store.move(
            self.ref, S.RUNNING, outcome, attempt=run.attempt, now=now, patch=patch
        )
        rule = self.job.auto_pause if self.job else None
        if rule is not None and moved is not Outcome.STALE and outcome != S.SKIPPED:
            auto_pause_if_failing(self.services, self.ref.sid, rule)
        return moved

    def _retry(
        self, job: JobType, run: UnitRun, problem: RetryableError, exhausted: UnitStatus = S.FAILED
    ) -> Outcome:
        """Requeue for the next attempt with exponential backoff, then send its message; or,
        attempts used up, finish the unit as `exhausted`."""
        if run.attempt >= job.max_attempts:
            return self._finish(run, exhausted, problem)
        return requeue(self.services, self.message, run.attempt, job, problem, run.started)


def retry_delay_s(job: JobType, attempt: int, problem: RetryableError) -> int:
    """Exponential backoff, or longer when the failing service said how long to wait (a model
    endpoint's Retry-After); SQS delays a message by at most 15 minutes."""
    delay = backoff_s(job.backoff_base_s, attempt)
    asked = problem.details.get("retry_after_s")
    if isinstance(asked, int | float) and asked > delay:
        delay = math.ceil(asked)
    return min(delay, MAX_DELAY_S)


def requeue(
    services: Services[WorkSettings],
    message: WorkMessage,
    attempt: int,
    job: JobType,
    problem: RetryableError,
    started: float,
    *,
    expired: bool = False,
) -> Outcome:
    """running → pending at `attempt`, listed as RETRY; then the next attempt's message.

    Requeue first: a message sent first could be consumed while the unit still runs, be dropped,
    and leave the unit pending with no message. If the send fails now, the unit is on the RETRY
    list and the sweeper sends it when it is overdue.
    """
    now = services.clock.now()
    delay = retry_delay_s(job, attempt, problem)
    patch = UnitPatch(
        error=UnitError.of(problem),
        retryable=True,
        retry_delay_s=delay,
        duration_ms=int((now - started) * 1000),
    )
    ref = UnitRef(message.sid, message.file, message.index)
    moved = services.store.move(
        ref, S.RUNNING, S.PENDING, attempt=attempt, now=now, patch=patch,
        due=now + delay + STUCK_GRACE_S, expired=expired,
    )  # fmt: skip
    if moved is Outcome.STALE:
        return moved
    retry = message.model_copy(update={"attempt": attempt + 1})
    send_work(services, [retry], priority=message.priority, delay_s=delay)
    logger.info("unit will be retried", extra={"code": problem.code, "delay_s": delay})
    return Outcome.MOVED
