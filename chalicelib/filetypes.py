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
# What a prompts session's one batch file may be called. The name only screens the manifest: the
# fan-out decides CSV, XLSX or TXT from the bytes (chalicelib.batch).
BATCH_EXTENSIONS: frozenset[str] = frozenset({".csv", ".tsv", ".xlsx", ".txt"})
# The name of the normalised rows a prompts session was given inline (`prompts` or `text`): the API
# stores them as its one upload, so they take the uploaded file's path through the fan-out. A
# manifest can never declare it (.jsonl is not a batch extension).
INLINE_BATCH_NAME = "pasted-prompts.jsonl"
# A follow-up session's one input: its parent's completed results (chalicelib.chains).
FOLLOW_UP_FILE = "parent-results.jsonl"

# The largest document the processor reads, by its uncompressed bytes: uploads, zip members and
# the bytes actually received are all held to it. The worker has 1024 MB. bench/documents_memory.py
# measures the processor's peak at 2.0 times the document for text, CSV and JSON, 1.2 for a PDF,
# and 5.1 for text with one character outside the Basic Multilingual Plane (Python then stores
# every character in 4 bytes); with the result saved as the worker saves it (json.dumps, then
# encode) the worst is 12.1 times: 776 MiB at 64 MiB, which fits beside the runtime's ~65 MB, and
# 1.5 GiB at 128 MiB, which does not.
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
    """What a name says: a document extension makes a "document"; any other extension (".png",
    ".docx", ".exe", and ".zip" too: an archive is not a document) makes it "unsupported"; a name
    without one is decided "by_content": the processor reads it when its bytes are text or a PDF
    and skips it otherwise."""
    suffix = extension(name)
    if not suffix:
        return "by_content"
    return "document" if suffix in DOCUMENT_EXTENSIONS else "unsupported"
