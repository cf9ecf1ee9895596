"""Document text extraction and metadata: the built-in processor for the "documents" job type.

Plain text, Markdown, CSV, JSON and HTML are read with the standard library (their encoding
detected, not assumed), PDF with pypdf. A file that is neither text nor a PDF, and a PDF without
text, end skipped. A document is hashed, counted and decoded as it streams in: text is held once,
as the text that goes into the result, and a PDF once, as the bytes pypdf reads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import BinaryIO

from chalicelib.errors import PermanentError, UnitSkipped
from chalicelib.filetypes import MAX_DOCUMENT_BYTES, DocumentType, document_type
from chalicelib.humanize import human_bytes
from chalicelib.processors.base import ProcessorOutput, Scalar, UnitContext, processor
from chalicelib.processors.htmltext import VisibleText
from chalicelib.processors.pdftext import read_pdf
from chalicelib.processors.textdecode import (
    KeptText,
    NotText,
    StreamDecoder,
    TextCounts,
    TextSink,
    count_text,
)

__all__ = ["MAX_DOCUMENT_BYTES", "READ_CHUNK_BYTES", "detect_type", "extract_document"]

READ_CHUNK_BYTES = 1024 * 1024
# A PDF's pages read so far are saved this often (seconds of reading): a retry loses at most this.
CHECKPOINT_EVERY_S = 10.0
# Enough to see a byte order mark or a PDF header before choosing how to read the rest.
_HEAD_BYTES = 1024
# Enough lines for csv.Sniffer to see the dialect. Its quote-guessing regex is quadratic on
# quote-heavy input (16 KiB of `a,"` takes 1.6 s), so the sample stays small.
_CSV_SNIFF_CHARS = 8 * 1024
# The csv module's default field limit: a record with a longer field is malformed.
_CSV_FIELD_CHARS = 128 * 1024
# Lines as io.StringIO(text, newline="") gives them to the csv module, without its copy of the
# text (four bytes a character).
_CSV_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")

_CONTENT_TYPES: dict[str, DocumentType] = {
    "text/plain": "txt",
    "text/markdown": "md",
    "text/x-markdown": "md",
    "text/csv": "csv",
    "text/tab-separated-values": "csv",
    "application/json": "json",
    "text/json": "json",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
}


@dataclass(frozen=True)
class _Parsed:
    type: DocumentType
    text: str
    counts: TextCounts
    extra: dict[str, Scalar] = field(default_factory=dict)


@processor(
    "document",
    fields=(
        "type",
        "bytes",
        "sha256",
        "chars",
        "words",
        "lines",
        "pages",
        "title",
        "encoding",
        "rows",
        "columns",
        "delimiter",
        "malformed_rows",
    ),
)
def extract_document(ctx: UnitContext) -> ProcessorOutput:
    """Text and metadata of one document; a damaged or oversized one fails permanently, and one
    that is not a document (or a PDF without text) is skipped."""
    ctx.stage("downloading")
    if ctx.size is not None and ctx.size > MAX_DOCUMENT_BYTES:
        raise _too_large(ctx.size)
    with ctx.open() as stream:
        download = _Download(stream, ctx)
        chunks = download.chunks()
        head = _head(chunks)
        doc_type = detect_type(ctx.name, ctx.content_type, head)
        body = chain((head,), chunks)
        del head  # the chain lets go of it once read, so its megabyte is not held to the end
        if doc_type == "pdf":
            parsed = _parse_pdf(body, ctx, download.sha256)
        else:
            parsed = _parse_text(doc_type, body, ctx)
    ctx.progress(1.0)
    ctx.stage("saving")
    metadata: dict[str, Scalar] = {
        "type": parsed.type,
        "bytes": download.received,
        "sha256": download.sha256(),
        "chars": parsed.counts.chars,
        "words": parsed.counts.words,
        "lines": parsed.counts.lines,
        **parsed.extra,
    }
    return ProcessorOutput(metadata=metadata, body={"text": parsed.text})


def detect_type(file_name: str, content_type: str, head: bytes) -> DocumentType | None:
    """The document type by magic bytes, then extension, then content type; None when none of
    them says, and the bytes decide: text is read as plain text, anything else is skipped."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    by_name = document_type(file_name)
    if by_name is not None:
        return by_name
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in _CONTENT_TYPES:
        return _CONTENT_TYPES[media_type]
    if media_type.endswith("+json"):
        return "json"
    if media_type.startswith("text/"):
        return "txt"
    return None


class _Download:
    """The unit's bytes chunk by chunk, hashed, counted and held to the size limit on arrival."""

    def __init__(self, stream: BinaryIO, ctx: UnitContext) -> None:
        self._stream = stream
        self._ctx = ctx
        self._digest = hashlib.sha256()
        self.received = 0

    def chunks(self) -> Iterator[bytes]:
        while chunk := self._stream.read(READ_CHUNK_BYTES):
            self.received += len(chunk)
            # The declared size can be missing or wrong, so the limit is enforced on what arrives.
            if self.received > MAX_DOCUMENT_BYTES:
                raise _too_large(None)
            self._digest.update(chunk)
            if self._ctx.size:
                self._ctx.progress(min(self.received / self._ctx.size, 1.0))
            yield chunk

    def sha256(self) -> str:
        return self._digest.hexdigest()


