"""Results exports (DESIGN §6): every unit of a session in input order, at any moment, as CSV,
JSON, JSONL, XLSX or ZIP, written to S3 once per session version and handed out as a presigned GET.

The export is built in a temporary file (openpyxl and zipfile want one) and sent by a managed
multipart upload that reads its parts from that file: memory stays constant in the number of
units. A session whose version has not
changed since an export was made gets that export again; a running session gets a new one whenever
a unit moved, and its unfinished units say where they stand (`pending`, `running`).
"""

from __future__ import annotations

import tempfile
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from chalicelib.errors import InvalidInput
from chalicelib.export.records import Layout, first_row, records
from chalicelib.export.writers import (
    CONTENT_TYPES,
    FORMATS,
    ExportFormat,
    write_csv,
    write_json,
    write_jsonl,
    write_xlsx,
    write_zip,
)
from chalicelib.processors import registry

if TYPE_CHECKING:
    from chalicelib.config import CoreSettings
    from chalicelib.services import Services
    from chalicelib.store.items import SessionView

__all__ = ["FORMATS", "Export", "ExportFormat", "export_key", "export_results", "parse_format"]

LINK_EXPIRY_S = 300
# Parts of 8 MiB, two in flight: an export's upload holds at most ~16 MiB of it in memory.
UPLOAD = TransferConfig(
    multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024, max_concurrency=2
)


@dataclass(frozen=True)
class Export:
    key: str
    format: ExportFormat
    rows: int | None  # None: an export made earlier was reused
    url: str


def parse_format(raw: str | None) -> ExportFormat:
    value = (raw or "csv").lower()
    for fmt in FORMATS:
        if fmt == value:
            return fmt
    raise InvalidInput(
        f"format must be one of {', '.join(FORMATS)}, not {raw!r}.",
        code="invalid_format",
        details={"formats": list(FORMATS)},
    )


def export_key(sid: str, version: int, fmt: ExportFormat) -> str:
    return f"results/{sid}/exports/v{version}.{fmt}"


def export_results(
    services: Services[CoreSettings], view: SessionView, fmt: ExportFormat
) -> Export:
    """The session's export in `fmt` as of its current version, made now unless it exists."""
    settings, s3 = services.settings, services.s3
    key = export_key(view.sid, view.version, fmt)
    rows: int | None = None
    if not _exists(services, key):
        with tempfile.NamedTemporaryFile(prefix="chute-export-", suffix=f".{fmt}") as out:
            rows = write_export(services, view, fmt, out)
            out.flush()
            # By file name, so the transfer reads each part from disk as it sends it (from a
            # file object it reads the parts into memory first): memory stays within
            # UPLOAD's parts in flight whatever the export's size.
            s3.upload_file(
                out.name,
                settings.bucket,
                key,
                ExtraArgs={"ContentType": CONTENT_TYPES[fmt]},
                Config=UPLOAD,
            )
    url = s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": settings.bucket,
            "Key": key,
            "ResponseContentDisposition": disposition(view, fmt),
        },
        ExpiresIn=LINK_EXPIRY_S,
    )
    return Export(key=key, format=fmt, rows=rows, url=url)


def write_export(
    services: Services[CoreSettings], view: SessionView, fmt: ExportFormat, out: Any
) -> int:
    """Writes every unit of the session in `fmt` to `out`; how many."""
    settings, s3, store = services.settings, services.s3, services.store
    job = services.jobs.get(view.meta.job_type)
    processor = registry.get(job.processor)
    fields = processor.fields if processor else ()
    stream = records(s3, settings.bucket, store, view.sid)
    if fmt == "jsonl":
        return write_jsonl(stream, out)
    if fmt == "json":
        header = {
            "session_id": view.sid,
            "name": view.meta.name,
            "job_type": view.meta.job_type,
            "version": view.version,
        }
        return write_json(stream, header, out)
    first = first_row(s3, settings.bucket, store, view.sid) if job.rows else None
    layout = Layout.of(job.rows, list(first.columns) if first else [], fields)
    if fmt == "csv":
        return write_csv(stream, layout, out)
    if fmt == "xlsx":
        return write_xlsx(stream, layout, out)

    def fetch(key: str) -> bytes | None:
        try:
            return s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _missing(exc):
                return None  # expired with its session's objects: the table row says the rest
            raise

    return write_zip(stream, layout, fetch, out)


def disposition(view: SessionView, fmt: ExportFormat) -> str:
    """`attachment` named after the session, ASCII for old browsers and UTF-8 for the rest."""
    base = (view.meta.name or view.sid).strip() or view.sid
    name = f"{base} results.{fmt}"
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = (
        "".join(c if c.isalnum() or c in " ._-" else "_" for c in ascii_name) or f"results.{fmt}"
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _exists(services: Services[CoreSettings], key: str) -> bool:
    try:
        services.s3.head_object(Bucket=services.settings.bucket, Key=key)
    except ClientError as exc:
        if _missing(exc):
            return False
        raise
    return True


def _missing(exc: ClientError) -> bool:
    """S3's "no such object": NoSuchKey from a GET, a bare 404 from a HEAD."""
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")
