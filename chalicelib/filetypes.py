"""Which files are documents: the one policy that the manifest check, the zip fan-out and the
document processor all apply.

A name decides what it can: a document extension means a document, any other extension means a
file chute does not read (a picture, a spreadsheet, a program). A name without an extension
(README, LICENSE, Makefile) says nothing, so the processor decides from the bytes: text or a PDF is
read, anything else ends skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

DocumentType = Literal["txt", "md", "csv", "json", "html", "pdf"]
Verdict = Literal["document", "unsupported", "by_content"]

# Extension (lower case, with its dot) -> how the processor reads the document.
DOCUMENT_TYPES: Mapping[str, DocumentType] = MappingProxyType(
    {
        ".txt": "txt",
        ".text": "txt",
        ".log": "txt",
        ".md": "md",
        ".markdown": "md",
        ".csv": "csv",
        ".tsv": "csv",
        ".json": "json",
        ".html": "html",
        ".htm": "html",
        ".pdf": "pdf",
    }
)
DOCUMENT_EXTENSIONS: frozenset[str] = frozenset(DOCUMENT_TYPES)
ARCHIVE_EXTENSIONS: frozenset[str] = frozenset({".zip"})

# The largest document the processor reads, by its uncompressed bytes: uploads, zip members and
# the bytes actually received are all held to it. The worker (1024 MB) holds a text document about
# three times over while it saves the result (the decoded text, its JSON, the encoded JSON), and
# five times for text with a character outside the Basic Multilingual Plane (4 bytes a character
# in memory); bench/documents_memory.py measures the processor's own peak per kind of document.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


def extension(name: str) -> str:
    """The extension of the last path component, lower case with its dot, or "" when it has none.

    "Reports/Q3.PDF" -> ".pdf"; "README", ".bashrc" and "notes." -> "". A numeric suffix is a
    version or a rotation number, not a type ("app.log.1", "v1.2"): it counts as none.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem or not suffix or suffix.isdigit():
        return ""
    return "." + suffix.lower()


def document_type(name: str) -> DocumentType | None:
    """How a document of this name is read, or None when its name does not say."""
    return DOCUMENT_TYPES.get(extension(name))


def document_verdict(name: str) -> Verdict:
    """"document" for a document extension, "unsupported" for any other extension (".png",
    ".docx", ".exe", and ".zip" too: an archive is not a document), "by_content" for a name
    without one: the processor reads it when its bytes are text or a PDF and skips it otherwise."""
    suffix = extension(name)
    if not suffix:
        return "by_content"
    return "document" if suffix in DOCUMENT_EXTENSIONS else "unsupported"