def _head(chunks: Iterator[bytes]) -> bytes:
    """The first chunk, or the first few joined when a stream returns fewer than _HEAD_BYTES."""
    parts: list[bytes] = []
    size = 0
    while size < _HEAD_BYTES and (chunk := next(chunks, b"")):
        parts.append(chunk)
        size += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _too_large(size: int | None) -> PermanentError:
    limit = human_bytes(MAX_DOCUMENT_BYTES)
    actual = human_bytes(size) if size is not None else f"over {limit}"
    return PermanentError(
        f"This document is {actual}; documents larger than {limit} are not processed.",
        code="document_too_large",
        details={"limit_bytes": MAX_DOCUMENT_BYTES, "size_bytes": size},
    )


def _parse_pdf(chunks: Iterable[bytes], ctx: UnitContext, sha256: Callable[[], str]) -> _Parsed:
    # pypdf needs the whole file: one buffer, written chunk by chunk, with no joined copy.
    document = io.BytesIO()
    for chunk in chunks:
        document.write(chunk)
    ctx.stage("parsing")
    pages = _PageCheckpoints(ctx, sha256())
    pdf = read_pdf(document, ctx.progress, done=pages.resumed(), page_read=pages.page_read)
    extra: dict[str, Scalar] = {"pages": pdf.pages}
    if pdf.resumed:
        extra["pages_resumed"] = pdf.resumed
    if pdf.title is not None:
        extra["title"] = pdf.title
    return _Parsed("pdf", pdf.text, count_text(pdf.text), extra)


class _PageCheckpoints:
    """The text of a PDF's pages read so far, saved as the unit's checkpoint every
    CHECKPOINT_EVERY_S of reading: an attempt that runs out of time (a long PDF in a short
    invocation) is retried from the page after the last checkpoint, not from the first page."""

    def __init__(self, ctx: UnitContext, sha256: str) -> None:
        self._ctx = ctx
        self._sha256 = sha256
        self._last = ctx.time_left()

    def resumed(self) -> list[str]:
        """The pages an earlier attempt read of this very file (its digest says so), or none."""
        state = self._ctx.resume_state
        if not isinstance(state, dict) or state.get("sha256") != self._sha256:
            return []
        pages = state.get("pages")
        if not isinstance(pages, list) or not all(isinstance(p, str) for p in pages):
            return []
        return pages

    def page_read(self, texts: list[str]) -> None:
        left = self._ctx.time_left()
        if self._last - left >= CHECKPOINT_EVERY_S:
            self._ctx.checkpoint({"sha256": self._sha256, "pages": texts})
            self._last = left


def _parse_text(
    doc_type: DocumentType | None, chunks: Iterable[bytes], ctx: UnitContext
) -> _Parsed:
    if doc_type == "html":
        # Only the visible text is kept: the markup goes through the parser as it is decoded.
        page = VisibleText()
        encoding = _decode(chunks, page)
        ctx.stage("parsing")
        page.close()
        html_text = page.text()
        extra: dict[str, Scalar] = {"encoding": encoding}
        if page.title:
            extra["title"] = page.title
        return _Parsed("html", html_text, count_text(html_text), extra)
    kept = KeptText()
    extra = {"encoding": _decode(chunks, kept)}
    ctx.stage("parsing")
    text = kept.text()
    if doc_type == "json":
        _check_json(text)
    elif doc_type == "csv":
        extra |= _csv_shape(text)
    return _Parsed(doc_type or "txt", text, kept.counts(), extra)


def _decode(chunks: Iterable[bytes], sink: TextSink) -> str:
    """Decodes the chunks into the sink; the encoding used."""
    decoder = StreamDecoder(sink)
    try:
        for chunk in chunks:
            decoder.feed(chunk)
        decoder.finish()
    except NotText as exc:
        raise UnitSkipped(
            "This file is not a document chute can read (not text or PDF); it was skipped.",
            code="unsupported_type",
        ) from exc
    return decoder.encoding


def _check_json(text: str) -> None:
    try:
        # Each object is dropped as soon as it is parsed: only validity is wanted, and a tree of
        # Python objects takes several times the text's memory.
        json.loads(text, object_pairs_hook=_drop)
    except json.JSONDecodeError as exc:
        raise PermanentError(
            f"This JSON file is not valid: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            code="json_invalid",
            details={"line": exc.lineno, "column": exc.colno, "reason": exc.msg},
        ) from exc
    except (ValueError, RecursionError) as exc:
        # Numbers with more digits than Python converts, or nesting deeper than the parser recurses.
        raise PermanentError(
            f"This JSON file could not be read: {exc}.", code="json_invalid"
        ) from exc


def _drop(_pairs: list[tuple[str, object]]) -> None:
    return None


def _csv_shape(text: str) -> dict[str, Scalar]:
    sample = text[:_CSV_SNIFF_CHARS]
    if len(text) > len(sample) and "\n" in sample:
        # A cut-off last line would look like a row with fewer fields and mislead the sniffer.
        sample = sample[: sample.rindex("\n")]
    dialect: type[csv.Dialect]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if "\t" in sample and "," not in sample else csv.excel
    rows = columns = malformed = 0
    reader = csv.reader((line.group() for line in _CSV_LINE.finditer(text)), dialect)
    while True:
        # A bad record (say, a field over _CSV_FIELD_CHARS) is counted and skipped; the reader
        # carries on with the next line. The csv module's own limit is process-wide and the batch
        # parser raises it, so the documents limit is checked here, the same in every process.
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error:
            malformed += 1
            continue
        if any(len(field) > _CSV_FIELD_CHARS for field in record):
            malformed += 1
            continue
        if record:
            rows += 1
            columns = max(columns, len(record))
    shape: dict[str, Scalar] = {"rows": rows, "columns": columns, "delimiter": dialect.delimiter}
    if malformed:
        shape["malformed_rows"] = malformed
    return shape
