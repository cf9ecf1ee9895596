"""A tiny, dependency-free writer of valid text PDFs (for tests and the demo data generator)."""

from __future__ import annotations

import textwrap

# The comment of high bytes after the version tells transfer tools the file is binary.
_HEADER = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
_FONT_SIZE = 11
_LEADING = 14
_LEFT_MARGIN = 72
_TOP_BASELINE = 720
# Helvetica averages about half an em per character, so this fits a US Letter page with 1" margins.
_WRAP_COLUMNS = 85


def make_pdf(pages: list[str], *, title: str | None = None, padding: bytes = b"") -> bytes:
    """A PDF with one page per entry of ``pages``, each set in Helvetica.

    ``padding`` goes into a stream object that nothing references: readers ignore it, so callers
    can grow a file to a target size with incompressible content without changing what it shows.
    Characters outside Windows-1252 are shown as ``?``.
    """
    if not pages:
        raise ValueError("a PDF needs at least one page")
    catalog, page_tree, font = 1, 2, 3
    first_page = 4
    page_numbers = [first_page + 2 * i for i in range(len(pages))]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages %d 0 R >>" % page_tree,
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % n for n in page_numbers), len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for page_number, text in zip(page_numbers, pages, strict=True):
        objects.append(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792]"
            b" /Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
            % (page_tree, font, page_number + 1)
        )
        objects.append(_stream(_text_operators(text)))
    info: int | None = None
    if title is not None:
        objects.append(b"<< /Title %s >>" % _text_string(title))
        info = len(objects)
    if padding:
        objects.append(_stream(padding))
    return _serialize(objects, root=catalog, info=info)


def _text_operators(text: str) -> bytes:
    lines = [
        wrapped
        for line in text.splitlines()
        for wrapped in (textwrap.wrap(line, _WRAP_COLUMNS) or [""])
    ]
    shown = b" T*\n".join(b"(%s) Tj" % _escape(line.encode("cp1252", "replace")) for line in lines)
    return b"BT\n/F1 %d Tf\n%d TL\n%d %d Td\n%s\nET" % (
        _FONT_SIZE,
        _LEADING,
        _LEFT_MARGIN,
        _TOP_BASELINE,
        shown,
    )


def _escape(raw: bytes) -> bytes:
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _text_string(value: str) -> bytes:
    # UTF-16BE with a byte order mark is the PDF text string encoding that carries any character.
    return b"<FEFF%s>" % value.encode("utf-16-be").hex().upper().encode("ascii")


def _stream(data: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n%s\nendstream" % (len(data), data)


def _serialize(objects: list[bytes], *, root: int, info: int | None) -> bytes:
    out = bytearray(_HEADER)
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_offset = len(out)
    # Each cross-reference entry is exactly 20 bytes, its end-of-line being two bytes (" \n").
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info_entry = b" /Info %d 0 R" % info if info is not None else b""
    out += b"trailer\n<< /Size %d /Root %d 0 R%s >>\n" % (len(objects) + 1, root, info_entry)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_offset
    return bytes(out)
