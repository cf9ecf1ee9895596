"""The shapes that cross a boundary: HTTP bodies, queue messages, status enums."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from chalicelib.errors import ChuteError
from chalicelib.modelbase import Model, StrictModel
from chalicelib.sources import UnitSource

__all__ = ["Model", "StrictModel"]  # re-exported: the base of every shape


class UnitStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    SKIPPED = "skipped"  # no processor handles it: neither completed nor failed


TERMINAL_UNIT_STATUSES = frozenset(
    {
        UnitStatus.COMPLETED,
        UnitStatus.FAILED,
        UnitStatus.TIMEOUT,
        UnitStatus.CANCELLED,
        UnitStatus.SKIPPED,
    }
)


class SessionState(StrEnum):
    """What the person asked for (DESIGN §4); the status shown is derived from it and the counts."""

    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


class SessionStatus(StrEnum):
    UPLOADING = "uploading"  # waiting for (some) uploads; nothing fanned out yet
    PROCESSING = "processing"
    PAUSED = "paused"
    COMPLETED = "completed"  # every unit completed
    COMPLETED_WITH_ERRORS = "completed_with_errors"  # some units completed, some did not
    FAILED = "failed"  # no unit completed
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # the input was refused as a whole (a bad batch file): no unit exists
    CANCELLING = "cancelling"  # cancelled; a unit that was running is finishing


TERMINAL_SESSION_STATUSES = frozenset(
    {
        SessionStatus.COMPLETED,
        SessionStatus.COMPLETED_WITH_ERRORS,
        SessionStatus.FAILED,
        SessionStatus.CANCELLED,
        SessionStatus.REJECTED,
    }
)

_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


class FileSpec(StrictModel):
    name: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=0)
    content_type: str = Field(default="application/octet-stream", min_length=1, max_length=255)

    @field_validator("name")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if _BAD_NAME.search(value) or value in {".", ".."}:
            raise ValueError("must be a plain file name without slashes or control characters")
        return value


class Event(StrEnum):
    """What a session tells its owner about (DESIGN §7)."""

    STARTED = "session.started"
    MILESTONE_25 = "session.milestone_25"
    MILESTONE_50 = "session.milestone_50"
    MILESTONE_75 = "session.milestone_75"
    COMPLETED = "session.completed"
    COMPLETED_WITH_ERRORS = "session.completed_with_errors"
    FAILED = "session.failed"
    CANCELLED = "session.cancelled"
    REJECTED = "session.rejected"
    PAUSED = "session.paused"  # paused by itself (auto-pause): a person's own pause is not news


TERMINAL_EVENTS = (
    Event.COMPLETED,
    Event.COMPLETED_WITH_ERRORS,
    Event.FAILED,
    Event.CANCELLED,
    Event.REJECTED,
)
MILESTONES = ((25, Event.MILESTONE_25), (50, Event.MILESTONE_50), (75, Event.MILESTONE_75))


class Preferences(StrictModel):
    """Which events reach a person by which channel: `GET/PUT /me/preferences`. By default an
    email when a session ends, and every event in the page's notification list."""

    email: list[Event] = Field(default_factory=lambda: list(TERMINAL_EVENTS))
    in_app: list[Event] = Field(default_factory=lambda: list(Event))

    @field_validator("email", "in_app")
    @classmethod
    def _once_each_in_order(cls, events: list[Event]) -> list[Event]:
        return [e for e in Event if e in events]


class NotifyOptions(StrictModel):
    """A session's own choice over the owner's preferences (each list replaces theirs)."""

    on_complete: bool = True  # False: no email and no in-app entry when it ends
    email: list[Event] | None = None
    in_app: list[Event] | None = None

    def applied_to(self, preferences: Preferences) -> Preferences:
        chosen = Preferences(
            email=preferences.email if self.email is None else self.email,
            in_app=preferences.in_app if self.in_app is None else self.in_app,
        )
        if not self.on_complete:
            chosen = Preferences(
                email=[e for e in chosen.email if e not in TERMINAL_EVENTS],
                in_app=[e for e in chosen.in_app if e not in TERMINAL_EVENTS],
            )
        return chosen


class PromptOptions(StrictModel):
    """How a prompts session reads its rows and asks the model (DESIGN §3, §5)."""

    # The header of the prompt column, matched case-insensitively (CSV, XLSX).
    prompt_column: str = Field(default="prompt", min_length=1, max_length=200)
    sheet: str | None = Field(default=None, min_length=1, max_length=200)  # XLSX: else the first
    # The user message sent per row: {prompt} and {column name} are the row's cells, {{ and }}
    # literal braces. None: the built-in prompt enhancer, which answers JSON.
    template: str | None = Field(default=None, min_length=1, max_length=20_000)
    model: str | None = Field(default=None, min_length=1, max_length=200)  # else the deployment's
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=32_000)


