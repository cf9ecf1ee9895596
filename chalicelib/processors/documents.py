"""Document text extraction and metadata: the built-in processor for the "documents" job type.

Plain text, Markdown, CSV, JSON and HTML are handled with the standard library, PDF with pypdf.
Anything else is kept as a binary document: its size and hash, no text.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Literal

from chalicelib.errors import PermanentError
from chalicelib.processors.base import ProcessorOutput, Scalar, UnitContext, processor

DocumentType = Literal["txt", "md", "csv", "json", "html", "pdf", "binary"]

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
READ_CHUNK_BYTES = 1024 * 1024
# Reading dominates for text and page-by-page extraction for PDFs; giving each half the bar keeps it
# moving in both cases without knowing in advance which one will be slow.
_DOWNLOAD_SHARE = 0.5
# PDF readers accept a header within the first KiB and an end-of-file marker within the last one.
_PDF_SLACK_BYTES = 1024
# Enough lines for csv.Sniffer to see the dialect. Its quote-guessing regex is quadratic on
# quote-heavy input (16 KiB of `a,"` takes 1.6 s), so the sample stays small.
_CSV_SNIFF_CHARS = 8 * 1024

_EXTENSIONS: dict[str, DocumentType] = {
    "txt": "txt",
    "text": "txt",
    "log": "txt",
    "md": "md",
    "markdown": "md",
    "csv": "csv",
    "tsv": "csv",
    "json": "json",
    "html": "html",
    "htm": "html",
    "pdf": "pdf",
}
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
    text: str | None
    extra: dict[str, Scalar] = field(default_factory=dict)


def _matches_any_file(_file_name: str, _content_type: str) -> bool:
    return True


@processor("document", match=_matches_any_file)
def extract_document(ctx: UnitContext) -> ProcessorOutput:
    """Text and metadata of one document; a damaged or oversized one fails permanently."""
    ctx.stage("downloading")
    data, sha256 = _read_bounded(ctx)
    ctx.stage("parsing")
    parsed = _parse(detect_type(ctx.name, ctx.content_type, data), data, ctx)
    ctx.progress(1.0)
    ctx.stage("saving")
    metadata: dict[str, Scalar] = {"type": parsed.type, "bytes": len(data), "sha256": sha256}
    if parsed.text is None:
        return ProcessorOutput(metadata=metadata)
    metadata |= {
        "chars": len(parsed.text),
        "words": len(parsed.text.split()),
        "lines": len(parsed.text.splitlines()),
        **parsed.extra,
    }
    return ProcessorOutput(metadata=metadata, body={"text": parsed.text})


def detect_type(file_name: str, content_type: str, content: bytes) -> DocumentType:
    """The document type by magic bytes, then extension, then content type."""
    if content.startswith(b"%PDF-"):
        return "pdf"
    suffix = PurePosixPath(file_name).suffix.lower().removeprefix(".")
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in _CONTENT_TYPES:
        return _CONTENT_TYPES[media_type]
    if media_type.endswith("+json"):
        return "json"
    if media_type.startswith("text/"):
        return "txt"
    return "binary"


def _read_bounded(ctx: UnitContext) -> tuple[bytes, str]:
    if ctx.size is not None and ctx.size > MAX_DOCUMENT_BYTES:
        raise _too_large(ctx.size)
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    received = 0
    with ctx.open() as stream:
        while chunk := stream.read(READ_CHUNK_BYTES):
            received += len(chunk)
            # The declared size can be missing or wrong, so the limit is enforced on what arrives.
            if received > MAX_DOCUMENT_BYTES:
                raise _too_large(None)
            digest.update(chunk)
            chunks.append(chunk)
            if ctx.size:
                ctx.progress(_DOWNLOAD_SHARE * min(received / ctx.size, 1.0))
    return b"".join(chunks), digest.hexdigest()


def _too_large(size: int | None) -> PermanentError:
    limit_mib = MAX_DOCUMENT_BYTES / 2**20
    actual = f"{size / 2**20:,.1f} MiB" if size is not None else f"over {limit_mib:,.1f} MiB"
    return PermanentError(
        f"This document is {actual}; documents larger than {limit_mib:,.1f} MiB are not processed.",
        code="document_too_large",
        details={"limit_bytes": MAX_DOCUMENT_BYTES, "size_bytes": size},
    )


def _parse(doc_type: DocumentType, data: bytes, ctx: UnitContext) -> _Parsed:
    if doc_type == "pdf":
        return _parse_pdf(data, ctx)
    if doc_type == "binary":
        return _Parsed("binary", None)
    decoded = _decode(data)
    if decoded is None:
        return _Parsed("binary", None)
    text, encoding = decoded
    extra: dict[str, Scalar] = {"encoding": encoding}
    if doc_type == "json":
        _check_json(text)
    elif doc_type == "csv":
        extra |= _csv_shape(text)
    elif doc_type == "html":
        page = _VisibleText()
        page.feed(text)
        page.close()
        text = page.text()
        if page.title:
            extra["title"] = page.title
    return _Parsed(doc_type, text, extra)


def _decode(data: bytes) -> tuple[str, str] | None:
    """The text and the encoding it was read with, or None when the bytes are not text."""
    # UTF-16 is the one text encoding full of NUL bytes; only trust it when it announces itself.
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            return None
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Files that are not UTF-8 mostly come from Windows; cp1252 leaves five bytes undefined, and
    # latin-1, which defines every byte, reads those rather than failing.
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _check_json(text: str) -> None:
    try:
        json.loads(text)
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
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    while True:
        # A bad record (say, a field over csv.field_size_limit) is counted and skipped; the reader
        # carries on with the next line.
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error:
            malformed += 1
            continue
        if record:
            rows += 1
            columns = max(columns, len(record))
    shape: dict[str, Scalar] = {"rows": rows, "columns": columns, "delimiter": dialect.delimiter}
    if malformed:
        shape["malformed_rows"] = malformed
    return shape


class _VisibleText(HTMLParser):
    """The text a browser would show, one block element per line, and the document title."""

    _HIDDEN = frozenset({"script", "style", "template"})
    _CELLS = frozenset({"td", "th"})
    _BLOCKS = frozenset(
        {
            "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
            "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
            "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr",
            "ul",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._title_parts: list[str] = []
        self._hidden_depth = 0
        self._in_title = False
        self.title: str | None = None

    def handle_starttag(self, tag: str, _attrs: list[tuple[str, str | None]]) -> None:
        self._boundary(tag)
        if tag in self._HIDDEN:
            self._hidden_depth += 1
        elif tag == "title" and self.title is None:
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        self._boundary(tag)
        if tag in self._HIDDEN:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag == "title" and self._in_title:
            self._in_title = False
            # Only the first title counts: an inline SVG in the body can carry its own.
            self.title = " ".join("".join(self._title_parts).split()) or None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)
        elif not self._hidden_depth:
            self._parts.append(data)

    def parse_marked_section(self, i: int, _report: bool = True) -> int:
        # Python before 3.13 raises AssertionError on a "<![" it does not know. Browsers treat any
        # "<![" in HTML content, CDATA included, as a bogus comment that ends at the next ">".
        end = self.rawdata.find(">", i + 3)
        return -1 if end < 0 else end + 1

    def _boundary(self, tag: str) -> None:
        # Browsers break lines at block elements and separate table cells; inline tags join words.
        if tag in self._BLOCKS:
            self._parts.append("\n")
        elif tag in self._CELLS:
            self._parts.append(" ")

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self._parts).splitlines())
        return "\n".join(line for line in lines if line)


def _parse_pdf(data: bytes, ctx: UnitContext) -> _Parsed:
    # Imported here: pypdf is a tenth of a second of every cold start, and most units are no PDF.
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError

    _check_pdf_framing(data)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        locked = reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED
    except DependencyError as exc:
        # AES-encrypted files need the optional cryptography package even without a password.
        raise _pdf_encrypted() from exc
    except Exception as exc:
        # pypdf raises many exception types on malformed input; all of them mean the same here.
        raise _pdf_unreadable(f"{type(exc).__name__}: {exc}") from exc
    if locked:
        raise _pdf_encrypted()
    texts: list[str] = []
    try:
        pages = reader.pages
        for number, page in enumerate(pages, start=1):
            texts.append(page.extract_text())
            ctx.progress(_DOWNLOAD_SHARE + (1 - _DOWNLOAD_SHARE) * number / len(pages))
        title = reader.metadata.title if reader.metadata is not None else None
    except Exception as exc:
        raise _pdf_unreadable(f"{type(exc).__name__}: {exc}") from exc
    if not texts:
        raise _pdf_unreadable("no pages")
    extra: dict[str, Scalar] = {"pages": len(texts)}
    # A damaged /Info dictionary can hold a number or a dictionary where the title belongs.
    if isinstance(title, str) and title.strip():
        extra["title"] = title.strip()
    # A form feed is the customary page break in extracted text (pdftotext uses it) and
    # counts as a line break and as whitespace, so lines and words add up across pages.
    return _Parsed("pdf", "\f".join(texts), extra)


def _check_pdf_framing(data: bytes) -> None:
    """Refuse files without a PDF header or trailer before pypdf sees them.

    In non-strict mode pypdf carries on past a cut-short ``%%EOF`` marker and rebuilds a broken
    cross-reference table by scanning for objects, so a truncated file can "open" with whatever
    pages survived. A complete file ends with a ``startxref`` offset and an ``%%EOF`` marker; a
    truncated one almost never does.
    """
    if b"%PDF-" not in data[:_PDF_SLACK_BYTES]:
        raise _pdf_unreadable("no %PDF header at the start")
    tail = data[-_PDF_SLACK_BYTES:]
    if b"%%EOF" not in tail or b"startxref" not in tail:
        raise _pdf_unreadable("no end-of-file trailer")


def _pdf_unreadable(reason: str) -> PermanentError:
    reason = reason[:300]
    return PermanentError(
        f"This PDF could not be read: it looks truncated or damaged ({reason}).",
        code="pdf_unreadable",
        details={"reason": reason},
    )


def _pdf_encrypted() -> PermanentError:
    return PermanentError(
        "This PDF is password-protected; remove the password and upload it again.",
        code="pdf_encrypted",
    )
