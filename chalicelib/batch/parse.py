"""The entry points: a batch file's bytes, inline prompts, or a pasted block, to checked rows.

Order of the checks, cheapest and most telling first: the size (before a byte is parsed), empty,
what the bytes are (a workbook, text, or an image or archive sent by mistake), then the text's
encoding, then CSV or one prompt per line (chalicelib.batch.csvrows says how that is decided),
then the rows, with the limits enforced as they arrive.
"""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.batch.csvrows import DIALECTS, delimiter_of, records
from chalicelib.batch.detect import decode, kind_of
from chalicelib.batch.limits import (
    MAX_BATCH_BYTES,
    ParsedBatch,
    RowCollector,
    empty_file,
    too_large,
)
from chalicelib.batch.table import table_batch
from chalicelib.batch.txtrows import lines_batch
from chalicelib.batch.xlsxrows import sheet_rows


def parse_batch(
    data: bytes, *, prompt_column: str = "prompt", sheet: str | None = None
) -> ParsedBatch:
    """A batch file's rows, or `BatchRejected` with a stable code (and row and column where one
    is to blame). `sheet` is the XLSX sheet to read (matched trimmed, case-insensitively), the
    first one when None; it is ignored for text."""
    if len(data) > MAX_BATCH_BYTES:
        raise too_large(len(data))
    if not data.strip():
        raise empty_file()
    if kind_of(data) == "xlsx":
        name, cells = sheet_rows(data, sheet)
        return table_batch("xlsx", cells, prompt_column, sheet=name)
    text, encoding = decode(data)
    if not text.strip():
        raise empty_file()
    delimiter = delimiter_of(text, prompt_column)
    if delimiter is None:
        return lines_batch("txt", text, encoding)
    return table_batch(
        "csv",
        records(text, delimiter),
        prompt_column,
        encoding=encoding,
        dialect=DIALECTS.get(delimiter),
    )


def rows_from_prompts(prompts: Sequence[str]) -> ParsedBatch:
    """Prompts given as a list (the API's `prompts`): the same limits as a file; empty and
    whitespace-only prompts are skipped and counted, and the others keep their position."""
    size = 0
    collector = RowCollector()
    for number, prompt in enumerate(prompts, start=1):
        size += _utf8_size(prompt)
        if size > MAX_BATCH_BYTES:
            raise too_large(size)
        collector.add(number, prompt)
    return ParsedBatch("inline", collector.finish(), [], None, None, None, None, collector.blank)


def rows_from_text(text: str) -> ParsedBatch:
    """A pasted block (the API's `text`), one prompt per line, read as a TXT file is."""
    size = _utf8_size(text)
    if size > MAX_BATCH_BYTES:
        raise too_large(size)
    if not text.strip():
        raise empty_file()
    return lines_batch("inline", text, None)


def _utf8_size(text: str) -> int:
    """The bytes `text` takes in UTF-8, as in the rows file (its length when that is already
    over the limit: a lower bound, and no copy of a huge text)."""
    if len(text) > MAX_BATCH_BYTES:
        return len(text)
    return len(text.encode("utf-8", "replace"))
