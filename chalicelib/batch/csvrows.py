"""Decoded text to CSV records, and the decision between a CSV table and one prompt per line.

The bytes decide, never the name, and the rules are (first that applies):
1. the first line, trimmed and unquoted, is the prompt column's name → a CSV table of one
   column: `prompt` is a header, not a first prompt, and the commas in the lines below are part of
   their prompts (cells are still CSV cells: quoted ones are unquoted and may span lines);
2. the first record, split at comma, semicolon or tab (the most frequent in the first line
   first), holds a cell naming the prompt column → a CSV table with that delimiter;
3. the first line has none of the three → one prompt per line (TXT);
4. the first lines look like a table (below) → refused `no_prompt_column`, with the columns found;
5. otherwise → prose that happens to hold commas: one prompt per line.

"Look like a table": csv.Sniffer, limited to the three delimiters and shown only the first few
lines (its regular expressions are slow on large samples), names a delimiter, and our own check
agrees — the header has at least two cells, each short (at most 64 characters and 5 words), none
after the first starting with a space (as prose does after a comma) or ending a sentence, no two
alike; and each of the next non-blank records (up to 5) has as many cells as the header.
"Write a poem, please" lines fail that; `id,title,topic` over `1,Cats,pets` passes it. A file
like "Write a poem,please" (no space, same count on every line) would read as a table without the
prompt column: refused, which costs a person a retry, rather than spending model calls on
what may be a header.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator

from chalicelib.batch.limits import MAX_BATCH_BYTES, BatchRejected
from chalicelib.batch.table import header_names, no_prompt_column, prompt_index

DIALECTS = {",": "comma", ";": "semicolon", "\t": "tab"}
ONE_COLUMN = "\x1f"  # the delimiter of a one-column table: the ASCII unit separator, in no prompt
_LOOKAHEAD = 5
_SNIFF_CHARS = 4096
_HEADER_CELL_CHARS = 64
_HEADER_CELL_WORDS = 5


def _allow_long_cells() -> None:
    """A cell may be as long as the batch (the per-cell limit is checked with the row and column
    named); the csv module's default limit (128 KiB) would end the reading with a vaguer error.
    The limit is process-wide, so it is raised when a batch is read, never lowered, and never at
    import."""
    if csv.field_size_limit() <= MAX_BATCH_BYTES:
        csv.field_size_limit(MAX_BATCH_BYTES + 1)


def records(text: str, delimiter: str) -> Iterator[list[str]]:
    _allow_long_cells()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error as exc:
        raise BatchRejected(
            f"The CSV could not be read at row {reader.line_num}: {exc}.",
            code="csv_malformed",
            details={"row": reader.line_num, "reason": str(exc)},
        ) from None


def _first_line(text: str) -> str:
    end = min((i for i in (text.find("\n"), text.find("\r")) if i >= 0), default=len(text))
    return text[:end]


def _sniffed(text: str) -> str | None:
    sample = "".join(itertools.islice(io.StringIO(text[: _SNIFF_CHARS * 2]), _LOOKAHEAD + 1))
    try:
        return csv.Sniffer().sniff(sample[:_SNIFF_CHARS], delimiters="".join(DIALECTS)).delimiter
    except csv.Error:
        return None


def _reads_as_header(cells: list[str]) -> bool:
    named = [c.strip() for c in cells if c.strip()]
    return (
        len(cells) >= 2
        and len({c.casefold() for c in named}) == len(named)
        and all(len(c) <= _HEADER_CELL_CHARS for c in named)
        and all(len(c.split()) <= _HEADER_CELL_WORDS for c in named)
        and not any(c.rstrip().endswith((".", "!", "?")) for c in cells)
        and not any(c[:1].isspace() for c in cells[1:])
    )


def delimiter_of(text: str, prompt_column: str) -> str | None:
    """The CSV delimiter (ONE_COLUMN for a one-column table), or None for one prompt per line.
    Raises `no_prompt_column` for a table without the prompt column (rule 4)."""
    first = _first_line(text)
    if first.strip().strip('"').strip().casefold() == prompt_column.strip().casefold():
        return ONE_COLUMN
    used = sorted((d for d in DIALECTS if d in first), key=lambda d: -first.count(d))
    for delimiter in used:
        header = next(records(text, delimiter), [])
        if prompt_index(header, prompt_column) is not None:
            return delimiter
    if not used or len(first) > _HEADER_CELL_CHARS * 64:
        return None
    sniffed = _sniffed(text)
    if sniffed is None:
        return None
    head = list(itertools.islice(records(text, sniffed), _LOOKAHEAD + 1))
    header, following = head[0], [r for r in head[1:] if any(c.strip() for c in r)]
    while header and not header[-1].strip():
        header.pop()
    consistent = bool(following) and all(
        len(r) == len(header)
        or (len(r) > len(header) and not any(c.strip() for c in r[len(header) :]))
        for r in following
    )
    if _reads_as_header(header) and consistent:
        raise no_prompt_column(prompt_column, header_names(header))
    return None
