"""Bytes to text as they arrive: the encoding, the decoded text, and its counts.

A document is decoded chunk by chunk, so its raw bytes are never held whole beside its text. A
UTF-16 or UTF-32 byte order mark is believed; otherwise UTF-8 is tried first, as it needs no
guessing and almost never decodes text that is in another encoding. Only a file that is not UTF-8
is kept raw until its end and then given to a detector (charset-normalizer), which sees a bounded
sample: it takes seconds on tens of megabytes.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable
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
# With fewer non-ASCII bytes than this the detector guesses wildly ("ÄÖÜ" in cp1252 comes back as
# cp932, "½ tsp" too), so such files keep the Western default.
_MIN_EVIDENCE_BYTES = 16
# The encodings the detector chooses from. Left out: the Central European and Baltic code pages
# other than cp1250, which it prefers over cp1252 for French and Portuguese; UTF-16/32 without a
# byte order mark, which any even number of bytes decodes to; EBCDIC and DOS code pages, which
# short samples match by accident.
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
        self._ascii = True  # everything handed on so far is ASCII
        self._raw: io.BytesIO | None = None  # a file that is not UTF-8, kept until its end
        self.encoding = ""

    def feed(self, chunk: bytes) -> None:
        if self._decoder is None and self._raw is None:
            chunk = self._start(chunk)
        if not self._declared and b"\x00" in chunk:
            raise NotText("NUL bytes")
        if self._raw is not None:
            self._raw.write(chunk)
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

    def _decode(self, data: bytes, *, final: bool) -> None:
        assert self._decoder is not None
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            if self._declared:
                raise NotText(f"not {self.encoding}: {exc.reason}") from exc
            self._not_utf8(exc, final=final)
        else:
            self._emit(text)

    def _not_utf8(self, exc: UnicodeDecodeError, *, final: bool) -> None:
        # What the decoder was decoding: the bytes it held back from earlier chunks, then this one.
        data: bytes = exc.object
        valid = data[: exc.start].decode("utf-8")
        if self._ascii and valid.isascii():
            # Nothing so far needed UTF-8: a file in another encoding, its first non-ASCII byte
            # here. The ASCII handed on already reads the same in every candidate encoding.
            self._decoder = None
            self._raw = io.BytesIO()
            self._raw.write(data)
            return
        # UTF-8 text, then bytes that are not: a damaged or concatenated file. Its UTF-8 stays
        # readable and each byte that is not becomes U+FFFD, rather than all of it being re-read
        # in a guessed encoding.
        self._emit(valid)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._emit(self._decoder.decode(data[exc.start :], final))

    def _decode_raw(self) -> None:
        assert self._raw is not None
        text = ""
        with self._raw.getbuffer() as raw:
            for encoding in dict.fromkeys((_guess_encoding(raw), *_FALLBACKS)):
                try:
                    text = str(raw, encoding)
                except UnicodeDecodeError:
                    continue
                self.encoding = encoding
                break
        self._raw = None  # the raw bytes go before the text is handed on
        self._emit(text)

    def _emit(self, text: str) -> None:
        if text:
            self._ascii = self._ascii and text.isascii()
            self._sink(text)


def _guess_encoding(raw: memoryview) -> str:
    """The encoding of text that is not UTF-8, from a sample where its non-ASCII text starts."""
    first = _NON_ASCII.search(raw)
    if first is None:
        return _FALLBACKS[0]
    # Everything before the first non-ASCII byte is ASCII, so the sample cannot start inside a
    # character; its end is moved back to a line end, which no candidate uses inside a character.
    start = max(0, first.start() - 256)
    sample = bytes(raw[start : first.start() + _SAMPLE_BYTES])
    line_end = sample.rfind(b"\n")
    if line_end > first.start() - start:
        sample = sample[: line_end + 1]
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
