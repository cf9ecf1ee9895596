"""The one type policy: which names are documents, which are not, and which the bytes decide."""

from __future__ import annotations

import pytest

from chalicelib.filetypes import (
    ARCHIVE_EXTENSIONS,
    DOCUMENT_EXTENSIONS,
    DOCUMENT_TYPES,
    MAX_DOCUMENT_BYTES,
    document_type,
    document_verdict,
    extension,
)
from chalicelib.processors.documents import extract_document
from chalicelib.processors.pdfgen import make_pdf
from tests.unit.test_documents import context


def test_document_extensions_are_the_text_formats_and_pdf() -> None:
    assert sorted(DOCUMENT_EXTENSIONS) == [
        ".csv", ".htm", ".html", ".json", ".log", ".markdown", ".md", ".pdf", ".text", ".tsv",
        ".txt",
    ]  # fmt: skip
    assert set(DOCUMENT_TYPES) == DOCUMENT_EXTENSIONS
    assert sorted(ARCHIVE_EXTENSIONS) == [".zip"]
    assert not DOCUMENT_EXTENSIONS & ARCHIVE_EXTENSIONS


def test_the_document_size_limit_is_64_mib() -> None:
    assert MAX_DOCUMENT_BYTES == 64 * 2**20


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("notes.txt", ".txt"),
        ("Reports/Q3.PDF", ".pdf"),
        ("folder\\inner\\page.HTM", ".htm"),
        ("archive.tar.gz", ".gz"),
        ("README", ""),
        ("dir.v2/README", ""),
        (".bashrc", ""),
        ("notes.", ""),
        ("..", ""),
        ("", ""),
        ("app.log.1", ""),
        ("v1.2", ""),
        ("report.2024.csv", ".csv"),
    ],
)
def test_extension_is_that_of_the_last_path_component(name: str, expected: str) -> None:
    assert extension(name) == expected


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("notes.txt", "document"),
        ("Report.PDF", "document"),
        ("site/index.htm", "document"),
        ("server.log", "document"),
        ("table.tsv", "document"),
        ("photo.png", "unsupported"),
        ("letter.docx", "unsupported"),
        ("setup.exe", "unsupported"),
        ("nested.zip", "unsupported"),
        ("backup.tar.gz", "unsupported"),
        ("README", "by_content"),
        ("COPYING", "by_content"),
        ("LICENSE", "by_content"),
        ("Makefile", "by_content"),
        ("docs.d/NOTICE", "by_content"),
        (".gitignore", "by_content"),
        ("app.log.1", "by_content"),
    ],
)
def test_document_verdict_by_name(name: str, verdict: str) -> None:
    assert document_verdict(name) == verdict


def test_document_type_names_how_each_document_extension_is_read() -> None:
    assert document_type("a.markdown") == "md"
    assert document_type("a.tsv") == "csv"
    assert document_type("a.text") == "txt"
    assert document_type("photo.png") is None
    assert document_type("README") is None


SAMPLES = {
    "txt": b"plain words\n",
    "md": b"# Title\n",
    "csv": b"a,b\n1,2\n",
    "json": b'{"a": 1}',
    "html": b"<p>shown</p>",
    "pdf": make_pdf(["page text"]),
}


@pytest.mark.parametrize("suffix", sorted(DOCUMENT_EXTENSIONS))
def test_every_document_extension_is_read_by_the_processor_as_its_type(suffix: str) -> None:
    kind = DOCUMENT_TYPES[suffix]
    out = extract_document(context(SAMPLES[kind], f"upload{suffix}"))
    assert out.metadata["type"] == kind
    assert isinstance(out.metadata["words"], int)
    assert out.metadata["words"] >= 1
