"""The worker: claim a unit, stream its bytes to a processor, record the outcome exactly once."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import BinaryIO

from chalicelib.errors import PermanentError, RetryableError
from chalicelib.log import logger
from chalicelib.models import UnitStatus, WorkMessage
from chalicelib.notify import complete_if_done
from chalicelib.processors import ProcessorOutput, Stage, registry
from chalicelib.queues import MAX_DELAY_S, send_work
from chalicelib.services import Services
from chalicelib.store import ClaimOutcome, Finish, Item, Store, ordinal_of
from chalicelib.zipindex import ZipMember, member_span, open_member

# Where each stage sits on the unit's 0–100 progress scale.
STAGE_SPANS: dict[str, tuple[float, float]] = {
    "downloading": (0.0, 40.0),
    "extracting": (40.0, 60.0),
    "parsing": (60.0, 90.0),
    "saving": (90.0, 100.0),
}
_CHUNK = 256 * 1024


class StaleAttemptError(Exception):
    """This attempt no longer owns the unit (its lease was taken over); stop quietly."""


class _ChunkReader(io.RawIOBase):
    """A read-once binary stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


class WorkerContext:
    """UnitContext for one attempt: streams the unit's bytes and coalesces progress writes."""

    def __init__(
        self, services: Services, store: Store, message: WorkMessage, attempt: int
    ) -> None:
        self._services = services
        self._store = store
        self._message = message
        self._attempt = attempt
        self.session_id = message.sid
        self.ordinal = ordinal_of(message.file, message.index)
        self.name = message.name
        self.content_type = message.content_type
        self.size: int | None = message.source.uncompressed_size
        self._stage: Stage = "downloading"
        self._fraction = 0.0
        # The claim itself recorded "downloading" at 0 %, so the first write can wait an interval.
        self._last_write = services.clock.now()

    @property
    def current_stage(self) -> Stage:
        return self._stage

    @property
    def percent(self) -> float:
        low, high = STAGE_SPANS[self._stage]
        return low + (high - low) * self._fraction

    def stage(self, name: Stage) -> None:
        self._stage, self._fraction = name, 0.0
        self._maybe_write()

    def progress(self, fraction: float) -> None:
        self._fraction = min(max(fraction, 0.0), 1.0)
        self._maybe_write()

    def _maybe_write(self) -> None:
        now = self._services.clock.now()
        if now - self._last_write < self._services.settings.progress_interval_s:
            return
        self._last_write = now
        message = self._message
        if not self._store.record_progress(
            message.sid, message.file, message.index, self._attempt, self._stage, self.percent
        ):
            raise StaleAttemptError

    def open(self) -> BinaryIO:
        source = self._message.source
        s3, bucket = self._services.s3, self._services.settings.bucket
        if source.kind == "object":
            body = s3.get_object(Bucket=bucket, Key=source.key)["Body"]
            chunks: Iterator[bytes] = iter(lambda: body.read(_CHUNK), b"")
        else:
            member = ZipMember(
                index=self._message.index,
                name=self.name,
                header_offset=source.header_offset,
                compressed_size=source.compressed_size,
                uncompressed_size=source.uncompressed_size,
                method=source.method,
                crc32=source.crc32,
                flags=0,
                is_dir=False,
                encrypted=False,
            )
            start, end = member_span(member)
            body = s3.get_object(Bucket=bucket, Key=source.key, Range=f"bytes={start}-{end - 1}")[
                "Body"
            ]
            self.stage("extracting")
            chunks = open_member(body, member, chunk_size=_CHUNK)  # type: ignore[arg-type]
        return io.BufferedReader(_ChunkReader(chunks), buffer_size=_CHUNK)


def process_message(services: Services, body: str) -> None:
    """One work message. Raises only for infrastructure failures, which SQS redelivers."""
    message = WorkMessage.model_validate_json(body)
    logger.append_keys(session_id=message.sid, ordinal=ordinal_of(message.file, message.index))
    try:
        store = Store(services.ddb, services.settings.table)
        if _process_unit(services, store, message):
            complete_if_done(services, store, message.sid)
    finally:
        logger.remove_keys(["session_id", "ordinal"])


