"""Upload fan-out: one S3 ObjectCreated event → unit items, session totals, work messages.

Nothing the client sent is trusted (moto does not enforce presigned POST conditions, DESIGN §8):
the key must name a declared file of a live session, and the stored size must be the declared one.
Anything else becomes a failed unit with a clear error, so the session still finishes.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

from chalicelib.errors import PermanentError
from chalicelib.log import logger
from chalicelib.models import UnitSource, UnitStatus, WorkMessage
from chalicelib.notify import complete_if_done
from chalicelib.presign import parse_upload_key
from chalicelib.queues import send_work
from chalicelib.services import Services
from chalicelib.store import Item, NewUnit, Store
from chalicelib.zipindex import ZipMember, read_central_directory


def handle_upload_message(services: Services, body: str) -> None:
    """One SQS message from the uploads queue: an S3 event notification (possibly a test event)."""
    event = json.loads(body)
    if event.get("Event") == "s3:TestEvent":
        return
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        obj = record["s3"]["object"]
        # Keys arrive URL-encoded (moto even encodes "/" as %2F).
        fan_out_object(services, unquote_plus(obj["key"]), int(obj["size"]))


def fan_out_object(services: Services, key: str, size: int) -> None:
    store = Store(services.ddb, services.settings.table)
    parsed = parse_upload_key(key)
    if parsed is None:
        logger.warning("ignoring an object outside any session", extra={"key": key})
        return
    sid, file, name = parsed
    logger.append_keys(session_id=sid, file=file)
    try:
        declared = store.get_declared_file(sid, file)
        if declared is None:
            logger.warning("ignoring an upload for no declared file", extra={"key": key})
            return
        if declared.get("units_sent"):
            logger.info("duplicate upload event; units already created", extra={"key": key})
            return
        units = plan_units(services, key, size, name, file, declared)
        now = services.clock.now()
        recovering = "fanned_out_at" in declared or not store.claim_file(sid, file, units, now)
        store.put_units(sid, units, now, recovering=recovering)
        messages = [work_message(sid, declared, key, u) for u in units if u.status == "pending"]
        send_work(services, messages, priority=int(declared["priority"]))
        store.mark_file_sent(sid, file)
        logger.info(
            "fanned out",
            extra={"units": len(units), "queued": len(messages), "recovering": recovering},
        )
        complete_if_done(services, store, sid)
    finally:
        logger.remove_keys(["session_id", "file"])


def plan_units(
    services: Services, key: str, size: int, name: str, file: int, declared: Item
) -> list[NewUnit]:
    settings = services.settings
    common = {"max_attempts": settings.max_attempts, "content_type": declared["content_type"]}
    if name != declared["name"] or size != int(declared["size"]):
        problem = PermanentError(
            f"The uploaded file does not match the manifest: expected {declared['name']!r} of "
            f"{declared['size']} bytes, received {name!r} of {size} bytes.",
            code="upload_mismatch",
            details={"expected_size": int(declared["size"]), "received_size": size},
        )
        return [failed_unit(file, 0, name, problem, {**common, "size": size})]
    if not name.lower().endswith(".zip"):
        source = UnitSource(key=key, kind="object", uncompressed_size=size)
        return [pending_unit(file, 0, name, source, {**common, "size": size})]
    try:
        members = [
            m
            for m in read_central_directory(size, lambda a, b: _read_range(services, key, a, b))
            if not m.is_dir
        ]
    except PermanentError as problem:
        return [failed_unit(file, 0, name, problem, {**common, "size": size})]
    if not members:
        empty = PermanentError("The zip archive holds no files.", code="zip_empty")
        return [failed_unit(file, 0, name, empty, {**common, "size": size})]
    if len(members) > settings.max_units_per_file:
        too_many = PermanentError(
            f"The zip archive holds {len(members)} files; the limit is "
            f"{settings.max_units_per_file}.",
            code="zip_too_many_members",
        )
        return [failed_unit(file, 0, name, too_many, {**common, "size": size})]
    return [member_unit(services, key, file, i, m, declared) for i, m in enumerate(members)]


def member_unit(
    services: Services, key: str, file: int, index: int, member: ZipMember, declared: Item
) -> NewUnit:
    attrs: Item = {
        "max_attempts": services.settings.max_attempts,
        "content_type": "application/octet-stream",
        "size": member.uncompressed_size,
        "archive": declared["name"],
    }
    problem: PermanentError | None = None
    if member.encrypted:
        problem = PermanentError("This file is encrypted inside the zip.", code="zip_encrypted")
    elif member.method not in (0, 8):
        problem = PermanentError(
            f"This file uses zip compression method {member.method}; only stored and deflate "
            "are supported.",
            code="zip_unsupported_method",
        )
    elif member.uncompressed_size > services.settings.max_member_bytes:
        problem = PermanentError(
            f"This file is {member.uncompressed_size} bytes uncompressed; the limit is "
            f"{services.settings.max_member_bytes}.",
            code="member_too_large",
        )
    if problem is not None:
        return failed_unit(file, index, member.name, problem, attrs)
    source = UnitSource(
        key=key,
        kind="zip_member",
        header_offset=member.header_offset,
        compressed_size=member.compressed_size,
        uncompressed_size=member.uncompressed_size,
        method=member.method,
        crc32=member.crc32,
    )
    return pending_unit(file, index, member.name, source, attrs)


def pending_unit(file: int, index: int, name: str, source: UnitSource, attrs: Item) -> NewUnit:
    return NewUnit(file, index, name, UnitStatus.PENDING, {**attrs, "source": source.model_dump()})


def failed_unit(file: int, index: int, name: str, problem: PermanentError, attrs: Item) -> NewUnit:
    error = {"code": problem.code, "message": problem.message, "details": problem.details}
    return NewUnit(
        file, index, name, UnitStatus.FAILED, {**attrs, "error": error, "retryable": False}
    )


def work_message(sid: str, declared: Item, key: str, unit: NewUnit) -> WorkMessage:
    return WorkMessage(
        sid=sid,
        owner=str(declared["owner"]),
        file=unit.file,
        index=unit.index,
        attempt=1,
        name=unit.name,
        content_type=str(unit.attrs["content_type"]),
        job_type=str(declared["job_type"]),
        priority=int(declared["priority"]),
        source=UnitSource.model_validate(
            unit.attrs.get("source") or {"key": key, "kind": "object"}
        ),
    )


def _read_range(services: Services, key: str, start: int, end: int) -> bytes:
    response = services.s3.get_object(
        Bucket=services.settings.bucket, Key=key, Range=f"bytes={start}-{end - 1}"
    )
    return response["Body"].read()
