"""The shapes of a parsed batch, its limits, and the one error a refused batch raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chalicelib.errors import InvalidInput
from chalicelib.humanize import human_bytes

MAX_PROMPTS = 1000
MAX_BATCH_BYTES = 10 * 1024 * 1024
# A prompt longer than this is a mistake (a whole document pasted in a cell), not a prompt.
MAX_PROMPT_CHARS = 32_000

BatchKind = Literal["csv", "xlsx", "txt", "inline"]


class BatchRejected(InvalidInput):
    """The batch is refused as a whole: no unit is made of it."""

    default_code = "batch_rejected"


@dataclass(frozen=True)
class BatchRow:
    # Where a person finds the row: its sheet row (the header is row 1) or its line in the file;
    # for prompts given inline, its position from 1.
    number: int
    prompt: str
    columns: dict[str, str]  # the other cells of the row, by header, in header order


@dataclass(frozen=True)
class ParsedBatch:
    kind: BatchKind
    rows: list[BatchRow]
    columns: list[str]  # the header, prompt column included, as spelled ([] for text)
    prompt_column: str | None
    encoding: str | None
    dialect: str | None  # "comma", "semicolon" or "tab"
    sheet: str | None
    blank_skipped: int  # blank lines and rows without a prompt, skipped


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
        f"The prompt in {where} is {chars:,} characters long; a prompt may have at most "
        f"{MAX_PROMPT_CHARS:,}.",
        code="prompt_too_long",
        details=details,
    )


class RowCollector:
    """Keeps the rows that have a prompt, counts the ones that do not, and enforces the limits
    as rows arrive, so a hostile file is refused at its 1,001st prompt, not after all of it."""

    def __init__(self, column: str | None = None) -> None:
        self.rows: list[BatchRow] = []
        self.blank = 0
        self._column = column

    def add(self, number: int, prompt: str, columns: dict[str, str] | None = None) -> None:
        if not prompt.strip():
            self.blank += 1
            return
        if len(prompt) > MAX_PROMPT_CHARS:
            raise too_long(number, self._column, len(prompt))
        if len(self.rows) >= MAX_PROMPTS:
            raise too_many()
        self.rows.append(BatchRow(number=number, prompt=prompt, columns=columns or {}))

    def finish(self) -> list[BatchRow]:
        if not self.rows:
            raise BatchRejected(
                "The batch has no prompts: every row's prompt is empty.", code="no_prompts"
            )
        return self.rows
