"""Sessions: creating one from a manifest, and summarising one from its one-Query view."""

from __future__ import annotations

from typing import Any

from chalicelib.batch import MAX_BATCH_BYTES, rows_from_prompts, rows_from_text, rows_jsonl
from chalicelib.bodies import parse_body
from chalicelib.config import ApiSettings
from chalicelib.errors import Conflict, InvalidInput, NotFound
from chalicelib.filetypes import (
    ARCHIVE_EXTENSIONS,
    BATCH_EXTENSIONS,
    DOCUMENT_EXTENSIONS,
    INLINE_BATCH_NAME,
    MAX_DOCUMENT_BYTES,
    extension,
)
from chalicelib.humanize import human_bytes
from chalicelib.models import (
    Counts,
    CreateSessionRequest,
    CreateSessionResponse,
    FileSpec,
    MissingFile,
    MissingUploads,
    SessionState,
    SessionStatus,
    SessionSummary,
    UnitRow,
    UnitStatus,
    Usage,
)
from chalicelib.presign import presign_upload, upload_key
from chalicelib.prompttemplate import check_template, placeholders
from chalicelib.services import Services
from chalicelib.store import Store
from chalicelib.store.items import DeclaredFile, SessionMeta, SessionView, UnitItem
from chalicelib.subscriptions import sync_best_effort

# One type policy (chalicelib.filetypes): what may be uploaded alone is what the processor reads,
# plus zips of such documents.
UPLOAD_EXTENSIONS = DOCUMENT_EXTENSIONS | ARCHIVE_EXTENSIONS
JSONL_TYPE = "application/x-ndjson"


def parse_manifest(body: Any) -> CreateSessionRequest:
    return parse_body(
        CreateSessionRequest,
        body,
        code="invalid_manifest",
        what="The manifest",
        shape='{"files": [{"name", "size", "content_type"}]}',
    )


def check_limits(request: CreateSessionRequest, services: Services[ApiSettings]) -> None:
    if request.job_type == "prompts":
        check_batch_file(request)
        return
    limits = services.settings
    if len(request.files) > limits.max_files:
        raise InvalidInput(
            f"A session takes at most {limits.max_files} files; this one has {len(request.files)}.",
            code="too_many_files",
            details={"max_files": limits.max_files, "files": len(request.files)},
        )
    for ordinal, spec in enumerate(request.files):
        suffix = extension(spec.name)
        if suffix not in UPLOAD_EXTENSIONS:
            raise InvalidInput(
                f"{spec.name!r} is not a supported file type. Supported: "
                + ", ".join(sorted(UPLOAD_EXTENSIONS))
                + ".",
                code="unsupported_file_type",
                details={"ordinal": ordinal, "name": spec.name},
            )
        # A document alone is read whole by the processor; a zip only member by member.
        limit = limits.max_file_bytes if suffix in ARCHIVE_EXTENSIONS else MAX_DOCUMENT_BYTES
        if spec.size > limit:
            raise InvalidInput(
                f"{spec.name!r} is {human_bytes(spec.size)}; the limit for this kind of file is "
                f"{human_bytes(limit)}.",
                code="file_too_large",
                details={"ordinal": ordinal, "max_file_bytes": limit},
            )
    total = sum(spec.size for spec in request.files)
    if total > limits.max_session_bytes:
        raise InvalidInput(
            f"The files add up to {human_bytes(total)}; a session takes at most "
            f"{human_bytes(limits.max_session_bytes)}.",
            code="session_too_large",
            details={"max_session_bytes": limits.max_session_bytes, "bytes": total},
        )


def check_batch_file(request: CreateSessionRequest) -> None:
    """A prompts session's batch file, as far as its manifest entry tells (the fan-out reads the
    bytes and decides for good)."""
    for spec in request.files:
        if extension(spec.name) not in BATCH_EXTENSIONS:
            raise InvalidInput(
                f"{spec.name!r} is not a prompts batch. Send a "
                + ", ".join(sorted(BATCH_EXTENSIONS))
                + " file, or the prompts themselves in `prompts` or `text`.",
                code="unsupported_file_type",
                details={"ordinal": 0, "name": spec.name},
            )
        if spec.size == 0:
            raise InvalidInput(f"{spec.name!r} is empty.", code="empty_file")
        if spec.size > MAX_BATCH_BYTES:
            raise InvalidInput(
                f"{spec.name!r} is {human_bytes(spec.size)}; a prompts batch may be at most "
                f"{human_bytes(MAX_BATCH_BYTES)}. Split it into smaller files.",
                code="file_too_large",
                details={"ordinal": 0, "max_file_bytes": MAX_BATCH_BYTES},
            )
    template = request.prompt_options.template
    if template is not None:
        placeholders(template)
        if not request.files:  # given inline, a row has its prompt and nothing else
            check_template(template, {"prompt"})


