"""The shapes of a parsed batch, its limits, and the one error a refused batch raises.

The limits are checked as rows arrive (`RowCollector`), so a hostile file is refused at its
1,001st prompt or its first over-long cell, not after all of it has been turned into rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chalicelib.errors import InvalidInput
from chalicelib.humanize import human_bytes

MAX_PROMPTS = 1000
MAX_BATCH_BYTES = 10 * 1024 * 1024  # "10 MB"
# A prompt longer than this is a mistake (a whole document pasted in a cell), not a prompt. The
# other cells of a row are held to it too: the template renders them into the model's message.
MAX_PROMPT_CHARS = 32_000

BatchKind = Literal["csv", "xlsx", "txt", "inline"]


class BatchRejected(InvalidInput):
    """The batch is refused as a whole: no unit is made of it, the session ends `rejected`."""

    default_code = "batch_rejected"


@dataclass(frozen=True)
class BatchRow:
    # Where a person finds the row: its sheet row (the header is row 1; a CSV record that spans
    # lines is one row, as a spreadsheet shows it) or its line in a text file; for prompts given
    # inline, its position from 1.
    number: int
    prompt: str
    columns: dict[str, str]  # the other cells of the row, by header, in header order


@dataclass(frozen=True)
class ParsedBatch:
    kind: BatchKind
    rows: list[BatchRow]
    columns: list[str]  # the header, prompt column included, as spelled ([] for text)
    prompt_column: str | None
    encoding: str | None  # "utf_8", "utf_8_sig", "utf_16", "cp1252", ... (csv and txt)
    dialect: str | None  # "comma", "semicolon" or "tab" (csv)
    sheet: str | None  # the sheet read (xlsx)
    blank_skipped: int  # blank lines and rows without a prompt, skipped


def empty_file() -> BatchRejected:
    return BatchRejected(
        "The batch file is empty. Send a CSV or XLSX with a prompt column, or a text file with "
        "one prompt per line.",
        code="empty_file",
    )


def too_large(size: int) -> BatchRejected:
    return BatchRejected(
        f"The batch is {human_bytes(size)}; a prompts batch may be at most "
        f"{human_bytes(MAX_BATCH_BYTES)}. Split it into smaller files.",
        code="file_too_large",
        details={"max_file_bytes": MAX_BATCH_BYTES, "bytes": size},
    )


def too_many() -> BatchRejected:
    return BatchRejected(
        f"The batch has more than {MAX_PROMPTS:,} prompts. Split it into batches of at most "
        f"{MAX_PROMPTS:,}.",
        code="too_many_prompts",
        details={"max_prompts": MAX_PROMPTS},
    )


def too_long(number: int, column: str | None, chars: int) -> BatchRejected:
    where = f"row {number}" + (f", column {column!r}" if column else "")
    details: dict[str, object] = {"row": number, "chars": chars, "max_chars": MAX_PROMPT_CHARS}
    if column:
        details["column"] = column
    return BatchRejected(
        f"The cell in {where} is {chars:,} characters long; a prompt (and each cell beside it) "
        f"may have at most {MAX_PROMPT_CHARS:,}. Shorten it; if it should be short, look for an "
        "unclosed quote, which makes a cell run on into the rows after it.",
        code="prompt_too_long",
        details=details,
    )


class RowCollector:
    """Keeps the rows that have a prompt, counts the ones that do not, and enforces the limits
    as rows arrive."""

    def __init__(self, column: str | None = None) -> None:
        self.rows: list[BatchRow] = []
        self.blank = 0
        self._column = column

    def add(self, number: int, prompt: str, columns: dict[str, str] | None = None) -> None:
        if len(prompt) > MAX_PROMPT_CHARS:
            raise too_long(number, self._column, len(prompt))
        others = columns or {}
        for name, value in others.items():
            if len(value) > MAX_PROMPT_CHARS:
                raise too_long(number, name, len(value))
        if not prompt.strip():
            self.blank += 1
            return
        if len(self.rows) >= MAX_PROMPTS:
            raise too_many()
        self.rows.append(BatchRow(number=number, prompt=prompt, columns=others))

    def finish(self) -> list[BatchRow]:
        if not self.rows:
            raise BatchRejected(
                "The batch has no prompts: every row's prompt is empty.", code="no_prompts"
            )
        return self.rows
