"""The UnitContext of one attempt: streams the unit's bytes, writes coalesced progress that also
renews the lease (a heartbeat), saves checkpoints, and tells the processor its time left."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, BinaryIO, TypeVar

from chalicelib.budget import LEASE_MARGIN_S
from chalicelib.config import WorkSettings
from chalicelib.log import logger
from chalicelib.models import UnitStatus, WorkMessage
from chalicelib.processors.base import ClientKey, Stage
from chalicelib.services import Services
from chalicelib.sources import open_source, source_size
from chalicelib.store import Outcome
from chalicelib.store.items import UnitItem, UnitPatch
from chalicelib.store.keys import UnitRef

T = TypeVar("T")
# A lease is renewed by every progress write, for at most this long, and never past the
# invocation's end: a worker that dies leaves a lease that runs out soon after.
LEASE_S = 90.0
# A checkpoint larger than this is kept in S3 (a unit item holds 400 KB in all).
INLINE_CHECKPOINT_BYTES = 16 * 1024


class StaleAttemptError(Exception):
    """This attempt no longer owns the unit (its lease was taken over); stop quietly."""


class TimeUpError(Exception):
    """The unit's time ran out: its job type's limit (`unit_limit`) or the invocation's."""

    def __init__(self, unit_limit: bool) -> None:
        super().__init__("the unit's job type limit" if unit_limit else "the invocation's end")
        self.unit_limit = unit_limit


class UnitRun:
    def __init__(
        self,
        services: Services[WorkSettings],
        message: WorkMessage,
        spans: Mapping[Stage, tuple[float, float]],
        *,
        attempt: int,
        started: float,
        unit_deadline: float,
        invocation_end: float,
    ) -> None:
        self._services = services
        self._message = message
        self._spans = spans
        self.attempt = attempt
        self.started = started
        self.ref = UnitRef(message.sid, message.file, message.index)
        self.session_id = message.sid
        self.ordinal = self.ref.ordinal
        self.name = message.name
        self.content_type = message.content_type
        self.size: int | None = source_size(message.source)
        self.options: Mapping[str, Any] = message.options
        self._unit_deadline = unit_deadline
        self._invocation_end = invocation_end
        self._stage: Stage = next(iter(spans))
        self._fraction = 0.0
        # The claim itself recorded the first stage at 0 %, so the first write can wait.
        self._last_write = started
        self._resume_state: Any = None
        self._resume_loaded = False

    # ---- what the worker reads back ----------------------------------------------------------
    @property
    def current_stage(self) -> Stage:
        return self._stage

    @property
    def percent(self) -> float:
        low, high = self._spans[self._stage]
        return round(low + (high - low) * self._fraction, 1)

    def lease_until(self, now: float) -> float:
        return min(now + LEASE_S, self._invocation_end) + LEASE_MARGIN_S

    # ---- UnitContext ---------------------------------------------------------------------------
    def stage(self, name: Stage) -> None:
        self._stage, self._fraction = name, 0.0
        self._heartbeat()

    def progress(self, fraction: float) -> None:
        self._fraction = min(max(fraction, 0.0), 1.0)
        self._heartbeat()

    def time_left(self) -> float:
        return min(self._unit_deadline, self._invocation_end) - self._services.clock.now()

    def open(self) -> BinaryIO:
        if self._message.source.kind == "zip_member":
            self.stage("extracting")
        return open_source(self._message.source, self._services.s3, self._services.settings.bucket)

    def checkpoint(self, state: Any) -> None:
        """Small state rides on the unit item; larger state (a long PDF's pages so far) goes to
        S3 under this attempt's own key, and the item points at it: a stale attempt's late
        checkpoint can never replace the current one's."""
        body = json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode()
        if len(body) <= INLINE_CHECKPOINT_BYTES:
            patch = UnitPatch(checkpoint=state, checkpoint_key=None)
        else:
            key = f"checkpoints/{self.session_id}/{self.ordinal}.{self.attempt}.json"
            self._services.s3.put_object(
                Bucket=self._services.settings.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
            )
            patch = UnitPatch(checkpoint=None, checkpoint_key=key)
        self._write(patch)
        self._resume_state, self._resume_loaded = state, True

    @property
    def resume_state(self) -> Any:
        if not self._resume_loaded and self.attempt <= 1:
            return None  # a first attempt has nothing to resume: no read
        if not self._resume_loaded:
            unit = self._services.store.get_unit(self.ref)
            self._resume_state = self._saved_state(unit) if unit is not None else None
            self._resume_loaded = True
        return self._resume_state

    def _saved_state(self, unit: UnitItem) -> Any:
        if unit.checkpoint_key is None:
            return unit.checkpoint
        try:
            body = self._services.s3.get_object(
                Bucket=self._services.settings.bucket, Key=unit.checkpoint_key
            )["Body"].read()
            return json.loads(body)
        except Exception:  # expired or damaged: the attempt starts from the beginning
            logger.warning("the checkpoint could not be read", extra={"key": unit.checkpoint_key})
            return None

    def client(self, key: ClientKey[T]) -> T:
        return self._services.client(key)

    # ---- writes ----------------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        now = self._services.clock.now()
        if now >= self._unit_deadline:
            raise TimeUpError(unit_limit=True)
        if now >= self._invocation_end:
            raise TimeUpError(unit_limit=False)
        if now - self._last_write < self._services.settings.progress_interval_s:
            return
        self._write(UnitPatch(stage=self._stage, progress=self.percent))

    def _write(self, patch: UnitPatch) -> None:
        now = self._services.clock.now()
        self._last_write = now
        patch = UnitPatch(**patch.model_dump(exclude_unset=True), lease_until=self.lease_until(now))
        moved = self._services.store.move(
            self.ref, UnitStatus.RUNNING, UnitStatus.RUNNING, attempt=self.attempt, now=now,
            patch=patch,
        )  # fmt: skip
        if moved is Outcome.STALE:
            raise StaleAttemptError