def inline_rows(request: CreateSessionRequest) -> bytes | None:
    """The normalised rows of prompts given inline, checked as a batch file is (a refusal is a
    400 here: the person is still there to fix it); None when the input is uploaded."""
    if request.prompts is not None:
        batch = rows_from_prompts(request.prompts)
    elif request.text is not None:
        batch = rows_from_text(request.text)
    else:
        return None
    body, _spans = rows_jsonl(batch)
    return body


def default_name(request: CreateSessionRequest, inline: bytes | None) -> str | None:
    """A session is named by what was given: its file's name, or how many prompts were pasted."""
    if request.name:
        return request.name
    if inline is not None:
        rows = inline.count(b"\n")
        return f"{rows} pasted prompt" + ("" if rows == 1 else "s")
    return request.files[0].name if len(request.files) == 1 else None


def create_session(
    services: Services[ApiSettings], owner: str, body: Any, *, email: str | None = None
) -> CreateSessionResponse:
    """A new session from a manifest; `email`, the caller's address where known (AWS)."""
    request = parse_manifest(body)
    check_limits(request, services)
    inline = inline_rows(request)
    files = request.files
    if inline is not None:
        files = [FileSpec(name=INLINE_BATCH_NAME, size=len(inline), content_type=JSONL_TYPE)]
    settings, clock = services.settings, services.clock
    preferences = services.store.get_preferences_item(owner)
    # The first session of a person who wants email subscribes them (once: see the module).
    sync_best_effort(services, preferences, email)
    now = clock.now()
    sid = clock.new_id()
    expires_in = settings.presign_expiry_s
    tickets = [
        presign_upload(services.s3, settings.bucket, sid, ordinal, spec, expires_in, now)
        for ordinal, spec in enumerate(files)
        if inline is None
    ]
    ttl = int(now + settings.session_ttl_days * 86_400)
    meta = SessionMeta(
        sid=sid,
        owner=owner,
        name=default_name(request, inline),
        job_type=request.job_type,
        priority=request.priority,
        options=(
            request.prompt_options.model_dump(exclude_none=True)
            if request.job_type == "prompts"
            else {}
        ),
        notify=request.notify.applied_to(preferences.preferences),
        files_total=len(files),
        files_pending=len(files),
        created_at=now,
        upload_deadline=now + expires_in,
        expires_at=ttl,
    )
    declared = [
        DeclaredFile(
            sid=sid,
            file=ordinal,
            name=spec.name,
            size=spec.size,
            content_type=spec.content_type,
            owner=owner,
            job_type=request.job_type,
            priority=request.priority,
            expires_at=ttl,
        )
        for ordinal, spec in enumerate(files)
    ]
    # Listed as OPEN until the sweeper, after the deadline, fails the files that never arrived.
    created = services.store.put_session(
        meta, declared, first_check=now + expires_in + settings.upload_grace_s
    )
    assert created, "a new id names no session"
    if inline is not None:
        # Stored as the session's one upload: its ObjectCreated event starts the fan-out.
        services.s3.put_object(
            Bucket=settings.bucket,
            Key=upload_key(sid, 0, INLINE_BATCH_NAME),
            Body=inline,
            ContentType=JSONL_TYPE,
        )
    return CreateSessionResponse(
        session_id=sid,
        status=SessionStatus.UPLOADING,
        uploads=tickets,
        expires_at=now + expires_in,
    )


def missing_uploads(
    services: Services[ApiSettings], view: SessionView, *, presign: bool
) -> MissingUploads:
    """The declared files not yet received (not yet read by the fan-out); with `presign`, a
    fresh form for each.

    For a person whose upload was cut short (a reload, a lost connection): the same file sent
    again to the same key is read once, as the fan-out claims each file once. The new forms
    expire with the session's upload window, which a re-upload does not extend.
    """
    meta, now = view.meta, services.clock.now()
    if meta.done_at is not None or meta.state in (SessionState.CANCELLING, SessionState.CANCELLED):
        raise refused("sent more files", view)
    missing = [f for f in services.store.declared_files(meta.sid) if f.fanned_out_at is None]
    left = int(meta.upload_deadline - now)
    if presign and missing and left < 1:
        raise Conflict(
            "The upload window of this session has closed: start a new session with these files.",
            code="upload_window_closed",
            details={"upload_deadline": meta.upload_deadline},
        )
    settings = services.settings
    files = []
    for declared in sorted(missing, key=lambda f: f.file):
        spec = FileSpec(name=declared.name, size=declared.size, content_type=declared.content_type)
        ticket = (
            presign_upload(services.s3, settings.bucket, meta.sid, declared.file, spec, left, now)
            if presign
            else None
        )
        files.append(MissingFile(ordinal=declared.file, **spec.model_dump(), upload=ticket))
    return MissingUploads(session_id=meta.sid, files=files, upload_deadline=meta.upload_deadline)


def refused(action: str, view: SessionView) -> Conflict:
    """409 `invalid_state`: what the session's status forbids, with that status."""
    status = session_status(view)
    return Conflict(
        f"A {status.value.replace('_', ' ')} session cannot be {action}.",
        code="invalid_state",
        details={"status": status.value},
    )


