"""CSV, XLSX and text batches to rows: the header, the prompt column, the other columns.

How a text batch is told apart (the bytes decide, never the name):
- its first line holds a cell equal to the prompt column (case and spaces aside) → a CSV table,
  even of one column: a file whose first line is `prompt` has a header, not a first prompt, and
  its commas are part of the prompts (quoted cells are unquoted as in any CSV);
- its first line has no delimiter (comma, semicolon, tab) → one prompt per line;
- its first line is delimited, reads as a header (no cell after the first starts with a space, as
  prose does after a comma) and the next lines have as many fields (up to 5 looked at) → a table
  without the prompt column, refused with the columns it has;
- otherwise → prose that happens to hold commas: one prompt per line.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator, Sequence

from chalicelib.batch.detect import decode, kind_of
from chalicelib.batch.limits import (
    MAX_BATCH_BYTES,
    BatchRejected,
    ParsedBatch,
    RowCollector,
    too_large,
)
from chalicelib.batch.xlsxrows import sheet_rows

_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
_LOOKAHEAD = 5
_ONE_COLUMN = "\x1f"  # a delimiter no prompt holds: the ASCII unit separator
# A cell may be as long as the whole batch; the prompt column's own limit is checked per row.
csv.field_size_limit(MAX_BATCH_BYTES + 1)


def parse_batch(
    data: bytes, *, prompt_column: str = "prompt", sheet: str | None = None
) -> ParsedBatch:
    if len(data) > MAX_BATCH_BYTES:
        raise too_large(len(data))
    if not data.strip():
        raise BatchRejected("The batch file is empty.", code="empty_file")
    if kind_of(data) == "xlsx":
        name, rows = sheet_rows(data, sheet)
        return _table("xlsx", rows, prompt_column, encoding=None, dialect=None, sheet=name)
    text, encoding = decode(data)
    if not text.strip():
        raise BatchRejected("The batch file is empty.", code="empty_file")
    delimiter = _delimiter(text, prompt_column)
    if delimiter is None:
        return _lines("txt", text, encoding)
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return _table(
        "csv",
        records,
        prompt_column,
        encoding=encoding,
        dialect=_DELIMITERS.get(delimiter),
        sheet=None,
    )


def rows_from_prompts(prompts: Sequence[str]) -> ParsedBatch:
    collector = RowCollector()
    for number, prompt in enumerate(prompts, start=1):
        collector.add(number, prompt)
    return ParsedBatch("inline", collector.finish(), [], None, None, None, None, collector.blank)


def rows_from_text(text: str) -> ParsedBatch:
    if not text.strip():
        raise BatchRejected("No prompts were given: the text is empty.", code="empty_file")
    return _lines("inline", text, None)


def _lines(kind: str, text: str, encoding: str | None) -> ParsedBatch:
    collector = RowCollector()
    for number, line in enumerate(text.split("\n"), start=1):
        collector.add(number, line.removesuffix("\r"))
    rows = collector.finish()
    return ParsedBatch(kind, rows, [], None, encoding, None, None, collector.blank)  # type: ignore[arg-type]


def _first_record(text: str, delimiter: str) -> list[str]:
    return next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])


def _delimiter(text: str, prompt_column: str) -> str | None:
    """The CSV delimiter, or None for a text batch (see the module's rules)."""
    first_line = text.split("\n", 1)[0]
    wanted = prompt_column.strip().casefold()
    if first_line.strip().strip('"').strip().casefold() == wanted:
        # One column: its cells may hold commas; quoted ones (multi-line) are still unquoted.
        return _ONE_COLUMN
    candidates = sorted(_DELIMITERS, key=lambda d: -first_line.count(d))
    for delimiter in candidates:
        header = _first_record(text, delimiter)
        if any(cell.strip().casefold() == wanted for cell in header):
            return delimiter
    used = [d for d in candidates if d in first_line]
    if not used:
        return None
    delimiter = used[0]
    records = list(
        itertools.islice(
            csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), _LOOKAHEAD + 1
        )
    )
    header, following = records[0], [r for r in records[1:] if r]
    reads_as_header = not any(cell.startswith(" ") for cell in header[1:])
    if reads_as_header and following and all(len(r) == len(header) for r in following):
        raise BatchRejected(
            f"The table has no {prompt_column!r} column. Its columns: "
            + ", ".join(repr(c) for c in header)
            + ". Name the column with the prompts, or choose it with the prompt_column option.",
            code="no_prompt_column",
            details={"prompt_column": prompt_column, "columns": header},
        )
    return None


def _header_names(cells: Sequence[str]) -> list[str]:
    """Header cells as column names: blank ones numbered, repeated ones suffixed."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for position, cell in enumerate(cells, start=1):
        name = cell.strip() or f"column {position}"
        count = seen.get(name.casefold(), 0) + 1
        seen[name.casefold()] = count
        names.append(name if count == 1 else f"{name} ({count})")
    return names


def _table(
    kind: str,
    records: Iterable[list[str]],
    prompt_column: str,
    *,
    encoding: str | None,
    dialect: str | None,
    sheet: str | None,
) -> ParsedBatch:
    rows: Iterator[list[str]] = iter(records)
    try:
        header_cells = next(rows)
    except StopIteration:
        raise BatchRejected("The batch file is empty.", code="empty_file") from None
    while header_cells and not header_cells[-1].strip():
        header_cells = header_cells[:-1]  # a sheet's trailing empty cells are no columns
    names = _header_names(header_cells)
    wanted = prompt_column.strip().casefold()
    at = next((i for i, cell in enumerate(header_cells) if cell.strip().casefold() == wanted), None)
    if at is None:
        raise BatchRejected(
            f"The table has no {prompt_column!r} column. Its columns: "
            + ", ".join(repr(n) for n in names)
            + ". Name the column with the prompts, or choose it with the prompt_column option.",
            code="no_prompt_column",
            details={"prompt_column": prompt_column, "columns": names},
        )
    collector = RowCollector(column=names[at])
    records_seen = 0
    try:
        for number, cells in enumerate(rows, start=2):
            records_seen += 1
            extra = cells[len(names) :]
            if any(c.strip() for c in extra):
                raise BatchRejected(
                    f"Row {number} has {len(cells)} cells; the header names {len(names)} "
                    "columns. Check its quotes and delimiters.",
                    code="csv_malformed",
                    details={"row": number, "cells": len(cells), "columns": len(names)},
                )
            padded = list(cells[: len(names)]) + [""] * (len(names) - len(cells))
            others = {n: v for i, (n, v) in enumerate(zip(names, padded, strict=True)) if i != at}
            collector.add(number, padded[at], others)
    except csv.Error as exc:
        raise BatchRejected(
            f"The CSV could not be read: {exc}.", code="csv_malformed", details={"reason": str(exc)}
        ) from None
    if records_seen == 0:
        raise BatchRejected(
            "The batch has a header row and nothing else: add one prompt per row below it.",
            code="header_only",
        )
    return ParsedBatch(
        kind,  # type: ignore[arg-type]
        collector.finish(),
        names,
        names[at],
        encoding,
        dialect,
        sheet,
        collector.blank,
    )
