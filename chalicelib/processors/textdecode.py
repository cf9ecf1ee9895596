"""Bytes to text as they arrive: the encoding, the decoded text, and its counts.

A document is decoded chunk by chunk, so its raw bytes are never held whole beside its text. A
UTF-16 or UTF-32 byte order mark is believed; otherwise UTF-8 is tried first, as it needs no
guessing and almost never decodes text that is in another encoding. Only a file that is not UTF-8
is kept raw (the chunks as they came, no copy) until its end, for a detector (charset-normalizer)
to see a bounded sample of: it takes seconds on tens of megabytes.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

TextSink = Callable[[str], None]


class NotText(Exception):
    """The bytes are not text: NUL bytes without a UTF-16/32 byte order mark, or a file with that
    mark that does not decode."""


# What str.splitlines() ends a line at; "\r\n" is one line end.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# str.split() builds a list of every word in what it is given; slices keep that list small.
_COUNT_SLICE_CHARS = 64 * 1024
# charset-normalizer took 0.07 s on 1.4 MB and 1.7 s on 35 MB here; 64 KiB of text is plenty of
# evidence and costs milliseconds.
_SAMPLE_BYTES = 64 * 1024
# UTF-8 is believed once its multi-byte characters have this many bytes more than their number (a
# character of n bytes adds n - 1: some 60 accented letters or 30 CJK characters), or once this much
# of the file after its first non-ASCII byte has decoded: text in another encoding that is valid
# UTF-8 by accident (Shift_JIS "爛漫" is) stops being so within a few characters. Until then the
# decoded text is held back, with its bytes, in case they must be read in another encoding.
_UTF8_EVIDENCE_BYTES = 64
_UTF8_PROBATION_BYTES = 1024 * 1024
# With fewer non-ASCII bytes than this the detector guesses wildly ("ÄÖÜ" in cp1252 comes back as
# cp932, "½ tsp" too), so such files keep the Western default.
_MIN_EVIDENCE_BYTES = 16
# The encodings the detector chooses from: Windows and KOI8 code pages, and the East Asian ones.
# Left out: Baltic cp1257 and the ISO 8859 and Mac code pages, one of which it chose over cp1252
# for French; UTF-16/32 without a byte order mark, which any even number of bytes decodes to;
# EBCDIC and DOS code pages, which short samples match by accident.
_CANDIDATES = (
    "cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256", "cp874", "koi8_r",
    "cp932", "euc_jp", "gb18030", "big5", "cp949",
)  # fmt: skip
# Files that are not UTF-8 mostly come from Windows; cp1252 leaves five bytes undefined, and
# latin-1, which defines every byte, reads those rather than failing.
_FALLBACKS = ("cp1252", "latin-1")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_ASCII_BYTES = bytes(range(128))
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose mark it starts with
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class TextCounts:
    chars: int
    words: int
    lines: int


class TextCounter:
    """What len(text), len(text.split()) and len(text.splitlines()) give for the whole text, fed
    piece by piece: a word or a "\\r\\n" cut between two pieces counts once."""

    def __init__(self) -> None:
        self._chars = self._words = self._breaks = 0
        self._last = ""

    def feed(self, text: str) -> None:
        for start in range(0, len(text), _COUNT_SLICE_CHARS):
            self._feed_slice(text[start : start + _COUNT_SLICE_CHARS])

    def _feed_slice(self, part: str) -> None:
        words = len(part.split())
        if words and self._last and not self._last.isspace() and not part[0].isspace():
            words -= 1  # the previous piece ended inside this word
        breaks = sum(map(part.count, _LINE_BREAKS)) - part.count("\r\n")
        if self._last == "\r" and part[0] == "\n":
            breaks -= 1
        self._chars += len(part)
        self._words += words
        self._breaks += breaks
        self._last = part[-1]

    def counts(self) -> TextCounts:
        # A last line without a line break is a line too.
        unterminated = bool(self._last) and self._last not in _LINE_BREAKS
        return TextCounts(self._chars, self._words, self._breaks + unterminated)


def count_text(text: str) -> TextCounts:
    counter = TextCounter()
    counter.feed(text)
    return counter.counts()


class KeptText:
    """A sink that keeps the text for the result and counts it on the way."""

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._counter = TextCounter()

    def __call__(self, piece: str) -> None:
        self._pieces.append(piece)
        self._counter.feed(piece)

    def text(self) -> str:
        text = "".join(self._pieces)
        self._pieces = [text]
        return text

    def counts(self) -> TextCounts:
        return self._counter.counts()


class StreamDecoder:
    """Decodes a document fed chunk by chunk and hands the text on to a sink as it goes.

    The first chunk must hold the first four bytes of the file unless the file is shorter: they
    may be a byte order mark. ``encoding`` is known after ``finish()``.
    """

    def __init__(self, sink: TextSink) -> None:
        self._sink = sink
        self._decoder: codecs.IncrementalDecoder | None = None
        self._declared = False  # by a UTF-16/32 byte order mark, which is believed or nothing
        self._believed = False  # UTF-8 that has shown enough non-ASCII text to be believed
        # Chunks since the first non-ASCII byte, while UTF-8 is not yet believed: as they came, and
        # decoded. Everything handed on before them is ASCII, the same in every candidate encoding.
        self._held_raw: list[bytes] = []
        self._held_text: list[str] = []
        self._held_bytes = self._evidence = 0
        self._raw: list[bytes] | None = None  # a file that is not UTF-8, kept until its end
        self.encoding = ""

    def feed(self, chunk: bytes) -> None:
        if self._decoder is None and self._raw is None:
            chunk = self._start(chunk)
        if not self._declared and b"\x00" in chunk:
            raise NotText("NUL bytes")
        if self._raw is not None:
            self._raw.append(chunk)
        else:
            self._decode(chunk, final=False)

    def finish(self) -> None:
        if self._decoder is None and self._raw is None:
            self._start(b"")
        if self._raw is None:
            self._decode(b"", final=True)
        if self._raw is not None:
            self._decode_raw()

    def _start(self, head: bytes) -> bytes:
        for bom, encoding in _BOMS:
            if head.startswith(bom):
                # These decoders take the mark off themselves.
                self._declared = True
                self.encoding = encoding
                self._decoder = codecs.getincrementaldecoder(encoding)()
                return head
        self.encoding = "utf-8"
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        return head.removeprefix(codecs.BOM_UTF8)

    def _decode(self, chunk: bytes, *, final: bool) -> None:
        assert self._decoder is not None
        try:
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            if self._declared:
                raise NotText(f"not {self.encoding}: {exc.reason}") from exc
            valid: bytes = exc.object[: exc.start]
            if not self._believed and not self._convinced(len(valid), len(valid.decode())):
                # Not UTF-8: the bytes since the first non-ASCII one are read again once the
                # encoding is known.
                self._raw, self._decoder = [*self._held_raw, chunk], None
                self._held_raw, self._held_text = [], []
                return
            self._replace_invalid(exc, final=final)
            return
        if self._declared or self._believed or (not self._held_raw and chunk.isascii()):
            self._emit(text)
            return
        self._held_raw.append(chunk)
        self._held_text.append(text)
        # A file that is valid UTF-8 to its end is UTF-8, however little of it is not ASCII.
        if not self._convinced(len(chunk), len(text)) and final:
            self._believe()

    def _convinced(self, size: int, chars: int) -> bool:
        """Counts ``size`` more bytes that decoded as ``chars`` characters, and believes UTF-8
        once they add up to evidence enough."""
        self._held_bytes += size
        self._evidence += size - chars  # a character of n bytes adds n - 1
        if self._evidence < _UTF8_EVIDENCE_BYTES and self._held_bytes < _UTF8_PROBATION_BYTES:
            return False
        self._believe()
        return True

    def _believe(self) -> None:
        self._believed = True
        held, self._held_raw, self._held_text = self._held_text, [], []
        for piece in held:
            self._emit(piece)

    def _replace_invalid(self, exc: UnicodeDecodeError, *, final: bool) -> None:
        # UTF-8 text, then bytes that are not: a damaged or concatenated file. Its UTF-8 stays
        # readable and each byte that is not becomes U+FFFD, rather than all of it being re-read
        # in a guessed encoding. exc.object is what the decoder decoded: the bytes it held back
        # from the chunk before (a character cut in two), then this chunk.
        data: bytes = exc.object
        self._emit(data[: exc.start].decode("utf-8"))
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._emit(self._decoder.decode(data[exc.start :], final))

    def _decode_raw(self) -> None:
        assert self._raw is not None
        raw, self._raw = self._raw, None
        for encoding in dict.fromkeys((_guess_encoding(raw), *_FALLBACKS)):
            pieces = _decode_all(raw, encoding)
            if pieces is not None:
                break
        else:
            raise AssertionError("latin-1 decodes any bytes")
        self.encoding = encoding
        raw.clear()  # the raw bytes go before the text is handed on
        for piece in pieces:
            self._emit(piece)

    def _emit(self, text: str) -> None:
        if text:
            self._sink(text)


def _decode_all(raw: list[bytes], encoding: str) -> list[str] | None:
    """The chunks decoded, or None when they are not in this encoding. Chunk by chunk: the CJK
    decoders reserve room for twice their input, which on a whole file would be megabytes."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        pieces = [decoder.decode(chunk) for chunk in raw]
        pieces.append(decoder.decode(b"", True))
    except UnicodeDecodeError:
        return None
    return pieces


