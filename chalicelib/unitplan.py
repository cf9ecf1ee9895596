"""Planning a file's units: a plain document is one unit, a zip one unit per member.

`new_unit` is the one builder of a unit item: pending with a source to read, or already failed
or skipped when the fan-out can tell (a damaged zip, an encrypted member, a picture).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.errors import ChuteError, PermanentError, UnitSkipped
from chalicelib.filetypes import MAX_DOCUMENT_BYTES, document_verdict
from chalicelib.humanize import human_bytes
from chalicelib.models import UnitError, UnitStatus
from chalicelib.plans import Plan
from chalicelib.sources import ObjectSource, UnitSource, ZipMemberSource
from chalicelib.store.items import DeclaredFile, UnitItem
from chalicelib.zipindex import ZipMember, read_central_directory
from chalicelib.zipmembers import is_os_junk, member_problem

if TYPE_CHECKING:
    from chalicelib.config import WorkSettings
    from chalicelib.services import Services


def new_unit(
    declared: DeclaredFile,
    index: int,
    name: str,
    now: float,
    *,
    source: UnitSource | None = None,
    problem: ChuteError | None = None,
    size: int | None = None,
    content_type: str | None = None,
    archive: str | None = None,
    max_attempts: int = 3,
) -> UnitItem:
    """A unit as the fan-out creates it: pending with a source, or ended by `problem`."""
    status = UnitStatus.PENDING
    if problem is not None:
        status = UnitStatus.SKIPPED if isinstance(problem, UnitSkipped) else UnitStatus.FAILED
    return UnitItem(
        sid=declared.sid,
        file=declared.file,
        index=index,
        name=name,
        status=status,
        max_attempts=max_attempts,
        content_type=content_type or declared.content_type,
        size=size,
        archive=archive,
        source=source if problem is None else None,
        error=UnitError.of(problem) if problem is not None else None,
        created_at=now,
        finished_at=now if problem is not None else None,
        expires_at=declared.expires_at,
    )


def upload_mismatch(declared: DeclaredFile, name: str, size: int) -> PermanentError | None:
    """Why the object that arrived is not the file the manifest declared (S3 does not enforce
    a presigned POST's conditions locally), or None."""
    if name == declared.name and size == declared.size:
        return None
    return PermanentError(
        f"The uploaded file does not match the manifest: expected {declared.name!r} of "
        f"{human_bytes(declared.size)}, received {name!r} of {human_bytes(size)}.",
        code="upload_mismatch",
        details={"expected_size": declared.size, "received_size": size},
    )


def plan_object(
    services: Services[WorkSettings], key: str, size: int, name: str, declared: DeclaredFile
) -> Plan:
    now = services.clock.now()
    max_attempts = services.jobs.get(declared.job_type).max_attempts

    def whole_file(problem: ChuteError | None = None) -> Plan:
        source = ObjectSource(key=key, size=size)
        unit = new_unit(
            declared, 0, name, now, source=source, problem=problem, size=size,
            max_attempts=max_attempts,
        )  # fmt: skip
        return Plan(units=[unit])

    mismatch = upload_mismatch(declared, name, size)
    if mismatch is not None:
        return whole_file(mismatch)
    if not name.lower().endswith(".zip"):
        return whole_file()
    try:
        members = [
            m
            for m in read_central_directory(size, lambda a, b: _read_range(services, key, a, b))
            # Directories and OS junk (__MACOSX/, .DS_Store …) are not units at all.
            if not m.is_dir and not is_os_junk(m.name)
        ]
    except PermanentError as problem:
        return whole_file(problem)
    if not members:
        return whole_file(PermanentError("The zip archive holds no files.", code="zip_empty"))
    limit = services.settings.max_units_per_file
    if len(members) > limit:
        return whole_file(
            PermanentError(
                f"The zip archive holds {len(members):,} files; the limit is {limit:,}. "
                "Split it into smaller archives.",
                code="zip_too_many_members",
            )
        )
    return Plan(
        units=[_member_unit(key, declared, i, m, now, max_attempts) for i, m in enumerate(members)]
    )


def _member_unit(
    key: str,
    declared: DeclaredFile,
    index: int,
    member: ZipMember,
    now: float,
    max_attempts: int,
) -> UnitItem:
    problem: ChuteError | None = member_problem(member, max_bytes=MAX_DOCUMENT_BYTES)
    if problem is None and document_verdict(member.name) == "unsupported":
        problem = UnitSkipped(
            "chute reads text documents and PDFs; this kind of file was skipped.",
            code="unsupported_type",
        )
    return new_unit(
        declared,
        index,
        member.name,
        now,
        source=ZipMemberSource.of(key, member),
        problem=problem,
        size=member.uncompressed_size,
        content_type="application/octet-stream",
        archive=declared.name,
        max_attempts=max_attempts,
    )


def _read_range(services: Services[WorkSettings], key: str, start: int, end: int) -> bytes:
    response = services.s3.get_object(
        Bucket=services.settings.bucket, Key=key, Range=f"bytes={start}-{end - 1}"
    )
    return response["Body"].read()
