"""The built-in document processor and the PDF writer it is tested with."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import random
import tracemalloc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, NumberObject

from chalicelib import filetypes
from chalicelib.errors import PermanentError, UnitSkipped
from chalicelib.processors import ProcessorOutput, Stage, UnitContext, documents, htmltext, registry
from chalicelib.processors import textdecode as td
from chalicelib.processors.base import ClientKey
from chalicelib.processors.documents import detect_type, extract_document
from chalicelib.processors.pdfgen import make_pdf

T = TypeVar("T")
NOT_A_DOCUMENT = "This file is not a document chute can read (not text or PDF); it was skipped."


class CountingStream(io.BytesIO):
    """Remembers how much was read: the processor closes the stream when it is done."""

    bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


@dataclass
class FakeContext:
    data: bytes
    name: str = "document.txt"
    content_type: str = "application/octet-stream"
    size: int | None = None
    session_id: str = "s-test"
    ordinal: str = "000001"
    options: Mapping[str, Any] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    progress_reports: list[float] = field(default_factory=list)
    progress_by_stage: dict[Stage, list[float]] = field(default_factory=dict)
    opened: int = 0
    stream: CountingStream = field(default_factory=CountingStream)

    @property
    def resume_state(self) -> Any:
        return None

    def stage(self, name: Stage) -> None:
        self.stages.append(name)

    def progress(self, fraction: float) -> None:
        self.progress_reports.append(fraction)
        self.progress_by_stage.setdefault(self.stages[-1], []).append(fraction)

    def open(self) -> BinaryIO:
        self.opened += 1
        self.stream = CountingStream(self.data)
        return self.stream

    def checkpoint(self, state: Any) -> None:
        raise AssertionError("pages here are read well within a checkpoint interval")

    def time_left(self) -> float:
        return 300.0

    def client(self, key: ClientKey[T]) -> T:
        raise AssertionError("the document processor needs no client")


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


def skipped(data: bytes, name: str, content_type: str = "") -> UnitSkipped:
    with pytest.raises(UnitSkipped) as caught:
        run(data, name, content_type)
    return caught.value


LOREM = "Quarterly report\nRevenue grew in every region.\nCosts stayed flat."


# Registration


def test_document_processor_is_registered() -> None:
    found = registry.get("document")
    assert found is not None
    assert found.run is extract_document


def test_the_processor_limit_is_the_one_of_the_type_policy() -> None:
    assert documents.MAX_DOCUMENT_BYTES == filetypes.MAX_DOCUMENT_BYTES


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
        ("photo.png", "image/png", b"\x89PNG\r\n", None),
        ("upload", "application/octet-stream", b"hello", None),
        ("upload", "", b"hello", None),
        ("README", "", b"hello", None),
        ("app.log.1", "", b"hello", None),
    ],
)
def test_type_is_detected_from_magic_bytes_then_extension_then_content_type(
    name: str, content_type: str, head: bytes, expected: str | None
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
    assert out.metadata["sha256"] == hashlib.sha256(data).hexdigest()


def test_size_and_hash_are_of_every_byte_received_in_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(documents, "READ_CHUNK_BYTES", 7)
    data = "\ufeffnaïve café\n".encode() * 50
    ctx = context(data, "menu.txt", size_known=False)
    out = extract_document(ctx)
    assert out.metadata["bytes"] == len(data)
    assert out.metadata["sha256"] == hashlib.sha256(data).hexdigest()
    assert ctx.stream.bytes_read == len(data)


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


# Real sentences (a city council meeting), as legacy Windows and Unix files hold them. The
# superset code pages the detector names (cp932 for Shift_JIS, gb18030 for GBK, cp949 for EUC-KR)
# are the ones browsers decode those labels with.
SENTENCES = {
    "ja": "市議会は昨夜、市役所で来年度の予算について話し合うために集まった。"
    "橋の改修工事は三月に始まると議長は述べた。",
    "zh-hans": "市议会昨晚在市政厅开会，讨论明年的预算。议长说，桥梁的翻修工程将于三月开始。",
    "zh-hant": "市議會昨晚在市政廳開會，討論明年的預算。議長說，橋梁的翻修工程將於三月開始。",
    "ko": "시의회는 어젯밤 시청에서 내년도 예산을 논의하기 위해 모였다. "
    "다리 보수 공사는 삼월에 시작될 것이라고 의장이 말했다.",
    "ru": "Вчера вечером городской совет собрался в мэрии, чтобы обсудить бюджет на следующий "
    "год. Ремонт моста начнётся в марте, сообщил председатель совета.",
    "el": "Χθες το βράδυ το δημοτικό συμβούλιο συνεδρίασε στο δημαρχείο για να συζητήσει τον "
    "προϋπολογισμό του επόμενου έτους.",
    "fr": "Le conseil municipal s'est réuni hier soir à la mairie pour discuter du budget de "
    "l'année prochaine. Les élus ont approuvé à l'unanimité la rénovation de l'école.",
}


@pytest.mark.parametrize(
    ("language", "written_as", "detected"),
    [
        ("ja", "shift_jis", "cp932"),
        ("ja", "euc_jp", "euc_jp"),
        ("zh-hans", "gbk", "gb18030"),
        ("zh-hant", "big5", "big5"),
        ("ko", "euc_kr", "cp949"),
        ("ru", "cp1251", "cp1251"),
        ("ru", "koi8_r", "koi8_r"),
        ("el", "cp1253", "cp1253"),
        # The detector alone says cp1257 (Baltic) here, and "l'école" would lose its accents.
        ("fr", "cp1252", "cp1252"),
    ],
)
def test_legacy_encodings_are_detected_and_the_text_read_as_written(
    language: str, written_as: str, detected: str
) -> None:
    text = f"{SENTENCES[language]}\n" * 3
    out = run(text.encode(written_as), "minutes.txt")
    assert out.body == {"text": text}
    assert out.metadata["encoding"] == detected
    assert out.metadata["words"] == len(text.split())
    assert (out.metadata["chars"], out.metadata["lines"]) == (len(text), 3)


def test_a_few_accented_letters_are_too_little_evidence_and_stay_cp1252() -> None:
    # Given these three bytes alone, the detector answers cp932 (Japanese).
    out = run("ÄÖÜ".encode("cp1252"), "letters.txt")
    assert out.body == {"text": "ÄÖÜ"}
    assert out.metadata["encoding"] == "cp1252"


def test_legacy_text_whose_first_non_ascii_byte_comes_in_a_later_chunk_is_read_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(documents, "READ_CHUNK_BYTES", 4096)
    text = "Minutes of the council meeting\n" * 500 + f"{SENTENCES['ja']}\n" * 5
    out = run(text.encode("shift_jis"), "minutes.txt")
    assert out.body == {"text": text}
    assert out.metadata["encoding"] == "cp932"


def test_utf8_that_turns_invalid_in_a_later_chunk_keeps_its_text_and_marks_the_bad_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(documents, "READ_CHUNK_BYTES", 64)
    data = "naïve café\n".encode() * 40 + b"caf\xe9 au lait\n"
    out = run(data, "mixed.txt")
    assert out.body == {"text": "naïve café\n" * 40 + "caf\ufffd au lait\n"}
    assert out.metadata["encoding"] == "utf-8"


def test_a_few_utf8_characters_then_invalid_bytes_are_read_as_one_legacy_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(documents, "READ_CHUNK_BYTES", 64)
    data = "naïve café\n".encode() * 3 + b"caf\xe9 au lait\n"
    out = run(data, "mixed.txt")
    assert out.body == {"text": "naÃ¯ve cafÃ©\n" * 3 + "café au lait\n"}
    assert out.metadata["encoding"] == "cp1252"


def test_shift_jis_that_starts_as_valid_utf8_by_accident_is_still_detected() -> None:
    text = "爛漫の桜が満開になった。市役所の前の通りは花見の人で賑わっている。\n" * 3
    data = text.encode("shift_jis")
    assert len(data[:3].decode("utf-8")) == 1  # 爛 and half of 漫 make one UTF-8 character
    out = run(data, "spring.txt")
    assert out.body == {"text": text}
    assert out.metadata["encoding"] == "cp932"


def test_utf8_with_a_single_accent_and_megabytes_of_ascii_after_it_is_utf8(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(documents, "READ_CHUNK_BYTES", 4096)
    text = "Café menu\n" + "espresso 2.50\n" * 20_000
    out = run(text.encode(), "menu.txt")
    assert out.body == {"text": text}
    assert out.metadata["encoding"] == "utf-8"


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_characters_cut_between_chunks_are_decoded_whole(
    encoding: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(documents, "READ_CHUNK_BYTES", chunk)
    text = "Grüße 🌍 aus Köln\r\n市議会 — “quoted”\r\nend"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    out = run(data, "cut.txt")
    assert out.body == {"text": text}
    assert out.metadata["encoding"] == {"utf-8-sig": "utf-8", "utf-16-be": "utf-16"}.get(
        encoding, encoding
    )
    assert (out.metadata["chars"], out.metadata["words"], out.metadata["lines"]) == (
        len(text),
        8,
        3,
    )


def test_counts_fed_in_pieces_equal_those_of_the_whole_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every character str.split() or str.splitlines() treats specially, "\r\n" included.
    alphabet = ["a", "bc", "é", "市", " ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c"]
    alphabet += ["\x1f", "\x85", "\xa0", "\u2028", "\u2029", "\u3000"]
    monkeypatch.setattr(td, "_COUNT_SLICE_CHARS", 3)
    rng = random.Random(11)
    for _ in range(500):
        text = "".join(rng.choices(alphabet, k=rng.randrange(0, 40)))
        counter = td.TextCounter()
        start = 0
        while start < len(text):
            end = start + rng.randrange(1, 8)
            counter.feed(text[start:end])
            start = end
        expected = td.TextCounts(len(text), len(text.split()), len(text.splitlines()))
        assert counter.counts() == expected, repr(text)


# Not a document: skipped, neither completed nor failed


def test_text_file_containing_nul_bytes_is_skipped_as_not_text() -> None:
    error = skipped(b"looks like text\x00but is not", "notes.txt")
    assert (error.code, error.message) == ("unsupported_type", NOT_A_DOCUMENT)


def test_binary_file_is_skipped_not_completed() -> None:
    error = skipped(bytes(range(256)) * 4, "blob.dat", "application/octet-stream")
    assert (error.code, error.message) == ("unsupported_type", NOT_A_DOCUMENT)


def test_binary_file_is_skipped_after_its_first_chunk_not_read_to_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(documents, "READ_CHUNK_BYTES", 4096)
    ctx = context(b"\x89PNG\r\n\x1a\n\x00\x00" + random.Random(5).randbytes(100_000), "photo")
    with pytest.raises(UnitSkipped):
        extract_document(ctx)
    assert ctx.stream.bytes_read == 4096


@pytest.mark.parametrize("name", ["README", "LICENSE", "Makefile", "notes.log.1", "upload.bin"])
def test_file_whose_name_does_not_say_is_read_as_text_when_it_is_text(name: str) -> None:
    out = run(b"Copyright 2024 chute\nAll rights reserved.\n", name)
    assert out.metadata["type"] == "txt"
    assert out.body == {"text": "Copyright 2024 chute\nAll rights reserved.\n"}
    assert (out.metadata["words"], out.metadata["lines"]) == (6, 2)


def test_utf16_byte_order_mark_followed_by_bytes_that_are_not_utf16_is_skipped() -> None:
    # An odd number of bytes: the last one is half a character.
    error = skipped("Grüße".encode("utf-16") + b"!", "greeting.txt")
    assert error.code == "unsupported_type"


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


def test_csv_with_old_mac_line_ends_counts_each_row() -> None:
    out = run(b'a,b\r1,"two\rlines"\r3,4\r', "mac.csv")
    assert (out.metadata["rows"], out.metadata["columns"]) == (3, 2)
    assert out.metadata["lines"] == 4


def test_csv_record_too_large_to_parse_is_counted_not_fatal() -> None:
    huge = "x" * (200 * 1024)
    data = f"id,body\n1,short\n2,{huge}\n3,short\n".encode()
    out = run(data, "big-field.csv")
    assert out.metadata["malformed_rows"] == 1
    assert out.metadata["rows"] == 3


def test_csv_field_limit_holds_after_the_batch_parser_raised_the_process_wide_one() -> None:
    # The batch parser raises csv.field_size_limit for the whole process; a worker sharing that
    # process must still treat a 200 KiB field as malformed (CI failed on this test order).
    before = csv.field_size_limit()
    try:
        csv.field_size_limit(64 * 1024 * 1024)
        data = f"id,body\n1,short\n2,{'x' * (200 * 1024)}\n3,short\n".encode()
        out = run(data, "big-field.csv")
    finally:
        csv.field_size_limit(before)
    assert (out.metadata["malformed_rows"], out.metadata["rows"]) == (1, 3)


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


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_html_read_in_small_chunks_gives_the_same_text_and_title(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (
        "<html><head><title>Caf&eacute; menu</title><script>var x = '<p>no</p>';</script></head>"
        "<body><h1>Caf\u00e9 &amp; bar</h1><p>Espresso&nbsp;2&euro;</p><p>a <![CDATA[x]]> b</p>"
        "</body></html>"
    ).encode()
    monkeypatch.setattr(documents, "READ_CHUNK_BYTES", chunk)
    out = run(page, "menu.html")
    assert out.body == {"text": "Café & bar\nEspresso 2€\na b"}
    assert out.metadata["title"] == "Café menu"
    assert out.metadata["encoding"] == "utf-8"


def test_html_lines_finished_in_batches_equal_those_finished_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(4)
    cells = ["<p>", "</p>", "<br>", "<b>x</b>", "<td>c</td>", " word ", "\n", "\r\n", "\r", "  "]
    page = "".join(rng.choices(cells, k=3000)).encode()
    whole = run(page, "page.html").body
    monkeypatch.setattr(htmltext, "_PARTS_PER_BATCH", 3)
    assert run(page, "page.html").body == whole


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


def blank_pdf(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "pages"), [(blank_pdf(3), 3), (make_pdf(["", "   \n  "], title="Scan"), 2)]
)
def test_pdf_without_text_on_any_page_is_skipped_as_having_no_text_layer(
    data: bytes, pages: int
) -> None:
    error = skipped(data, "scan.pdf")
    assert error.code == "no_text_layer"
    assert error.message == (
        f"This PDF has no text to read on any of its {pages} pages: it looks scanned or made of "
        "images, and chute does not recognise text in images (OCR). It was skipped."
    )
    assert error.details == {"pages": pages}


def test_pdf_with_text_on_one_page_of_several_is_read() -> None:
    out = run(make_pdf(["", "only this page has words", ""]), "mostly-scanned.pdf")
    assert (out.metadata["pages"], out.metadata["words"]) == (3, 5)


# A CFF (Type1C) font program of 146 bytes, built with fontTools' FontBuilder: glyphs multiply,
# plusminus, lessequal and infinity on codes 0x02, 0x06, 0x14 and 0x31 of its built-in encoding,
# as dvipdfmx embeds TeX's maths fonts. Without /ToUnicode, pypdf needs fontTools to read it.
CFF_MATHS_FONT = bytes.fromhex(
    "010004010001010107434d535931300001010115f81d02bd8bf856f88805d30fdc108bf72612e21100030101"
    "091218696e66696e6974796c657373657175616c434d535931300000000187018800a8009c00043114020600"
    "0501010b151f2933f888bd16f824f888060ef888bd16f824f888060ef888bd16f824f888060ef888bd16f824"
    "f888060ef888bd16f824f888060e"
)


def cff_font_pdf() -> bytes:
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    program = DecodedStreamObject()
    program.set_data(CFF_MATHS_FONT)
    program[NameObject("/Subtype")] = NameObject("/Type1C")
    descriptor = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/FontDescriptor"),
            NameObject("/FontName"): NameObject("/CMSY10"),
            NameObject("/Flags"): NumberObject(4),
            NameObject("/FontFile3"): writer._add_object(program),
        }
    )
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/CMSY10"),
            NameObject("/FontDescriptor"): writer._add_object(descriptor),
        }
    )
    helvetica = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    fonts = {NameObject("/F1"): helvetica, NameObject("/F2"): writer._add_object(font)}
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject(fonts)}
    )
    content = DecodedStreamObject()
    content.set_data(b"BT /F1 12 Tf 72 700 Td (x equals ) Tj /F2 12 Tf <02> Tj ET")
    page[NameObject("/Contents")] = writer._add_object(content)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pypdf_notice_that_fonttools_is_missing_stays_out_of_the_logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pdf = cff_font_pdf()
    cmap_log = logging.getLogger("pypdf._cmap")
    with monkeypatch.context() as unfiltered:
        unfiltered.setattr(cmap_log, "filters", [])
        PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    notices = [r for r in caplog.records if str(r.msg).startswith("fontTools is required")]
    assert len(notices) == 1, "this PDF no longer exercises pypdf's fontTools path"
    caplog.clear()
    out = run(pdf, "paper.pdf")
    assert str(out.body["text"]).startswith("x equals")
    assert caplog.records == []
    cmap_log.warning("another pypdf warning")
    assert [r.getMessage() for r in caplog.records] == ["another pypdf warning"]


# Metadata shape


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.txt", LOREM.encode()),
        ("a.csv", b"x,y\n1,2\n"),
        ("a.json", b'{"k": [1, 2]}'),
        ("a.html", b"<title>t</title><p>p</p>"),
        ("a.pdf", make_pdf(["p"], title="t")),
        ("README", b"plain"),
    ],
)
def test_metadata_values_are_scalars_and_the_body_is_json(name: str, data: bytes) -> None:
    out = run(data, name)
    assert all(isinstance(v, str | int | float | bool) for v in out.metadata.values())
    json.dumps(out.body)


# Stages, progress and limits


@pytest.mark.parametrize(
    ("name", "data"),
    [("a.txt", LOREM.encode()), ("a.pdf", make_pdf(["x", "y"])), ("a.html", b"<p>x</p>")],
)
def test_stages_are_reported_in_order_downloading_parsing_saving(name: str, data: bytes) -> None:
    ctx = context(data, name)
    extract_document(ctx)
    assert ctx.stages == ["downloading", "parsing", "saving"]


@pytest.mark.parametrize(("name", "data"), [("a.txt", LOREM.encode() * 20), ("a.pdf", None)])
def test_progress_rises_from_zero_to_one_within_each_stage(
    name: str, data: bytes | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(documents, "READ_CHUNK_BYTES", 64)
    ctx = context(data or make_pdf([f"page {n}" for n in range(5)]), name)
    extract_document(ctx)
    downloading = ctx.progress_by_stage["downloading"]
    assert len(downloading) > 5
    assert downloading == sorted(downloading)
    assert downloading[-1] == 1.0
    parsing = ctx.progress_by_stage["parsing"]
    assert parsing == ([0.2, 0.4, 0.6, 0.8, 1.0, 1.0] if name == "a.pdf" else [1.0])
    assert "saving" not in ctx.progress_by_stage


def test_without_a_known_size_progress_still_ends_at_one() -> None:
    ctx = context(LOREM.encode(), "a.txt", size_known=False)
    extract_document(ctx)
    assert ctx.progress_reports == [1.0]


def test_document_declared_over_the_limit_is_refused_before_reading_in_words() -> None:
    ctx = FakeContext(data=b"", name="huge.txt", size=100 * 2**20)
    with pytest.raises(PermanentError) as caught:
        extract_document(ctx)
    assert caught.value.code == "document_too_large"
    assert caught.value.message == (
        "This document is 100 MB; documents larger than 64 MB are not processed."
    )
    assert caught.value.details == {"limit_bytes": 64 * 2**20, "size_bytes": 100 * 2**20}
    assert ctx.opened == 0


def test_document_of_exactly_the_limit_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_DOCUMENT_BYTES", 100)
    assert run(b"x" * 100, "limit.txt").metadata["bytes"] == 100


def eight_mib(kind: str) -> bytes:
    if kind == "pdf":
        return make_pdf(["a page of words"], padding=random.Random(1).randbytes(8 * 2**20))
    words = random.Random(2).choices(["alpha", "beta", "gamma", "delta", "epsilon"], k=2**20)
    if kind == "json":
        records = [{"id": n, "note": " ".join(words[n : n + 6])} for n in range(0, 2**20, 6)]
        return json.dumps(records).encode()
    return (" ".join(words)[: 8 * 2**20 - 1] + "\n").encode()


@pytest.mark.parametrize(("kind", "bound"), [("txt", 2.3), ("json", 2.3), ("pdf", 1.4)])
def test_a_document_is_held_once_not_as_chunks_and_their_join_and_its_words(
    kind: str, bound: float
) -> None:
    """tracemalloc's peak over the processor's run, in sizes of the document: about 2 for text
    (its pieces, then their join; JSON's objects are dropped as parsed), 1.25 for a PDF (its
    buffer). Before, the text was held as chunks, their join, its decoding and a list of its
    words, and JSON as a tree of objects besides."""
    data = eight_mib(kind)
    ctx = context(data, f"big.{kind}")
    tracemalloc.start()
    try:
        extract_document(ctx)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < bound * len(data)


def test_stream_longer_than_the_limit_is_refused_whatever_size_was_declared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(documents, "MAX_DOCUMENT_BYTES", 100)
    monkeypatch.setattr(documents, "READ_CHUNK_BYTES", 30)
    for size in (None, 10):
        ctx = FakeContext(data=b"x" * 1000, name="liar.txt", size=size)
        with pytest.raises(PermanentError) as caught:
            extract_document(ctx)
        assert caught.value.code == "document_too_large"
        assert caught.value.message == (
            "This document is over 100 bytes; documents larger than 100 bytes are not processed."
        )
        # Refused at the chunk that crossed the limit, not after reading everything.
        assert ctx.stream.bytes_read == 120


@dataclass
class ResumingContext(FakeContext):
    """An attempt after one that saved `saved` as its checkpoint."""

    saved: Any = None

    @property
    def resume_state(self) -> Any:
        return self.saved


def test_a_pdf_resumes_after_the_pages_a_checkpoint_of_the_same_file_saved() -> None:
    pdf = make_pdf(["first page", "second page", "third page"])
    digest = hashlib.sha256(pdf).hexdigest()
    ctx = ResumingContext(data=pdf, name="a.pdf", saved={"sha256": digest, "pages": ["FIRST"]})

    output = extract_document(ctx)

    assert output.body["text"] == "FIRST\fsecond page\fthird page"
    assert (output.metadata["pages"], output.metadata["pages_resumed"]) == (3, 1)


@pytest.mark.parametrize(
    "saved",
    [
        {"sha256": "another file", "pages": ["FIRST"]},
        {"sha256": "SAME", "pages": ["FIRST", "SECOND", "THIRD", "FOURTH"]},  # more than it has
        {"sha256": "SAME", "pages": [1, 2]},
        ["not", "a", "checkpoint"],
    ],
)
def test_a_pdf_checkpoint_that_does_not_fit_the_file_is_ignored(saved: Any) -> None:
    pdf = make_pdf(["first page", "second page", "third page"])
    if isinstance(saved, dict) and saved["sha256"] == "SAME":
        saved = {**saved, "sha256": hashlib.sha256(pdf).hexdigest()}

    output = extract_document(ResumingContext(data=pdf, name="a.pdf", saved=saved))

    assert output.body["text"] == "first page\fsecond page\fthird page"
    assert "pages_resumed" not in output.metadata
