"""A prompts batch, parsed and checked as a whole at fan-out, before any unit exists (DESIGN §5).

`parse_batch` takes the uploaded bytes and decides from them — not from the file's name — whether
they are an XLSX workbook, a CSV table or plain text with one prompt per line; `rows_from_prompts`
and `rows_from_text` take prompts given inline. Every refusal is a `BatchRejected` with a stable
code and, where it applies, the row and column. `rows_jsonl` writes the rows once, normalised, as
the file each unit reads its row from by one ranged GET (`read_row`).
"""

from __future__ import annotations

from chalicelib.batch.limits import (
    MAX_BATCH_BYTES,
    MAX_PROMPT_CHARS,
    MAX_PROMPTS,
    BatchRejected,
    BatchRow,
    ParsedBatch,
)
from chalicelib.batch.parse import parse_batch, rows_from_prompts, rows_from_text
from chalicelib.batch.rowsfile import read_row, rows_jsonl

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_PROMPTS",
    "MAX_PROMPT_CHARS",
    "BatchRejected",
    "BatchRow",
    "ParsedBatch",
    "parse_batch",
    "read_row",
    "rows_from_prompts",
    "rows_from_text",
    "rows_jsonl",
]