def session_status(view: SessionView) -> SessionStatus:
    meta = view.meta
    if meta.state == SessionState.CANCELLED or (
        meta.state == SessionState.CANCELLING and meta.done_at is not None
    ):
        return SessionStatus.CANCELLED
    if meta.state == SessionState.CANCELLING:
        return SessionStatus.CANCELLING  # a unit that was running is finishing
    if meta.error is not None and meta.done_at is not None:
        return SessionStatus.REJECTED
    if meta.done_at is not None:
        completed = view.count(UnitStatus.COMPLETED)
        # Skipped units are not errors: nothing went wrong with them, chute just does not read
        # their kind.
        if completed + view.count(UnitStatus.SKIPPED) == meta.total:
            return SessionStatus.COMPLETED
        return SessionStatus.FAILED if completed == 0 else SessionStatus.COMPLETED_WITH_ERRORS
    if meta.state == SessionState.PAUSED:
        return SessionStatus.PAUSED
    if meta.files_pending == meta.files_total:
        return SessionStatus.UPLOADING
    return SessionStatus.PROCESSING


def eta_seconds(view: SessionView, now: float) -> float | None:
    """Remaining units ÷ throughput since the first unit finished; None until that is known."""
    if view.meta.done_at is not None:
        return 0.0
    first, remaining = view.first_done_at, view.remaining
    if remaining == 0:
        return None
    elapsed = now - first if first is not None else 0.0
    # The first finish only starts the clock; a rate needs at least one more after it.
    if first is None or view.finished < 2 or elapsed <= 0:
        return None
    rate = (view.finished - 1) / elapsed
    return round(remaining / rate, 1)


def summarize(view: SessionView, now: float) -> SessionSummary:
    meta = view.meta
    total, remaining = meta.total, view.remaining
    status = session_status(view)
    progress = 100.0 * (total - remaining) / total if total else 0.0
    if status not in (SessionStatus.COMPLETED, SessionStatus.COMPLETED_WITH_ERRORS) and (
        meta.files_pending
    ):
        # Files still to arrive add units we cannot count yet: never claim 100 % before they do.
        progress = min(progress, 99.0)
    return SessionSummary(
        session_id=meta.sid,
        name=meta.name,
        status=status,
        job_type=meta.job_type,
        priority=meta.priority,
        files_total=meta.files_total,
        files_received=meta.files_total - meta.files_pending,
        total=total,
        counts=Counts(**{s.value: view.count(s) for s in UnitStatus}),
        progress=round(progress, 1),
        eta_seconds=eta_seconds(view, now),
        # A unit ran out of time, or files never arrived by the upload deadline.
        timed_out=view.count(UnitStatus.TIMEOUT) > 0
        or (meta.files_pending > 0 and meta.done_at is None and now > meta.upload_deadline),
        # Paused, or with failures a retry (`?all=true` for permanent ones) would run again.
        can_resume=meta.state == SessionState.PAUSED
        or (
            status
            not in (SessionStatus.CANCELLED, SessionStatus.CANCELLING, SessionStatus.REJECTED)
            and view.count(UnitStatus.FAILED) + view.count(UnitStatus.TIMEOUT) > 0
        ),
        pause_reason=meta.pause_reason if meta.state == SessionState.PAUSED else None,
        upload_deadline=meta.upload_deadline if meta.files_pending and not meta.done_at else None,
        notified=meta.notified,
        version=view.version,
        created_at=meta.created_at,
        first_done_at=view.first_done_at,
        done_at=meta.done_at,
        usage=Usage(**view.amounts),
        error=meta.error,
        parent_id=meta.parent_id,
        children=meta.children,
    )


def owned_session(store: Store, sid: str, owner: str) -> SessionView:
    """The session's view; another user's session is as absent as a missing one."""
    view = store.load_session(sid) if _plausible_id(sid) else None
    if view is None or view.meta.owner != owner:
        raise NotFound(f"No session {sid!r}.", code="session_not_found")
    return view


def _plausible_id(sid: str) -> bool:
    return 0 < len(sid) <= 64 and sid.isalnum()


def unit_row(unit: UnitItem) -> UnitRow:
    return UnitRow(
        ordinal=unit.ref.ordinal,
        file_ordinal=unit.file,
        member_index=unit.index,
        name=unit.name,
        status=unit.status,
        stage=unit.stage,
        progress=100.0 if unit.status == UnitStatus.COMPLETED else unit.progress,
        attempt=unit.attempt,
        max_attempts=unit.max_attempts,
        retryable=unit.retryable,
        error=unit.error,
        size=unit.size,
        started_at=unit.started_at,
        finished_at=unit.finished_at,
        duration_ms=unit.duration_ms,
        result_key=unit.result_key,
        result=unit.result,
    )


def status_filter(raw: str | None) -> UnitStatus | None:
    if raw is None or raw == "":
        return None
    try:
        return UnitStatus(raw)
    except ValueError as exc:
        raise InvalidInput(
            f"status must be one of {', '.join(s.value for s in UnitStatus)}.",
            code="invalid_status_filter",
        ) from exc
