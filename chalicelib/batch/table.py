"""A table (CSV records or sheet rows, as lists of cell text) to a batch: the header names the
columns, one of them holds the prompts, the others are kept beside each prompt as metadata.

Shared by CSV and XLSX so both follow one set of rules:
- the header is the first record; its trailing empty cells are no columns (spreadsheets and
  Excel's CSV export leave them), an empty name inside it becomes "column N", a repeated one gets
  " (2)", " (3)"...;
- the prompt column is matched trimmed and case-insensitively, and reported as spelled (trimmed);
- a row with fewer cells than the header has the missing ones empty; a row with a non-empty cell
  past the header is refused (`csv_malformed`, with the row): it means a stray delimiter or an
  unquoted comma, and guessing which cell moved would put the wrong text in front of a model.
  Empty cells past the header are tolerated (trailing delimiters are common);
- a header and no row with any text is `header_only`; rows with text but no prompt is `no_prompts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chalicelib.batch.limits import BatchKind, BatchRejected, ParsedBatch, RowCollector, empty_file


def header_names(cells: Sequence[str]) -> list[str]:
    """Header cells as column names: trimmed, blank ones numbered, repeated ones suffixed."""
    names: list[str] = []
    taken: set[str] = set()
    for position, cell in enumerate(cells, start=1):
        base = cell.strip() or f"column {position}"
        name, count = base, 1
        while name.casefold() in taken:
            count += 1
            name = f"{base} ({count})"
        taken.add(name.casefold())
        names.append(name)
    return names


def no_prompt_column(prompt_column: str, columns: list[str]) -> BatchRejected:
    return BatchRejected(
        f"The table has no {prompt_column!r} column. Its columns: "
        + ", ".join(repr(c) for c in columns)
        + ". Name the column that holds the prompts "
        + f"{prompt_column!r}, or choose it with the prompt_column option.",
        code="no_prompt_column",
        details={"prompt_column": prompt_column, "columns": columns},
    )


def prompt_index(cells: Sequence[str], prompt_column: str) -> int | None:
    wanted = prompt_column.strip().casefold()
    return next((i for i, cell in enumerate(cells) if cell.strip().casefold() == wanted), None)


def _too_wide(kind: BatchKind, number: int, cells: Sequence[str], width: int) -> BatchRejected:
    if kind == "xlsx":
        last = max(i for i, c in enumerate(cells) if c.strip()) + 1
        message = (
            f"Row {number} has a value in column {last}, past the header's {width} columns. "
            "Give that column a header in row 1, or clear the cell."
        )
    else:
        message = (
            f"Row {number} has {len(cells)} cells; the header names {width} columns. Check the "
            "row's quotes and delimiters (a cell holding a delimiter must be quoted)."
        )
    return BatchRejected(
        message,
        code="csv_malformed",
        details={"row": number, "cells": len(cells), "columns": width},
    )


def table_batch(
    kind: BatchKind,
    records: Iterable[list[str]],
    prompt_column: str,
    *,
    encoding: str | None = None,
    dialect: str | None = None,
    sheet: str | None = None,
) -> ParsedBatch:
    rows = iter(records)
    header_cells = next(rows, None)
    if header_cells is None:
        raise empty_file()
    header_cells = list(header_cells)
    while header_cells and not header_cells[-1].strip():
        header_cells.pop()
    names = header_names(header_cells)
    at = prompt_index(header_cells, prompt_column)
    if at is None:
        raise no_prompt_column(prompt_column, names)
    width = len(names)
    collector = RowCollector(column=names[at])
    any_text = False
    for number, cells in enumerate(rows, start=2):
        if len(cells) > width and any(c.strip() for c in cells[width:]):
            raise _too_wide(kind, number, cells, width)
        padded = cells[:width] + [""] * (width - len(cells))
        any_text = any_text or any(c.strip() for c in padded)
        others = {name: padded[i] for i, name in enumerate(names) if i != at}
        collector.add(number, padded[at], others)
    if not any_text:
        raise BatchRejected(
            "The batch has a header row and nothing below it: add one prompt per row under the "
            f"{names[at]!r} column.",
            code="header_only",
            details={"columns": names},
        )
    return ParsedBatch(
        kind, collector.finish(), names, names[at], encoding, dialect, sheet, collector.blank
    )
