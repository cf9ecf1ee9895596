"""One writer per export format, each streaming records into a binary file as they come.

CSV is UTF-8 with a byte-order mark (Excel then reads it as UTF-8); XLSX goes through openpyxl's
write-only workbook (rows are written to disk as they are appended); ZIP holds results.csv and each
unit's result document, fetched a few at a time ahead of the writing.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, Literal

from chalicelib.export.cells import cell
from chalicelib.export.records import Layout, ResultRecord

ExportFormat = Literal["csv", "json", "jsonl", "xlsx", "zip"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "json", "jsonl", "xlsx", "zip")
CONTENT_TYPES: dict[ExportFormat, str] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "zip": "application/zip",
}
# Excel refuses a cell longer than this; a longer answer is cut, and says so.
XLSX_CELL_CHARS = 32_767
CUT_MARK = "… [cut: the full text is in the JSON export]"
FETCH_THREADS = 8
FETCH_AHEAD = 32

Fetch = Callable[[str], bytes | None]


def write_csv(records: Iterable[ResultRecord], layout: Layout, out: IO[bytes]) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
    try:
        writer = csv.writer(text)
        writer.writerow(layout.headers)
        count = 0
        for record in records:
            writer.writerow([cell(v) for v in record.flat(layout)])
            count += 1
        text.flush()
    finally:
        text.detach()  # the caller owns `out`
    return count


def write_jsonl(records: Iterable[ResultRecord], out: IO[bytes]) -> int:
    count = 0
    for record in records:
        out.write(_json(record.nested()) + b"\n")
        count += 1
    return count


def write_json(records: Iterable[ResultRecord], header: dict[str, Any], out: IO[bytes]) -> int:
    """`{…header, "results": [...]}`, the array written one record at a time."""
    opening = _json(header)
    out.write(opening[:-1] + (b', "results": [' if header else b'"results": ['))
    count = 0
    for record in records:
        out.write((b",\n" if count else b"\n") + _json(record.nested()))
        count += 1
    out.write(b"\n]}\n")
    return count


def write_xlsx(records: Iterable[ResultRecord], layout: Layout, out: IO[bytes]) -> int:
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def xlsx_cell(value: Any) -> Any:
        value = cell(value)
        if isinstance(value, str):
            value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
            if len(value) > XLSX_CELL_CHARS:
                value = value[: XLSX_CELL_CHARS - len(CUT_MARK)] + CUT_MARK
        return value

    book = Workbook(write_only=True)
    sheet = book.create_sheet("results")
    sheet.append(layout.headers)
    count = 0
    for record in records:
        sheet.append([xlsx_cell(v) for v in record.flat(layout)])
        count += 1
    book.save(out)
    return count


def write_zip(records: Iterable[ResultRecord], layout: Layout, fetch: Fetch, out: IO[bytes]) -> int:
    """results.csv, then results/{ordinal}.json for every unit that has a result document."""
    with (
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive,
        tempfile.TemporaryFile() as table,
    ):

        def kept(stream: Iterable[ResultRecord]) -> Iterator[ResultRecord]:
            for record in stream:
                if record.document is not None:
                    name = f"results/{record.unit.ref.ordinal}.json"
                    archive.writestr(name, record.document)
                yield record

        count = write_csv(kept(with_documents(records, fetch)), layout, table)
        table.seek(0)
        with archive.open("results.csv", "w", force_zip64=True) as entry:
            while chunk := table.read(1024 * 1024):
                entry.write(chunk)
    return count


def with_documents(records: Iterable[ResultRecord], fetch: Fetch) -> Iterator[ResultRecord]:
    """The records with their result documents, in order, fetched FETCH_AHEAD at most ahead."""
    window: deque[tuple[ResultRecord, Future[bytes | None] | None]] = deque()
    with ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="export-fetch") as pool:
        for record in records:
            key = record.unit.result_key
            window.append((record, pool.submit(fetch, key) if key else None))
            if len(window) >= FETCH_AHEAD:
                yield _done(*window.popleft())
        while window:
            yield _done(*window.popleft())


def _done(record: ResultRecord, pending: Future[bytes | None] | None) -> ResultRecord:
    if pending is None:
        return record
    return ResultRecord(record.unit, record.row, document=pending.result())


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