def _process_unit(services: Services, store: Store, message: WorkMessage) -> bool:
    """Run the unit; True when completion may be due (it finished its shard's last unit)."""
    settings, clock = services.settings, services.clock
    started = clock.now()
    claim = store.claim_unit(
        message.sid,
        message.file,
        message.index,
        message.attempt,
        started,
        started + settings.lease_s,
    )
    if claim.outcome is ClaimOutcome.SKIP:
        logger.info("skipping a duplicate or stale delivery", extra={"attempt": message.attempt})
        return False
    attempt = claim.attempt
    if attempt > settings.max_attempts:
        timeout = RetryableError(
            f"Processing stopped responding {settings.max_attempts} times.", code="unit_timeout"
        )
        return finish_with_error(
            services, store, message, attempt, started, UnitStatus.TIMEOUT, timeout
        )
    processor = registry.resolve(message.name, message.content_type)
    context = WorkerContext(services, store, message, attempt)
    try:
        if processor is None:
            raise PermanentError("No processor handles this kind of file.", code="no_processor")
        output = processor.run(context)
        result_key = _save_result(services, message, output)
    except StaleAttemptError:
        logger.info("another attempt owns this unit now; stopping")
        return False
    except PermanentError as problem:
        return finish_with_error(
            services,
            store,
            message,
            attempt,
            started,
            UnitStatus.FAILED,
            problem,
            stage=context.current_stage,
        )
    except RetryableError as problem:
        return retry_or_give_up(
            services, store, message, attempt, started, problem, stage=context.current_stage
        )
    except Exception as exc:  # a processor bug or a flaky dependency: worth another attempt
        logger.exception("processor raised")
        unexpected = RetryableError(
            f"Processing failed unexpectedly ({type(exc).__name__}: {exc}).",
            code="processor_error",
        )
        return retry_or_give_up(
            services, store, message, attempt, started, unexpected, stage=context.current_stage
        )
    fields: Item = {
        "result_key": result_key,
        "result": output.metadata,
        "stage": "saving",
        "progress": 100,
        "duration_ms": int((clock.now() - started) * 1000),
        "retryable": False,
    }
    finished = store.finish_unit(
        message.sid, message.file, message.index, attempt, UnitStatus.COMPLETED, clock.now(), fields
    )
    return finished is Finish.LAST_IN_SHARD


def _save_result(services: Services, message: WorkMessage, output: ProcessorOutput) -> str:
    key = f"results/{message.sid}/{ordinal_of(message.file, message.index)}.json"
    document = {"name": message.name, "metadata": output.metadata, **output.body}
    services.s3.put_object(
        Bucket=services.settings.bucket,
        Key=key,
        Body=json.dumps(document, ensure_ascii=False).encode(),
        ContentType="application/json",
    )
    return key


def _error_fields(
    problem: PermanentError | RetryableError, started: float, now: float, stage: str | None
) -> Item:
    fields: Item = {
        "error": {"code": problem.code, "message": problem.message, "details": problem.details},
        "duration_ms": int((now - started) * 1000),
    }
    if stage is not None:
        # Progress writes are coalesced, so the item may still show an earlier stage.
        fields["stage"] = stage
    return fields


def finish_with_error(
    services: Services,
    store: Store,
    message: WorkMessage,
    attempt: int,
    started: float,
    outcome: UnitStatus,
    problem: PermanentError | RetryableError,
    *,
    stage: str | None = None,
) -> bool:
    """Record the unit as failed or timed out; True when completion may be due."""
    now = services.clock.now()
    fields = _error_fields(problem, started, now, stage)
    fields["retryable"] = isinstance(problem, RetryableError)
    logger.warning("unit did not complete", extra={"code": problem.code, "outcome": outcome})
    finished = store.finish_unit(
        message.sid, message.file, message.index, attempt, outcome, now, fields
    )
    return finished is Finish.LAST_IN_SHARD


def retry_or_give_up(
    services: Services,
    store: Store,
    message: WorkMessage,
    attempt: int,
    started: float,
    problem: RetryableError,
    exhausted: UnitStatus = UnitStatus.FAILED,
    *,
    stage: str | None = None,
) -> bool:
    """Schedule the next attempt with exponential backoff, or, attempts used up, finish the unit
    as `exhausted`; True when completion may be due."""
    settings = services.settings
    if attempt >= settings.max_attempts:
        return finish_with_error(
            services, store, message, attempt, started, exhausted, problem, stage=stage
        )
    delay = min(settings.retry_base_delay_s * 2 ** (attempt - 1), MAX_DELAY_S)
    # Send before requeueing: if the requeue then fails, this delivery is retried and, its lease
    # run out, taken over; the early message meanwhile finds the unit running and is dropped.
    retry = message.model_copy(update={"attempt": attempt + 1})
    send_work(services, [retry], priority=message.priority, delay_s=delay)
    now = services.clock.now()
    store.requeue_unit(
        message.sid,
        message.file,
        message.index,
        attempt,
        now,
        {**_error_fields(problem, started, now, None), "retry_delay_s": delay},
    )
    logger.info("unit will be retried", extra={"code": problem.code, "delay_s": delay})
    return False
