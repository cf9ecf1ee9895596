"""The normalised rows file, `inputs/{sid}/rows.jsonl`: one JSON line per row, in input order.

Each unit's source is its line's byte range, so a worker reads its row with one ranged GET, and the
results export reads the whole file once, in step with the units.
"""

from __future__ import annotations

import json

from chalicelib.batch.limits import BatchRejected, BatchRow, ParsedBatch


def rows_jsonl(batch: ParsedBatch) -> tuple[bytes, list[tuple[int, int]]]:
    """The file's bytes and each row's (start, end) in it, its newline included."""
    lines = [
        json.dumps(
            {"row": row.number, "prompt": row.prompt, "columns": row.columns},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        + b"\n"
        for row in batch.rows
    ]
    spans, at = [], 0
    for line in lines:
        spans.append((at, at + len(line)))
        at += len(line)
    return b"".join(lines), spans


def read_row(line: bytes) -> BatchRow:
    """One line of the rows file (its newline or not)."""
    try:
        raw = json.loads(line)
        return BatchRow(
            number=int(raw["row"]),
            prompt=str(raw["prompt"]),
            columns={str(k): str(v) for k, v in dict(raw.get("columns") or {}).items()},
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BatchRejected("A row of the batch could not be read.", code="row_unreadable") from exc
