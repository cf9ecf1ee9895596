"""The built-in document processor and the PDF writer it is tested with."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
from dataclasses import dataclass, field
from typing import BinaryIO

import pytest
from pypdf import PdfReader, PdfWriter

from chalicelib.errors import PermanentError
from chalicelib.processors import ProcessorOutput, Stage, UnitContext, documents, registry
from chalicelib.processors.documents import detect_type, extract_document
from chalicelib.processors.pdfgen import make_pdf


@dataclass
class FakeContext:
    data: bytes
    name: str = "document.txt"
    content_type: str = "application/octet-stream"
    size: int | None = None
    session_id: str = "s-test"
    ordinal: str = "000001"
    stages: list[Stage] = field(default_factory=list)
    progress_reports: list[float] = field(default_factory=list)
    opened: int = 0

    def stage(self, name: Stage) -> None:
        self.stages.append(name)

    def progress(self, fraction: float) -> None:
        self.progress_reports.append(fraction)

    def open(self) -> BinaryIO:
        self.opened += 1
        return io.BytesIO(self.data)


def context(
    data: bytes, name: str = "document.txt", content_type: str = "", *, size_known: bool = True
) -> FakeContext:
    return FakeContext(
        data=data, name=name, content_type=content_type, size=len(data) if size_known else None
    )


def run(data: bytes, name: str = "document.txt", content_type: str = "") -> ProcessorOutput:
    ctx: UnitContext = context(data, name, content_type)
    return extract_document(ctx)


def failure(data: bytes, name: str, content_type: str = "") -> PermanentError:
    with pytest.raises(PermanentError) as caught:
        run(data, name, content_type)
    return caught.value


LOREM = "Quarterly report\nRevenue grew in every region.\nCosts stayed flat."


# Registration


def test_document_processor_is_registered_and_accepts_any_file() -> None:
    found = registry.get("document")
    assert found is not None
    assert found.run is extract_document
    assert found.match("archive.7z", "application/x-7z-compressed")
    assert found.match("", "")


# Type detection


@pytest.mark.parametrize(
    ("name", "content_type", "head", "expected"),
    [
        ("notes.txt", "", b"", "txt"),
        ("README.MD", "", b"", "md"),
        ("table.csv", "", b"", "csv"),
        ("table.tsv", "", b"", "csv"),
        ("data.json", "", b"", "json"),
        ("page.htm", "", b"", "html"),
        ("page.html", "", b"", "html"),
        ("paper.pdf", "", b"", "pdf"),
        ("folder/inner/notes.txt", "", b"", "txt"),
        ("upload", "text/csv; charset=utf-8", b"", "csv"),
        ("upload", "application/ld+json", b"", "json"),
        ("script.py", "text/x-python", b"", "txt"),
        ("scan.bin", "application/octet-stream", b"%PDF-1.7\n", "pdf"),
        ("notes.txt", "text/plain", b"%PDF-1.4\n", "pdf"),
        ("photo.png", "image/png", b"\x89PNG\r\n", "binary"),
        ("upload", "application/octet-stream", b"hello", "binary"),
        ("upload", "", b"hello", "binary"),
    ],
)
def test_type_is_detected_from_magic_bytes_then_extension_then_content_type(
    name: str, content_type: str, head: bytes, expected: str
) -> None:
    assert detect_type(name, content_type, head) == expected


# Plain text and encodings


def test_plain_text_reports_counts_hash_and_encoding() -> None:
    data = LOREM.encode()
    out = run(data, "report.txt")
    assert out.body == {"text": LOREM}
    assert out.metadata["type"] == "txt"
    assert out.metadata["chars"] == len(LOREM)
    assert out.metadata["words"] == 10
    assert out.metadata["lines"] == 3
    assert out.metadata["bytes"] == len(data)
    assert out.metadata["encoding"] == "utf-8"
    sha256 = out.metadata["sha256"]
    assert isinstance(sha256, str)
    assert re.fullmatch(r"[0-9a-f]{64}", sha256)


def test_markdown_is_kept_as_written() -> None:
    text = "# Title\n\n* one\n* two\n"
    out = run(text.encode(), "notes.md")
    assert out.metadata["type"] == "md"
    assert out.body["text"] == text
    assert out.metadata["lines"] == 4


def test_utf8_byte_order_mark_is_dropped_from_the_text() -> None:
    out = run("\ufeffcafé au lait".encode(), "menu.txt")
    assert out.body["text"] == "café au lait"
    assert out.metadata["encoding"] == "utf-8"
    assert out.metadata["chars"] == 12


def test_non_utf8_text_is_read_as_cp1252_and_the_encoding_noted() -> None:
    out = run(b"caf\xe9 \x93quoted\x94 \x80 5", "legacy.txt")
    assert out.body["text"] == "café \u201cquoted\u201d € 5"
    assert out.metadata["encoding"] == "cp1252"


def test_bytes_undefined_in_cp1252_fall_back_to_latin1() -> None:
    out = run(b"caf\xe9 \x81", "legacy.txt")
    assert out.body["text"] == "café \x81"
    assert out.metadata["encoding"] == "latin-1"


def test_utf16_text_with_a_byte_order_mark_is_read_as_text() -> None:
    out = run("Grüße aus Köln".encode("utf-16"), "greeting.txt")
    assert out.metadata["type"] == "txt"
    assert out.metadata["encoding"] == "utf-16"
    assert out.body["text"] == "Grüße aus Köln"


def test_empty_text_file_has_zero_counts() -> None:
    out = run(b"", "empty.txt")
    assert out.body == {"text": ""}
    assert (out.metadata["chars"], out.metadata["words"], out.metadata["lines"]) == (0, 0, 0)


# Binary


def test_text_file_containing_nul_bytes_is_treated_as_binary() -> None:
    out = run(b"looks like text\x00but is not", "notes.txt")
    assert out.metadata["type"] == "binary"
    assert out.body == {}


def test_unknown_file_is_kept_as_binary_with_size_and_hash_only() -> None:
    data = bytes(range(256)) * 4
    out = run(data, "blob.dat", "application/octet-stream")
    assert set(out.metadata) == {"type", "bytes", "sha256"}
    assert out.metadata["type"] == "binary"
    assert out.metadata["bytes"] == 1024
    assert out.metadata["sha256"] == hashlib.sha256(data).hexdigest()
    assert out.body == {}


# JSON


def test_json_keeps_the_raw_text() -> None:
    text = '{\n  "name": "chute",\n  "tags": ["a", "b"]\n}\n'
    out = run(text.encode(), "config.json")
    assert out.metadata["type"] == "json"
    assert out.body["text"] == text
    assert out.metadata["lines"] == 4


def test_invalid_json_fails_permanently_naming_line_and_column() -> None:
    error = failure(b'{\n  "a": 1,\n  "b" 2\n}\n', "broken.json")
    assert error.code == "json_invalid"
    assert "line 3, column 7" in error.message
    assert error.details["line"] == 3
    assert error.details["column"] == 7


def test_empty_json_file_is_invalid() -> None:
    assert failure(b"", "empty.json").code == "json_invalid"


def test_json_nested_too_deeply_is_invalid_not_a_crash() -> None:
    assert failure(b"[" * 100_000 + b"]" * 100_000, "deep.json").code == "json_invalid"


# CSV


def test_csv_counts_rows_and_columns() -> None:
    data = b"name,city,age\nAda,London,36\nLinus,Helsinki,54\n"
    out = run(data, "people.csv")
    assert out.metadata["type"] == "csv"
    assert out.metadata["rows"] == 3
    assert out.metadata["columns"] == 3
    assert out.metadata["delimiter"] == ","
    assert out.body["text"] == data.decode()


def test_csv_dialect_is_sniffed_and_quoted_newlines_stay_in_one_row() -> None:
    data = b'id;note\n1;"first line\nsecond line"\n2;"semi;colon"\n'
    out = run(data, "notes.csv")
    assert out.metadata["delimiter"] == ";"
    assert out.metadata["rows"] == 3
    assert out.metadata["columns"] == 2


def test_tab_separated_file_is_counted_as_csv() -> None:
    out = run(b"a\tb\tc\n1\t2\t3\n", "table.tsv")
    assert out.metadata["type"] == "csv"
    assert (out.metadata["rows"], out.metadata["columns"]) == (2, 3)


def test_ragged_csv_reports_the_widest_row_and_skips_blank_lines() -> None:
    out = run(b"a,b\n\n1,2,3,4\n5\n", "ragged.csv")
    assert (out.metadata["rows"], out.metadata["columns"]) == (3, 4)


def test_csv_record_too_large_to_parse_is_counted_not_fatal() -> None:
    huge = "x" * (200 * 1024)
    data = f"id,body\n1,short\n2,{huge}\n3,short\n".encode()
    out = run(data, "big-field.csv")
    assert out.metadata["malformed_rows"] == 1
    assert out.metadata["rows"] == 3


# HTML


def test_html_text_is_what_a_browser_shows_and_title_is_metadata() -> None:
    page = b"""<!doctype html>
