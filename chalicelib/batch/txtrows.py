"""Text batches: one prompt per line (a .txt file, or a block pasted into the API).

A line ends at "\\n", "\\r\\n" or a lone "\\r" (old Mac files), so no prompt keeps a carriage
return. The line end of the last line ends it; it does not start a blank line, so `blank_skipped`
counts only the blank lines a person sees. Lines are taken one at a time, never split into a list:
ten megabytes of two-letter lines would be millions of strings, and the 1,001st prompt stops the
reading anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from chalicelib.batch.limits import BatchKind, ParsedBatch, RowCollector

_LINE_END = re.compile(r"\r\n|\r|\n")


def lines_of(text: str) -> Iterator[str]:
    start = 0
    for end in _LINE_END.finditer(text):
        yield text[start : end.start()]
        start = end.end()
    if start < len(text):
        yield text[start:]


def lines_batch(kind: BatchKind, text: str, encoding: str | None) -> ParsedBatch:
    collector = RowCollector()
    for number, line in enumerate(lines_of(text), start=1):
        collector.add(number, line)
    rows = collector.finish()
    return ParsedBatch(kind, rows, [], None, encoding, None, None, collector.blank)
