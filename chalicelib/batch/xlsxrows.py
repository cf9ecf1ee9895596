"""XLSX batches: the first sheet or a named one, read row by row, cached values of formulas.

The reader is openpyxl in read-only mode with `data_only=True` (a formula cell gives the value
Excel last computed and saved, never the formula text) and defusedxml installed, through which
openpyxl then parses every part: a part declaring entities (billion laughs) is refused, not
expanded.

Why openpyxl and not python-calamine (bench/xlsx_readers.py has the numbers): calamine is 15-25x
faster, and refuses the bomb too, but it reads the whole sheet into memory before the first row
(its peak grows with the sheet, openpyxl's stays flat as it streams), and chute stops reading at
the 1,001st prompt anyway, so a batch costs openpyxl a fraction of a second, once, at fan-out.
openpyxl also writes the XLSX results export: one XLSX library instead of two (calamine is a
compiled wheel that only reads).

Streaming is not bounded memory by itself: openpyxl holds the shared strings and styles whole,
a row's cells whole, and trusts the sheet's declared dimension when it pads rows. So before
openpyxl sees the workbook, `check_sizes` refuses parts that unpack to more than is plausible
(a zip bomb), and `_scan_sheet` streams the chosen sheet's XML once, in chunks, counting its
rows and cells: more than Excel's 16,384 cells in a row, or more cells than any prompts batch
needs, is refused before a row is parsed. The dimension is not trusted (`reset_dimensions`).
"""

from __future__ import annotations

import datetime
import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from chalicelib.batch.limits import BatchRejected
from chalicelib.humanize import human_bytes

# Unpacked sizes: parts openpyxl reads whole (shared strings, styles, workbook, relationships),
# and the sheet it streams. A 1,000-prompt sheet is well under a megabyte of XML.
_MAX_PART_BYTES = 64 * 1024 * 1024
# openpyxl spends ~20 us on each shared string (15 MB of one-letter strings: 19 s): their number is
# what costs, not their bytes. 1,000 prompts and their columns need a few thousand.
_MAX_SHARED_STRINGS = 100_000
_SHARED_STRING = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,30}:)?si[\s/>]")
_MAX_SHEET_BYTES = 128 * 1024 * 1024
_MAX_ROW_CELLS = 16_384  # Excel's own column limit
_MAX_SHEET_CELLS = 500_000
_MAX_SHEET_ROWS = 1_048_576  # Excel's own row limit
_WHOLE_PARTS = (".xml", ".rels")
_CELL_OR_ROW = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,30}:)?(c|row)[\s/>]")
_CHUNK = 1024 * 1024


def unreadable(reason: str, message: str | None = None) -> BatchRejected:
    return BatchRejected(
        message
        or "The workbook could not be read (it may be damaged, protected with a password, or made "
        "to attack the reader). Save it again from Excel, or export the sheet as CSV.",
        code="xlsx_unreadable",
        details={"reason": reason[:200]},
    )


def _reason(exc: BaseException) -> str:
    """The innermost cause: openpyxl wraps defusedxml's EntitiesForbidden in a vague ValueError."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return f"{type(exc).__name__}: {exc}"


def cell_text(value: Any) -> str:
    """A cell as a person reads it: 42 not 42.0, 0.3 not 0.30000000000000004 (Excel's 15
    significant digits), dates in ISO 8601, TRUE/FALSE."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.15g}"
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def _count_tags(archive: zipfile.ZipFile, path: str, tag: re.Pattern[bytes], limit: int) -> bool:
    """Whether the part holds more than `limit` of the tag, read in chunks (bounded memory)."""
    count, tail = 0, b""
    with archive.open(path) as source:
        while True:
            chunk = source.read(_CHUNK)
            data = tail + chunk
            cut = len(data) - 64 if chunk else len(data)  # a tag cut here is whole next time
            count += sum(1 for m in tag.finditer(data) if m.start() < cut)
            if count > limit:
                return True
            if not chunk:
                return False
            tail = data[max(cut, 0) :]