<html><head><title> Release  notes </title>
<style>body { color: red }</style><script>var hidden = "do not index";</script></head>
<body><h1>Version&nbsp;2</h1><p>Faster <b>up</b>loads &amp; fewer retries.</p>
<table><tr><td>a</td><td>b</td></tr></table></body></html>"""
    out = run(page, "notes.html")
    assert out.metadata["type"] == "html"
    assert out.metadata["title"] == "Release notes"
    assert out.body["text"] == "Version 2\nFaster uploads & fewer retries.\na b"
    assert "hidden" not in str(out.body["text"])
    assert "color" not in str(out.body["text"])


def test_html_marked_sections_are_hidden_like_browsers_do_instead_of_crashing() -> None:
    out = run(b"<p>a <![CDATA[hidden]]> b <![if !IE]>c<![endif]> <![bogus d</p>", "odd.html")
    assert out.body["text"] == "a b c"


# PDF


def test_pdf_generator_writes_a_cross_reference_table_a_strict_reader_accepts() -> None:
    pdf = make_pdf(["one"], title="T", padding=b"\x00" * 10)
    xref_at = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    assert pdf[xref_at:].startswith(b"xref\n0 8\n")
    entries = pdf[xref_at:].split(b"\n")[3:10]
    assert len(entries) == 7
    for number, entry in enumerate(entries, start=1):
        assert len(entry) + 1 == 20
        assert pdf[int(entry[:10]) :].startswith(b"%d 0 obj\n" % number)
    reader = PdfReader(io.BytesIO(pdf), strict=True)
    assert len(reader.pages) == 1


def test_pdf_padding_adds_bytes_without_changing_the_text() -> None:
    padding = random.Random(7).randbytes(50_000)
    plain = make_pdf(["same words"])
    padded = make_pdf(["same words"], padding=padding)
    assert len(padded) > len(plain) + len(padding)
    assert run(padded, "padded.pdf").body == run(plain, "plain.pdf").body


def test_single_page_pdf_reports_one_page_and_its_text() -> None:
    out = run(make_pdf(["Hello from chute (a PDF)"]), "hello.pdf")
    assert out.metadata["type"] == "pdf"
    assert out.metadata["pages"] == 1
    assert "title" not in out.metadata
    text = out.body["text"]
    assert isinstance(text, str)
    assert text.split() == ["Hello", "from", "chute", "(a", "PDF)"]
    assert out.metadata["words"] == 5


def test_multi_page_pdf_reports_pages_title_and_all_text() -> None:
    pages = ["First page text", "Second page text\nwith two lines", "Third page"]
    out = run(make_pdf(pages, title="Annual Report"), "report.pdf", "application/pdf")
    assert out.metadata["pages"] == 3
    assert out.metadata["title"] == "Annual Report"
    text = out.body["text"]
    assert isinstance(text, str)
    assert text.split() == " ".join(pages).split()
    assert out.metadata["lines"] == 4


def test_pdf_title_that_is_not_text_is_left_out() -> None:
    pdf = make_pdf(["body"], title="ab")
    # Same length, so the cross-reference offsets stay right.
    damaged = pdf.replace(b"/Title <FEFF00610062>", b"/Title 12345678901234")
    assert damaged != pdf
    out = run(damaged, "odd-title.pdf")
    assert out.metadata["pages"] == 1
    assert "title" not in out.metadata


def test_pdf_is_recognised_by_its_header_whatever_its_name() -> None:
    out = run(make_pdf(["hidden pdf"]), "download.bin", "application/octet-stream")
    assert out.metadata["type"] == "pdf"


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
def test_truncated_pdf_fails_as_unreadable(fraction: float) -> None:
    pdf = make_pdf(["alpha " * 200, "beta", "gamma"], padding=random.Random(1).randbytes(20_000))
    error = failure(pdf[: int(len(pdf) * fraction)], "cut.pdf")
    assert error.code == "pdf_unreadable"
    assert error.message.startswith("This PDF could not be read: it looks truncated or damaged (")


def test_pdf_cut_anywhere_before_its_end_marker_fails_as_unreadable() -> None:
    pdf = make_pdf(["one", "two", "three"], title="Cut")
    # Dropping only the final newline leaves a complete file; any shorter cut loses the trailer.
    for length in range(len(pdf) - 1):
        assert failure(pdf[:length], "cut.pdf").code == "pdf_unreadable", length


def test_file_named_pdf_without_a_pdf_header_fails_as_unreadable() -> None:
    error = failure(b"<html>not a pdf</html>", "invoice.pdf")
    assert error.code == "pdf_unreadable"
    assert "header" in error.message


def test_pdf_with_header_and_trailer_but_garbage_inside_fails_as_unreadable() -> None:
    data = b"%PDF-1.4\n" + random.Random(3).randbytes(4000) + b"\nstartxref\n9\n%%EOF\n"
    assert failure(data, "garbage.pdf").code == "pdf_unreadable"


def encrypted_pdf(user_password: str) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["confidential figures"])))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_password_protected_pdf_fails_as_encrypted() -> None:
    error = failure(encrypted_pdf("open-sesame"), "locked.pdf")
    assert error.code == "pdf_encrypted"
    assert "password" in error.message


def test_pdf_encrypted_without_an_open_password_is_read() -> None:
    out = run(encrypted_pdf(""), "restricted.pdf")
    assert out.metadata["pages"] == 1
    assert "confidential figures" in str(out.body["text"])


# Metadata shape


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.txt", LOREM.encode()),
        ("a.csv", b"x,y\n1,2\n"),
        ("a.json", b'{"k": [1, 2]}'),
        ("a.html", b"<title>t</title><p>p</p>"),
        ("a.pdf", make_pdf(["p"], title="t")),
        ("a.bin", b"\x00\x01"),
    ],
)
def test_metadata_values_are_scalars_and_the_body_is_json(name: str, data: bytes) -> None:
    out = run(data, name)
    assert all(isinstance(v, str | int | float | bool) for v in out.metadata.values())
    json.dumps(out.body)


# Stages, progress and limits


@pytest.mark.parametrize(
    ("name", "data"), [("a.txt", LOREM.encode()), ("a.pdf", make_pdf(["x", "y"])), ("a.bin", b"")]
)
def test_stages_are_reported_in_order_downloading_parsing_saving(name: str, data: bytes) -> None:
    ctx = context(data, name)
    extract_document(ctx)
    assert ctx.stages == ["downloading", "parsing", "saving"]


@pytest.mark.parametrize(("name", "data"), [("a.txt", LOREM.encode() * 20), ("a.pdf", None)])
def test_progress_rises_monotonically_from_zero_to_one(
    name: str, data: bytes | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(documents, "READ_CHUNK_BYTES", 64)
    ctx = context(data or make_pdf([f"page {n}" for n in range(5)]), name)
    extract_document(ctx)
    reports = ctx.progress_reports
    assert len(reports) > 5
    assert all(0.0 <= r <= 1.0 for r in reports)
    assert reports == sorted(reports)
    assert reports[-1] == 1.0


def test_without_a_known_size_progress_still_ends_at_one() -> None:
    ctx = context(LOREM.encode(), "a.txt", size_known=False)
    extract_document(ctx)
    assert ctx.progress_reports == [1.0]


def test_document_declared_over_64_mib_is_refused_before_reading() -> None:
    ctx = FakeContext(data=b"", name="huge.txt", size=64 * 1024 * 1024 + 1)
    with pytest.raises(PermanentError) as caught:
        extract_document(ctx)
    assert caught.value.code == "document_too_large"
    assert ctx.opened == 0


def test_document_of_exactly_the_limit_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_DOCUMENT_BYTES", 100)
    assert run(b"x" * 100, "limit.txt").metadata["bytes"] == 100


def test_stream_longer_than_the_limit_is_refused_whatever_size_was_declared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(documents, "MAX_DOCUMENT_BYTES", 100)
    monkeypatch.setattr(documents, "READ_CHUNK_BYTES", 30)
    for size in (None, 10):
        ctx = FakeContext(data=b"x" * 101, name="liar.txt", size=size)
        with pytest.raises(PermanentError) as caught:
            extract_document(ctx)
        assert caught.value.code == "document_too_large"
