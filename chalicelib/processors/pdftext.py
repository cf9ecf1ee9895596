"""The text of a PDF, with pypdf, and the ways a PDF can fail to give one."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chalicelib.errors import PermanentError, UnitSkipped

# PDF readers accept a header within the first KiB and an end-of-file marker within the last one.
_PDF_SLACK_BYTES = 1024


@dataclass(frozen=True)
class PdfText:
    # Pages joined by a form feed, the customary page break in extracted text (pdftotext uses
    # it): it counts as a line break and as whitespace, so lines and words add up across pages.
    text: str
    pages: int
    title: str | None
    resumed: int = 0  # pages taken from an earlier attempt's checkpoint


class _WithoutFontToolsNotice(logging.Filter):
    """Drops pypdf's notice that fontTools would read a CFF font's built-in encoding.

    pypdf logs it for every such font of every PDF (TeX output through dvipdfmx embeds its fonts
    so): 98 % of the stack's log lines in one run, each with the whole font dictionary. fontTools
    is not installed because it would add 24 MB to the Lambda package for the few symbols those
    encodings place (×, ≤, ±, ∞); the text around them is read either way.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("fontTools is required")


_FONTTOOLS_NOTICE = _WithoutFontToolsNotice()


def read_pdf(
    document: io.BytesIO,
    progress: Callable[[float], None],
    *,
    done: Sequence[str] = (),
    page_read: Callable[[list[str]], None] = lambda _texts: None,
) -> PdfText:
    """The text of every page; ``progress`` gets the share of pages read so far.

    ``done`` are the texts of the first pages as an earlier attempt read them (a checkpoint):
    reading starts after them. ``page_read`` sees the texts read so far after every page.

    Raises PermanentError (pdf_unreadable, pdf_encrypted) for a PDF that cannot be read and
    UnitSkipped (no_text_layer) for one whose pages hold no text.
    """
    # Imported here: pypdf is a tenth of a second of every cold start, and most units are no PDF.
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError

    # Added here rather than at import, when no logging is configured yet; adding it twice is a
    # no-op.
    logging.getLogger("pypdf._cmap").addFilter(_FONTTOOLS_NOTICE)
    _check_framing(document)
    try:
        reader = PdfReader(document, strict=False)
        locked = reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED
    except DependencyError as exc:
        # AES-encrypted files need the optional cryptography package even without a password.
        raise _pdf_encrypted() from exc
    except Exception as exc:
        # pypdf raises many exception types on malformed input; all of them mean the same here.
        raise _pdf_unreadable(f"{type(exc).__name__}: {exc}") from exc
    if locked:
        raise _pdf_encrypted()
    try:
        pages = reader.pages
        count = len(pages)
    except Exception as exc:
        raise _pdf_unreadable(f"{type(exc).__name__}: {exc}") from exc
    texts = list(done) if len(done) <= count else []  # else not this file's checkpoint
    resumed = len(texts)
    for number in range(len(texts), count):
        try:
            texts.append(pages[number].extract_text())
        except Exception as exc:
            raise _pdf_unreadable(f"{type(exc).__name__}: {exc}") from exc
        # Outside the try: the worker stops a unit whose time is up by raising from progress().
        page_read(texts)
        progress((number + 1) / count)
    try:
        title = reader.metadata.title if reader.metadata is not None else None
    except Exception as exc:
        raise _pdf_unreadable(f"{type(exc).__name__}: {exc}") from exc
    if not texts:
        raise _pdf_unreadable("no pages")
    if not any(text.strip() for text in texts):
        raise UnitSkipped(
            f"This PDF has no text to read on any of its {len(texts)} pages: it looks scanned or "
            "made of images, and chute does not recognise text in images (OCR). It was skipped.",
            code="no_text_layer",
            details={"pages": len(texts)},
        )
    # A damaged /Info dictionary can hold a number or a dictionary where the title belongs.
    clean_title = title.strip() if isinstance(title, str) and title.strip() else None
    return PdfText("\f".join(texts), len(texts), clean_title, resumed)


def _check_framing(document: io.BytesIO) -> None:
    """Refuse files without a PDF header or trailer before pypdf sees them.

    In non-strict mode pypdf carries on past a cut-short ``%%EOF`` marker and rebuilds a broken
    cross-reference table by scanning for objects, so a truncated file can "open" with whatever
    pages survived. A complete file ends with a ``startxref`` offset and an ``%%EOF`` marker; a
    truncated one almost never does.
    """
    with document.getbuffer() as data:
        head = bytes(data[:_PDF_SLACK_BYTES])
        tail = bytes(data[-_PDF_SLACK_BYTES:])
    if b"%PDF-" not in head:
        raise _pdf_unreadable("no %PDF header at the start")
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