def check_sizes(archive: zipfile.ZipFile) -> None:
    """Refuses a workbook whose XML unpacks to more than any batch needs. The sizes are the
    declared ones: zipfile stops reading a member at its declared size (and fails on a CRC
    mismatch), so a member cannot unpack to more than it declares."""
    for info in archive.infolist():
        sheet = info.filename.startswith("xl/worksheets/")
        limit = _MAX_SHEET_BYTES if sheet else _MAX_PART_BYTES
        if info.filename.endswith(_WHOLE_PARTS) and info.file_size > limit:
            raise unreadable(
                f"{info.filename} unpacks to {info.file_size} bytes",
                f"The workbook's part {info.filename} unpacks to {human_bytes(info.file_size)}, "
                f"more than a prompts batch needs ({human_bytes(limit)}). Copy the prompts into "
                "a new workbook, or export the sheet as CSV.",
            )
        if info.filename.endswith("sharedStrings.xml") and _count_tags(
            archive, info.filename, _SHARED_STRING, _MAX_SHARED_STRINGS
        ):
            raise unreadable(
                f"{info.filename} holds over {_MAX_SHARED_STRINGS} strings",
                f"The workbook holds more than {_MAX_SHARED_STRINGS:,} different texts: far "
                "more than a batch of prompts. Copy the prompts into a new workbook, or export "
                "the sheet as CSV.",
            )


def _scan_sheet(archive: zipfile.ZipFile, path: str) -> None:
    """Counts the sheet's rows and cells in its raw XML, streamed, and refuses a sheet that
    would make openpyxl hold too much (a row is parsed whole) or work too long."""
    row_cells = cells = rows = 0
    tail = b""
    with archive.open(path) as source:
        while True:
            chunk = source.read(_CHUNK)
            data = tail + chunk
            # A tag is at most ~45 bytes: one starting in the last 64 is counted with the next
            # chunk, where it is whole (or at the end, when there is none).
            cut = len(data) - 64 if chunk else len(data)
            for match in _CELL_OR_ROW.finditer(data):
                if match.start() >= cut:
                    break
                if match.group(1) == b"row":
                    rows, row_cells = rows + 1, 0
                    continue
                row_cells, cells = row_cells + 1, cells + 1
                if row_cells > _MAX_ROW_CELLS or cells > _MAX_SHEET_CELLS:
                    raise _too_big_sheet(row_cells)
            if not chunk:
                break
            tail = data[max(cut, 0) :]
    if rows > _MAX_SHEET_ROWS:
        raise unreadable(f"row numbers past {_MAX_SHEET_ROWS}")


def _too_big_sheet(row_cells: int) -> BatchRejected:
    return unreadable(
        f"a row holds over {_MAX_ROW_CELLS} cells"
        if row_cells > _MAX_ROW_CELLS
        else f"the sheet holds over {_MAX_SHEET_CELLS} cells",
        f"The sheet holds more than {_MAX_SHEET_CELLS:,} cells or a row of more than "
        f"{_MAX_ROW_CELLS:,}: far more than a batch of prompts. Copy the prompts into a new "
        "workbook, or export the sheet as CSV.",
    )


def sheet_rows(data: bytes, sheet: str | None) -> tuple[str, Iterator[list[str]]]:
    """The sheet's name and its rows as text, from row 1 on (a blank row is an empty list)."""
    from openpyxl import load_workbook  # the fan-out only: ~0.1 s of imports

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        check_sizes(archive)
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except BatchRejected:
        raise
    except Exception as exc:  # BadZipFile, KeyError, defusedxml's EntitiesForbidden, ...
        raise unreadable(_reason(exc)) from None
    names = list(book.sheetnames)
    if not names:
        raise unreadable("no sheets")
    if sheet is None:
        chosen = names[0]
    else:
        matching = [n for n in names if n.strip().casefold() == sheet.strip().casefold()]
        if not matching:
            raise BatchRejected(
                f"The workbook has no sheet {sheet!r}. Its sheets: "
                + ", ".join(repr(n) for n in names)
                + ". Choose one of them with the sheet option.",
                code="sheet_not_found",
                details={"sheet": sheet, "sheets": names},
            )
        chosen = matching[0]
    worksheet = book[chosen]
    path = getattr(worksheet, "_worksheet_path", None)
    if not isinstance(path, str):
        raise unreadable(f"sheet {chosen!r} is not a worksheet (a chart sheet?)")
    try:
        _scan_sheet(archive, path)
    except BatchRejected:
        raise
    except Exception as exc:
        raise unreadable(_reason(exc)) from None
    worksheet.reset_dimensions()

    def rows() -> Iterator[list[str]]:
        try:
            for count, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
                if count > _MAX_SHEET_ROWS:  # a row numbered past Excel's last: gaps are padded
                    raise unreadable(f"row numbers past {_MAX_SHEET_ROWS}")
                end = len(values)
                while end and values[end - 1] is None:
                    end -= 1
                yield [cell_text(v) for v in values[:end]]
        except BatchRejected:
            raise
        except Exception as exc:
            raise unreadable(_reason(exc)) from None
        finally:
            book.close()

    return chosen, rows()
