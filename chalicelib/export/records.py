"""The rows of a results export: every unit of a session in input order, as it is now, joined with
what it was given (a prompts row's prompt and columns) and what it gave back (its result fields).

Units are read a page at a time in ordinal order (the table's sort order) and a prompts session's
rows file is read once, in step with them: memory stays constant in the number of units.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.sources import RowSource

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from chalicelib.store import Store
    from chalicelib.store.items import UnitItem

PAGE = 500
CHUNK_BYTES = 256 * 1024

# The fixed columns, in order; a prompts session adds `row`, `prompt` and the input's other
# columns after `name`, and every session its processor's result fields after `duration_ms`.
UNIT_FIELDS = (
    "ordinal",
    "name",
    "status",
    "attempt",
    "max_attempts",
    "error_code",
    "error_message",
    "duration_ms",
    "finished_at",
)
ROW_FIELDS = ("row", "prompt")


@dataclass(frozen=True)
class InputRow:
    number: int
    prompt: str
    columns: dict[str, str]


@dataclass(frozen=True)
class ResultRecord:
    unit: UnitItem
    row: InputRow | None = None
    # Filled in for ZIP exports only: the unit's stored result document.
    document: bytes | None = field(default=None, compare=False)

    def nested(self) -> dict[str, Any]:
        """The record for JSON and JSONL: the input row and the result as objects."""
        unit = self.unit
        record: dict[str, Any] = {"ordinal": unit.ref.ordinal, "name": unit.name}
        if self.row is not None:
            record |= {
                "row": self.row.number,
                "prompt": self.row.prompt,
                "columns": self.row.columns,
            }
        record |= {
            "status": unit.status.value,
            "attempt": unit.attempt,
            "max_attempts": unit.max_attempts,
            "error": unit.error.model_dump(mode="json") if unit.error else None,
            "duration_ms": unit.duration_ms,
            "finished_at": finished_at(unit),
            "result": unit.result,
        }
        return record

    def flat(self, layout: Layout) -> list[Any]:
        """The record as one table row, in `layout`'s column order."""
        unit = self.unit
        values: dict[str, Any] = {
            "ordinal": unit.ref.ordinal,
            "name": unit.name,
            "status": unit.status.value,
            "attempt": unit.attempt,
            "max_attempts": unit.max_attempts,
            "error_code": unit.error.code if unit.error else None,
            "error_message": unit.error.message if unit.error else None,
            "duration_ms": unit.duration_ms,
            "finished_at": finished_at(unit),
        }
        if self.row is not None:
            values["row"] = self.row.number
            values["prompt"] = self.row.prompt
            for name, header in layout.input_columns.items():
                values[header] = self.row.columns.get(name)
        result = unit.result or {}
        for name in layout.result_fields:
            values[f"{layout.result_prefix}{name}"] = result.get(name)
        return [values.get(header) for header in layout.headers]


@dataclass(frozen=True)
class Layout:
    """The table's columns: fixed ones, the input's own (renamed where they would clash) and the
    processor's result fields."""

    rows: bool
    # The input column's name → its header in the export.
    input_columns: dict[str, str]
    result_fields: tuple[str, ...]
    result_prefix: str = ""

    @classmethod
    def of(cls, rows: bool, input_columns: list[str], result_fields: tuple[str, ...]) -> Layout:
        taken = set(UNIT_FIELDS) | (set(ROW_FIELDS) if rows else set())
        prefix = "result_" if taken & set(result_fields) else ""
        taken |= {f"{prefix}{name}" for name in result_fields}
        headers: dict[str, str] = {}
        for name in input_columns:
            header = name
            while header in taken or header in headers.values():
                header = f"input_{header}"
            headers[name] = header
        return cls(rows, headers, result_fields, prefix)

    @property
    def headers(self) -> list[str]:
        head = ["ordinal", "name"]
        if self.rows:
            head += [*ROW_FIELDS, *self.input_columns.values()]
        tail = [name for name in UNIT_FIELDS if name not in ("ordinal", "name")]
        return head + tail + [f"{self.result_prefix}{name}" for name in self.result_fields]


def finished_at(unit: UnitItem) -> str | None:
    """When a finished unit ended, in ISO 8601 (UTC); None while it has not."""
    if not unit.terminal or unit.finished_at is None:
        return None
    return datetime.fromtimestamp(unit.finished_at, UTC).isoformat(timespec="milliseconds")


def units_in_order(store: Store, sid: str) -> Iterator[UnitItem]:
    start = None
    while True:
        units, start = store.list_units(sid, limit=PAGE, start=start)
        yield from units
        if start is None:
            return


def lines(s3: S3Client, bucket: str, key: str) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of every line of an object, read in chunks."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    pending, offset = b"", 0
    for chunk in body.iter_chunks(CHUNK_BYTES):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield offset, line
            offset += len(line) + 1
    if pending:
        yield offset, pending


def parse_input_row(line: bytes) -> InputRow:
    raw = json.loads(line)
    return InputRow(
        number=int(raw["row"]),
        prompt=str(raw["prompt"]),
        columns={str(k): str(v) for k, v in dict(raw.get("columns") or {}).items()},
    )


def first_row(s3: S3Client, bucket: str, store: Store, sid: str) -> InputRow | None:
    """The first row of a prompts session's input (its columns name the table's), or None."""
    units, _ = store.list_units(sid, limit=1, start=None)
    if not units or not isinstance(units[0].source, RowSource):
        return None
    source = units[0].source
    ranged = s3.get_object(
        Bucket=bucket, Key=source.key, Range=f"bytes={source.start}-{source.end - 1}"
    )
    return parse_input_row(ranged["Body"].read())


class RowReader:
    """The rows of one rows file, read forward once: `at(start)` is the row beginning at byte
    `start` (units ask in increasing order)."""

    def __init__(self, s3: S3Client, bucket: str, key: str) -> None:
        self.key = key
        self._lines = lines(s3, bucket, key)
        self._current: tuple[int, bytes] | None = next(self._lines, None)

    def at(self, start: int) -> InputRow | None:
        while self._current is not None and self._current[0] < start:
            self._current = next(self._lines, None)
        if self._current is None or self._current[0] != start:
            return None
        return parse_input_row(self._current[1])


def records(s3: S3Client, bucket: str, store: Store, sid: str) -> Iterator[ResultRecord]:
    """Every unit of the session in input order; a prompts unit with its input row."""
    reader: RowReader | None = None
    for unit in units_in_order(store, sid):
        source = unit.source
        if not isinstance(source, RowSource):
            yield ResultRecord(unit)
            continue
        if reader is None or reader.key != source.key:
            reader = RowReader(s3, bucket, source.key)
        yield ResultRecord(unit, row=reader.at(source.start))
