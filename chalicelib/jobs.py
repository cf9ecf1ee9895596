"""Job types (DESIGN §4): what a session's units are, and how the worker treats them.

The worker dispatches on a message's `job_type`: the job type names its processor and carries
the limits every unit of that type runs under. `documents` is the first entry; `prompts` next.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from chalicelib.budget import LEASE_MARGIN_S, MIN_START_S, WORKER_TIMEOUT_S


@dataclass(frozen=True)
class AutoPause:
    """Pause a session by itself when `rate` of its first `sample` finished units failed."""

    rate: float = 0.5
    sample: int = 20


@dataclass(frozen=True)
class JobType:
    name: str
    processor: str  # the registered processor that runs each unit
    max_attempts: int = 3
    # A unit running longer than this ends `timeout`; it must fit in one worker invocation.
    unit_timeout_s: float = WORKER_TIMEOUT_S - MIN_START_S - LEASE_MARGIN_S
    backoff_base_s: int = 2  # attempt n waits base × 2^(n-1) s (capped by SQS at 900 s)
    auto_pause: AutoPause | None = AutoPause()
    follow_up: str | None = None  # the job type of a session chained on this one's results
    # Units are the rows of one batch file (else files and zip members).
    rows: bool = False
    # Units are the completed results of a parent session (a follow-up: chalicelib.chains).
    chained: bool = False
    # What a unit is called in messages to people ("3 of 4 files completed").
    noun: str = "files"
    # A unit mostly waits on I/O (a model call): a worker runs a batch's records side by side.
    io_bound: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 10:
            raise ValueError("max_attempts must be 1 to 10")
        if not 0 < self.unit_timeout_s <= WORKER_TIMEOUT_S - MIN_START_S:
            raise ValueError("a unit's timeout must fit inside one worker invocation")


class UnknownJobType(LookupError):
    pass


class JobRegistry:
    def __init__(self, job_types: Iterable[JobType]) -> None:
        self._types: dict[str, JobType] = {}
        for job_type in job_types:
            if job_type.name in self._types:
                raise ValueError(f"job type {job_type.name!r} registered twice")
            self._types[job_type.name] = job_type
        for job_type in self._types.values():
            if job_type.follow_up is not None and job_type.follow_up not in self._types:
                raise ValueError(
                    f"{job_type.name!r} follows up with unknown {job_type.follow_up!r}"
                )

    def get(self, name: str) -> JobType:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownJobType(name) from None

    @property
    def names(self) -> list[str]:
        return sorted(self._types)

    def tuned(self, **changes: Mapping[str, object] | object) -> JobRegistry:
        """The same job types with some fields changed for all (tests: no backoff delay)."""
        return JobRegistry(replace(j, **changes) for j in self._types.values())  # type: ignore[arg-type]


DOCUMENTS = JobType(name="documents", processor="document")
# A model call answers in seconds; one taking minutes is stuck, and a retry is the cure.
PROMPTS = JobType(
    name="prompts", processor="prompt", unit_timeout_s=180, rows=True, io_bound=True, noun="rows"
)
# A follow-up only (never asked for directly): a model's summary of each completed document.
SUMMARIES = JobType(
    name="summaries",
    processor="summary",
    unit_timeout_s=180,
    chained=True,
    io_bound=True,
    noun="summaries",
)
# Documents, then a chained session summarising each one that was read.
DOCUMENT_SUMMARIES = replace(DOCUMENTS, name="document_summaries", follow_up=SUMMARIES.name)

BUILT_IN = JobRegistry([DOCUMENTS, PROMPTS, SUMMARIES, DOCUMENT_SUMMARIES])
