"""Presigned POSTs: the browser sends each file's bytes straight to S3 under a fixed key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.models import FileSpec, UploadTicket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

UPLOAD_PREFIX = "uploads/"


def upload_key(sid: str, ordinal: int, name: str) -> str:
    return f"{UPLOAD_PREFIX}{sid}/{ordinal:05d}/{name}"


def parse_upload_key(key: str) -> tuple[str, int, str] | None:
    """(session id, ordinal, name) of an upload key, or None when it is not one of ours."""
    if not key.startswith(UPLOAD_PREFIX):
        return None
    parts = key[len(UPLOAD_PREFIX) :].split("/", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[0] or not parts[2]:
        return None
    return parts[0], int(parts[1]), parts[2]


def presign_upload(
    s3: S3Client, bucket: str, sid: str, ordinal: int, spec: FileSpec, expires_in: int, now: float
) -> UploadTicket:
    key = upload_key(sid, ordinal, spec.name)
    # AWS enforces these conditions; moto does not (DESIGN §8), so the fan-out checks again.
    post = s3.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": spec.content_type},
        Conditions=[
            {"Content-Type": spec.content_type},
            ["content-length-range", spec.size, spec.size],
        ],
        ExpiresIn=expires_in,
    )
    return UploadTicket(
        ordinal=ordinal,
        name=spec.name,
        key=key,
        url=post["url"],
        fields={k: str(v) for k, v in post["fields"].items()},
        expires_at=now + expires_in,
    )
