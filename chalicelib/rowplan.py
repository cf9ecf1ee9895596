"""Planning a prompts batch: one unit per row, decided at fan-out before any unit exists.

The batch file is read once (it is at most 10 MB), parsed and checked as a whole (chalicelib.batch);
its rows are written, normalised, to `inputs/{sid}/rows.jsonl`, and each unit's source is its row's
byte range there, read by the worker with one ranged GET. A batch refused as a whole is a plan with
no units and the reason: the session ends `rejected`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.batch import (
    MAX_BATCH_BYTES,
    BatchRejected,
    BatchRow,
    parse_batch,
    read_row,
    rows_jsonl,
)
from chalicelib.errors import ChuteError
from chalicelib.filetypes import INLINE_BATCH_NAME
from chalicelib.humanize import human_bytes
from chalicelib.models import PromptOptions, UnitError
from chalicelib.plans import Plan
from chalicelib.prompttemplate import check_template
from chalicelib.sources import RowSource
from chalicelib.unitplan import new_unit, upload_mismatch

if TYPE_CHECKING:
    from chalicelib.config import WorkSettings
    from chalicelib.services import Services
    from chalicelib.store.items import DeclaredFile

ROWS_TYPE = "application/x-ndjson"
NAME_CHARS = 80  # a unit's name: the start of its prompt, on one line


def rows_key(sid: str) -> str:
    return f"inputs/{sid}/rows.jsonl"


def rejected(problem: ChuteError) -> Plan:
    return Plan(units=[], rejected=UnitError.of(problem))


def plan_rows(
    services: Services[WorkSettings],
    key: str,
    size: int,
    name: str,
    declared: DeclaredFile,
    options: PromptOptions,
) -> Plan:
    """The units of a prompts batch, or its rejection."""
    mismatch = upload_mismatch(declared, name, size)
    if mismatch is not None:
        return rejected(mismatch)
    if size > MAX_BATCH_BYTES:  # checked before reading a byte of it
        return rejected(
            BatchRejected(
                f"The batch is {human_bytes(size)}; a prompts batch may be at most "
                f"{human_bytes(MAX_BATCH_BYTES)}. Split it into smaller files.",
                code="file_too_large",
                details={"max_file_bytes": MAX_BATCH_BYTES, "bytes": size},
            )
        )
    settings = services.settings
    data = services.s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read()
    try:
        if name == INLINE_BATCH_NAME:
            # Given inline: the API checked and normalised it; the object is the rows file.
            rows_at, spans = key, line_spans(data)
            rows = [read_row(data[start:end]) for start, end in spans]
            check_template(options.template, {"prompt"})
        else:
            batch = parse_batch(data, prompt_column=options.prompt_column, sheet=options.sheet)
            rows = batch.rows
            check_template(options.template, {"prompt", *batch.columns})
            body, spans = rows_jsonl(batch)
            rows_at = rows_key(declared.sid)
            services.s3.put_object(
                Bucket=settings.bucket, Key=rows_at, Body=body, ContentType=ROWS_TYPE
            )
    except BatchRejected as problem:
        return rejected(problem)
    now = services.clock.now()
    max_attempts = services.jobs.get(declared.job_type).max_attempts
    units = [
        new_unit(
            declared,
            index,
            unit_name(row),
            now,
            source=RowSource(key=rows_at, start=start, end=end),
            size=end - start,
            content_type=ROWS_TYPE,
            max_attempts=max_attempts,
        )
        for index, (row, (start, end)) in enumerate(zip(rows, spans, strict=True))
    ]
    return Plan(units=units)


def line_spans(data: bytes) -> list[tuple[int, int]]:
    """The (start, end) byte range of every line of a rows file, its newline included."""
    spans, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        spans.append((start, end))
        start = end
    return spans


def unit_name(row: BatchRow) -> str:
    """What the unit is called in listings: its row number and the start of its prompt."""
    flat = " ".join(row.prompt.split())
    if len(flat) > NAME_CHARS:
        flat = flat[: NAME_CHARS - 1] + "…"
    return f"row {row.number}: {flat}"
