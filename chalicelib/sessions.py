"""Sessions: creating one from a manifest, and summarising one from its META item alone."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from chalicelib.errors import InvalidInput, NotFound
from chalicelib.models import (
    Counts,
    CreateSessionRequest,
    CreateSessionResponse,
    SessionStatus,
    SessionSummary,
    UnitRow,
    UnitStatus,
)
from chalicelib.presign import presign_upload
from chalicelib.services import Services
from chalicelib.store import (
    META_SK,
    UPLOAD_INDEX,
    Item,
    Store,
    counter,
    declared_file_sk,
    index_key,
    meta_pk,
    ordinal_of,
    session_pk,
)

DOCUMENT_EXTENSIONS = frozenset(
    {".zip", ".txt", ".md", ".markdown", ".csv", ".json", ".html", ".htm", ".pdf"}
)


def parse_manifest(body: Any) -> CreateSessionRequest:
    if not isinstance(body, dict):
        raise InvalidInput(
            'Send a JSON object: {"files": [{"name", "size", "content_type"}]}.',
            code="invalid_manifest",
        )
    try:
        return CreateSessionRequest.model_validate(body)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        first = problems[0]
        raise InvalidInput(
            f"The manifest is not valid: {first['field']}: {first['problem']}.",
            code="invalid_manifest",
            details={"problems": problems},
        ) from exc


def check_limits(request: CreateSessionRequest, services: Services) -> None:
    limits = services.settings
    if len(request.files) > limits.max_files:
        raise InvalidInput(
            f"A session takes at most {limits.max_files} files; this one has {len(request.files)}.",
            code="too_many_files",
            details={"max_files": limits.max_files, "files": len(request.files)},
        )
    for ordinal, spec in enumerate(request.files):
        suffix = "." + spec.name.rsplit(".", 1)[-1].lower() if "." in spec.name else ""
        if suffix not in DOCUMENT_EXTENSIONS:
            raise InvalidInput(
                f"{spec.name!r} is not a supported file type. Supported: "
                + ", ".join(sorted(DOCUMENT_EXTENSIONS))
                + ".",
                code="unsupported_file_type",
                details={"ordinal": ordinal, "name": spec.name},
            )
        if spec.size > limits.max_file_bytes:
            raise InvalidInput(
                f"{spec.name!r} is {spec.size} bytes; the limit is {limits.max_file_bytes} bytes.",
                code="file_too_large",
                details={"ordinal": ordinal, "max_file_bytes": limits.max_file_bytes},
            )
    total = sum(spec.size for spec in request.files)
    if total > limits.max_session_bytes:
        raise InvalidInput(
            f"The files add up to {total} bytes; a session takes at most "
            f"{limits.max_session_bytes} bytes.",
            code="session_too_large",
            details={"max_session_bytes": limits.max_session_bytes, "bytes": total},
        )


def create_session(services: Services, owner: str, body: Any) -> CreateSessionResponse:
    request = parse_manifest(body)
    check_limits(request, services)
    settings, clock = services.settings, services.clock
    now = clock.now()
    sid = clock.new_id()
    expires_in = settings.presign_expiry_s
    tickets = [
        presign_upload(services.s3, settings.bucket, sid, ordinal, spec, expires_in, now)
        for ordinal, spec in enumerate(request.files)
    ]
    ttl = int(now + settings.session_ttl_days * 86_400)
    meta: Item = {
        "PK": meta_pk(sid),
        "SK": META_SK,
        "GSI1PK": f"U#{owner}",
        "GSI1SK": f"{int(now * 1000):014d}#{sid}",
        "sid": sid,
        "owner": owner,
        "name": request.name,
        "job_type": request.job_type,
        "priority": request.priority,
        "notify_on_complete": request.notify.on_complete,
        "state": "active",
        "files_total": len(request.files),
        "files_pending": len(request.files),
        "total": 0,
        "version": 1,
        "created_at": now,
        "upload_deadline": now + expires_in,
        # Listed until the sweeper, after the deadline, fails the files that never arrived.
        "GSI2PK": UPLOAD_INDEX,
        "GSI2SK": index_key(now + expires_in + settings.upload_grace_s, sid),
        "expires_at": ttl,
    }
    declared = [
        {
            "PK": session_pk(sid),
            "SK": declared_file_sk(ordinal),
            "name": spec.name,
            "size": spec.size,
            "content_type": spec.content_type,
            "owner": owner,
            "job_type": request.job_type,
            "priority": request.priority,
            "expires_at": ttl,
        }
        for ordinal, spec in enumerate(request.files)
    ]
    Store(services.ddb, settings.table).put_session(meta, declared)
    return CreateSessionResponse(
        session_id=sid,
        status=SessionStatus.UPLOADING,
        uploads=tickets,
        expires_at=now + expires_in,
    )


def session_status(meta: Item) -> SessionStatus:
    if meta["state"] == "cancelled":
        return SessionStatus.CANCELLED
    if meta.get("done_at") is not None:
        completed = int(meta[counter("completed")])
        if completed == int(meta["total"]):
            return SessionStatus.COMPLETED
        return SessionStatus.FAILED if completed == 0 else SessionStatus.COMPLETED_WITH_ERRORS
    if meta["state"] == "paused":
        return SessionStatus.PAUSED
    if int(meta["files_pending"]) == int(meta["files_total"]):
        return SessionStatus.UPLOADING
    return SessionStatus.PROCESSING


def eta_seconds(meta: Item, now: float) -> float | None:
    """Remaining units ÷ throughput since the first unit finished; None until that is known."""
    first, remaining = meta.get("first_done_at"), int(meta["remaining"])
    if meta.get("done_at") is not None or remaining == 0:
        return 0.0 if meta.get("done_at") is not None else None
    finished = sum(int(meta[counter(s)]) for s in ("completed", "failed", "timeout"))
    elapsed = now - first if first is not None else 0.0
    # The first finish only starts the clock; a rate needs at least one more after it.
    if first is None or finished < 2 or elapsed <= 0:
        return None
    rate = (finished - 1) / elapsed
    return round(remaining / rate, 1)


def summarize(meta: Item, now: float) -> SessionSummary:
    total, remaining = int(meta["total"]), int(meta["remaining"])
    status = session_status(meta)
    files_pending = int(meta["files_pending"])
    progress = 100.0 * (total - remaining) / total if total else 0.0
    if status not in (SessionStatus.COMPLETED, SessionStatus.COMPLETED_WITH_ERRORS) and (
        files_pending
    ):
        # Files still to arrive add units we cannot count yet: never claim 100 % before they do.
        progress = min(progress, 99.0)
    return SessionSummary(
        session_id=str(meta["sid"]),
        name=meta.get("name"),
        status=status,
        job_type=str(meta["job_type"]),
        priority=int(meta["priority"]),
        files_total=int(meta["files_total"]),
        files_received=int(meta["files_total"]) - files_pending,
        total=total,
        counts=Counts(**{s.value: int(meta[counter(s)]) for s in UnitStatus}),
        progress=round(progress, 1),
        eta_seconds=eta_seconds(meta, now),
        timed_out=files_pending > 0
        and meta.get("done_at") is None
        and now > float(meta["upload_deadline"]),
        can_resume=meta["state"] == "paused",
        notified=bool(meta.get("notified", False)),
        version=int(meta["version"]),
        created_at=float(meta["created_at"]),
        first_done_at=meta.get("first_done_at"),
        done_at=meta.get("done_at"),
    )


def owned_meta(store: Store, sid: str, owner: str) -> Item:
    """The session's META item; another user's session is as absent as a missing one."""
    meta = store.load_session(sid) if _plausible_id(sid) else None
    if meta is None or meta.get("owner") != owner:
        raise NotFound(f"No session {sid!r}.", code="session_not_found")
    return meta


def _plausible_id(sid: str) -> bool:
    return 0 < len(sid) <= 64 and sid.isalnum()


def unit_row(item: Item) -> UnitRow:
    error = item.get("error")
    return UnitRow(
        ordinal=ordinal_of(int(item["file"]), int(item["index"])),
        file_ordinal=int(item["file"]),
        member_index=int(item["index"]),
        name=str(item["name"]),
        status=UnitStatus(item["status"]),
        stage=item.get("stage"),
        progress=100.0 if item["status"] == "completed" else float(item.get("progress", 0)),
        attempt=int(item.get("attempt", 0)),
        max_attempts=int(item.get("max_attempts", 0)),
        retryable=bool(item.get("retryable", False)),
        error=error if error else None,
        size=item.get("size"),
        started_at=item.get("started_at"),
        finished_at=item.get("finished_at"),
        duration_ms=item.get("duration_ms"),
        result_key=item.get("result_key"),
        result=item.get("result"),
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