class CreateSessionRequest(StrictModel):
    """A documents session declares its files; a prompts session one batch file, or its prompts
    inline (`prompts`, a list, or `text`, one prompt per line), which needs no upload."""

    files: list[FileSpec] = Field(default_factory=list)
    prompts: list[str] | None = None
    text: str | None = None
    name: str | None = Field(default=None, max_length=200)
    priority: int = Field(default=5, ge=1, le=10)
    # `document_summaries`: documents, then a follow-up session summarising each (chained).
    job_type: Literal["documents", "prompts", "document_summaries"] = "documents"
    options: PromptOptions | None = None
    notify: NotifyOptions = Field(default_factory=NotifyOptions)

    @model_validator(mode="after")
    def _one_input(self) -> CreateSessionRequest:
        inline = [n for n in ("prompts", "text") if getattr(self, n) is not None]
        if self.job_type != "prompts":
            if inline or self.options is not None:
                raise ValueError("prompts, text and options belong to a prompts session")
            if not self.files:
                raise ValueError("a documents session needs at least one file in files")
            return self
        if len(inline) + (1 if self.files else 0) != 1:
            raise ValueError(
                "a prompts session takes one of: files (one batch file), prompts, text"
            )
        if len(self.files) > 1:
            raise ValueError("a prompts session takes one batch file; start one session per file")
        return self

    @property
    def prompt_options(self) -> PromptOptions:
        return self.options or PromptOptions()


class UploadTicket(Model):
    ordinal: int
    name: str
    key: str
    url: str
    fields: dict[str, str]
    expires_at: float


class CreateSessionResponse(Model):
    session_id: str
    status: SessionStatus
    uploads: list[UploadTicket]
    expires_at: float


class MissingFile(Model):
    """A declared file whose upload has not arrived, and (POST) a fresh form to send it with."""

    ordinal: int
    name: str
    size: int
    content_type: str
    upload: UploadTicket | None = None


class MissingUploads(Model):
    session_id: str
    files: list[MissingFile]
    # When the upload window closes: after it, files still missing fail `upload_missing`.
    upload_deadline: float


class Counts(Model):
    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    timeout: int = 0
    cancelled: int = 0
    paused: int = 0
    skipped: int = 0


class Usage(Model):
    """What a session's units spent so far (prompts: model tokens), summed on the counter shards."""

    tokens_in: int = 0
    tokens_out: int = 0


class SessionSummary(Model):
    session_id: str
    name: str | None
    status: SessionStatus
    job_type: str
    priority: int
    files_total: int
    files_received: int
    total: int
    counts: Counts
    progress: float  # 0–100
    eta_seconds: float | None
    timed_out: bool
    can_resume: bool
    # Why a paused session paused: "requested", or "failure_rate" when it paused itself.
    pause_reason: str | None = None
    # While files are still to arrive: when the upload window closes (see /uploads), else None.
    upload_deadline: float | None = None
    notified: bool
    version: int
    created_at: float
    first_done_at: float | None
    done_at: float | None
    usage: Usage = Field(default_factory=Usage)
    # Why the session was rejected as a whole (status `rejected`), else None.
    error: UnitError | None = None
    # Chains: the session this one follows up on, and the follow-ups started from this one.
    parent_id: str | None = None
    children: list[str] = Field(default_factory=list)


class UnitError(Model):
    """Why a unit failed, timed out or was skipped: the one error shape units carry."""

    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, problem: ChuteError) -> UnitError:
        return cls(code=problem.code, message=problem.message, details=problem.details)


class UnitRow(Model):
    ordinal: str
    file_ordinal: int
    member_index: int
    name: str
    status: UnitStatus
    stage: str | None
    progress: float  # 0–100
    attempt: int
    max_attempts: int
    retryable: bool
    error: UnitError | None
    size: int | None
    started_at: float | None
    finished_at: float | None
    duration_ms: int | None
    result_key: str | None
    result: dict[str, Any] | None


class WorkMessage(Model):
    """Body of one SQS message on the work queues: everything the worker needs, no extra read.

    Built in one place (chalicelib.queues.work_message) for the fan-out, retries and the sweeper.
    """

    sid: str
    owner: str
    file: int
    index: int
    attempt: int = Field(ge=1)
    name: str
    content_type: str
    job_type: str
    priority: int = Field(default=5, ge=1, le=10)
    source: UnitSource
    # The session's options (prompt column, template, model …), as the processor sees them.
    options: dict[str, Any] = Field(default_factory=dict)

    def next_attempt(self) -> WorkMessage:
        return self.model_copy(update={"attempt": self.attempt + 1})