def _guess_encoding(raw: list[bytes]) -> str:
    """The encoding of text that is not UTF-8, from a sample where its non-ASCII text starts."""
    sample = _sample(raw)
    if len(sample.translate(None, _ASCII_BYTES)) < _MIN_EVIDENCE_BYTES:
        return _FALLBACKS[0]
    # Imported here: only files that are not UTF-8 need it.
    from charset_normalizer import from_bytes

    matches = from_bytes(sample, cp_isolation=list(_CANDIDATES))
    best = matches.best()
    if best is None:
        return _FALLBACKS[0]
    least_chaos = min(match.chaos for match in matches)
    # Western text decodes identically in several code pages; the Windows one is the likely one.
    if any(m.chaos <= least_chaos and "cp1252" in m.could_be_from_charset for m in matches):
        return "cp1252"
    return best.encoding


def _sample(raw: list[bytes]) -> bytes:
    """Up to _SAMPLE_BYTES from a little before the first non-ASCII byte, ending at a line end.

    Everything before the first non-ASCII byte is ASCII, so the sample cannot start inside a
    character; its end is moved back to a line end, which no candidate uses inside a character.
    """
    chunks: Iterator[bytes] = iter(raw)
    for chunk in chunks:
        if found := _NON_ASCII.search(chunk):
            start = max(0, found.start() - 256)
            first = found.start() - start  # where the non-ASCII text starts in the sample
            parts = [chunk[start : start + _SAMPLE_BYTES]]
            break
    else:
        return b""
    size = len(parts[0])
    while size < _SAMPLE_BYTES and (chunk := next(chunks, b"")):
        parts.append(chunk[: _SAMPLE_BYTES - size])
        size += len(parts[-1])
    sample = b"".join(parts)
    line_end = sample.rfind(b"\n")
    return sample[: line_end + 1] if line_end > first else sample
