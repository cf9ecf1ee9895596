"""What a batch file is, decided by its bytes: a workbook, text, or something else entirely."""

from __future__ import annotations

import codecs
import io
import zipfile
from typing import Literal

from chalicelib.batch.limits import BatchRejected

# Magic numbers of what people send by mistake, and how to call them in a message.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office file (.xls or .doc)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
)
_UTF16_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def not_a_batch(what: str) -> BatchRejected:
    return BatchRejected(
        f"This file is {what}, not a prompts batch. Send a CSV or XLSX table with a prompt "
        "column, or a text file with one prompt per line.",
        code="not_a_batch_file",
        details={"looks_like": what},
    )


def kind_of(data: bytes) -> Literal["xlsx", "text"]:
    """xlsx for an Excel workbook, text for anything that may be text; else refused."""
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise not_a_batch(what)
    if data.startswith(b"PK\x03\x04"):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except zipfile.BadZipFile:
            raise not_a_batch("a damaged zip archive") from None
        if "xl/workbook.xml" in names:
            return "xlsx"
        if "word/document.xml" in names:
            raise not_a_batch("a Word document")
        raise not_a_batch("a zip archive")
    return "text"


def decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding it was read in: a byte order mark is believed, UTF-8 is tried
    next, then the detector the documents processor uses (chalicelib.processors.textdecode:
    charset-normalizer over a bounded sample, limited to the code pages people send, cp1252 when
    it cannot tell).

    Imported here, not at the top: chalicelib.processors imports every processor, the prompts
    one imports this package, and this package must import on its own (the API uses it)."""
    from chalicelib.processors.textdecode import KeptText, NotText, StreamDecoder

    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf_8_sig"
        except UnicodeDecodeError as exc:
            raise undecodable(str(exc.reason)) from None
    text = KeptText()
    decoder = StreamDecoder(text)
    try:
        decoder.feed(data)
        decoder.finish()
    except NotText as exc:
        if data.startswith(_UTF16_BOMS):
            raise undecodable(str(exc)) from None
        raise not_a_batch("binary data") from None
    encoding = codecs.lookup(decoder.encoding).name.replace("-", "_")
    return text.text(), encoding


def undecodable(reason: str) -> BatchRejected:
    return BatchRejected(
        "The batch's text could not be decoded. Save it as UTF-8 (in Excel: CSV UTF-8) and send "
        "it again.",
        code="undecodable_text",
        details={"reason": reason},
    )
