"""Deterministic sample data for the demo and benchmarks: a zip of mixed documents of a given size.

The archive holds roughly equal shares of .txt, .md, .json, .csv, .html and .pdf members. Its size
is steered member by member: text is deflated, so its compressed size is predicted from the ratio
measured on the members written so far, and PDFs are stored with incompressible padding, so their
size is exact. Each member's share is recomputed from what is actually on disk, so estimation errors
do not accumulate. The archive is streamed to disk: at most one PDF is held in memory.
"""

from __future__ import annotations

import io
import json
import os
import random
import zipfile
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from chalicelib.processors.pdfgen import make_pdf

Kind = Literal["txt", "md", "json", "csv", "html", "pdf"]
KINDS: tuple[Kind, ...] = ("txt", "md", "json", "csv", "html", "pdf")

MIB = 1024 * 1024
# Bump when the generator's output changes, so cached demo archives are not reused.
GENERATOR_VERSION = 1

# Fixed timestamps make the archive a pure function of its parameters and seed.
_DATE_TIME = (2024, 1, 1, 0, 0, 0)
# Speed over ratio: the target size is met either way, and level 1 deflates ~3x faster than 6.
_COMPRESS_LEVEL = 1
_LOCAL_HEADER_BYTES = 30
_CENTRAL_HEADER_BYTES = 46
_END_RECORD_BYTES = 22
_PIECE_BYTES = 64 * 1024
# First guesses of compressed/raw per text kind; replaced by measurements after the first member.
_INITIAL_RATIO = 0.5
# The serialized padding stream costs its dictionary and keywords on top of the padding bytes.
_PDF_PADDING_OVERHEAD = 48
_TRUNCATED_JSON_TAIL = ',\n  {"id": '

_SYLLABLE_ONSETS = "bcdfghjklmnprstvwz"
_SYLLABLE_VOWELS = "aeiou"
_SYLLABLE_CODAS = "nrstl"
_VOCABULARY_SIZE = 4000
_TABLE_SLOTS = 65536  # indexed by 16-bit random numbers
_WORD_SLOTS = 49152  # the rest hold random tokens: ids, numbers, sentence ends


class SampleInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    members: tuple[str, ...]
    corrupt_names: tuple[str, ...]
    bytes: int


class _Prose:
    """Pseudo-language text: Zipf-distributed words from a generated vocabulary mixed with tokens.

    Words are drawn by indexing a 65,536-slot table with 16-bit random numbers, so generating text
    runs at C speed; frequent words fill many slots. Random hex ids and numbers keep deflate from
    shrinking the text more than real prose would.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        vocabulary: dict[str, None] = {}
        while len(vocabulary) < _VOCABULARY_SIZE:
            vocabulary[self._word()] = None
        self.vocabulary = list(vocabulary)
        weights = [1 / (rank + 1) ** 0.9 for rank in range(len(self.vocabulary))]
        scale = _WORD_SLOTS / sum(weights)
        table: list[str] = []
        for word, weight in zip(self.vocabulary, weights, strict=True):
            table.extend([word] * max(1, round(weight * scale)))
        del table[_WORD_SLOTS:]
        while len(table) < _TABLE_SLOTS:
            table.append(self._token())
        rng.shuffle(table)
        self._lookup = table.__getitem__

    def _word(self) -> str:
        rng = self._rng
        syllables = rng.choice((1, 2, 2, 3, 3, 4))
        return "".join(
            rng.choice(_SYLLABLE_ONSETS)
            + rng.choice(_SYLLABLE_VOWELS)
            + (rng.choice(_SYLLABLE_CODAS) if rng.random() < 0.4 else "")
            for _ in range(syllables)
        )

    def _token(self) -> str:
        rng = self._rng
        pick = rng.random()
        if pick < 0.3:
            return rng.randbytes(4).hex()
        if pick < 0.5:
            return str(rng.randrange(1_000_000))
        # Sentence and line ends live in the table too, so text needs no per-word Python code.
        return rng.choice(self.vocabulary) + (".\n" if pick < 0.8 else ".")

    def text(self, size: int) -> str:
        """Lines of text adding up to about ``size`` characters."""
        indexes = array("H", self._rng.randbytes(2 * max(1, size // 7)))
        return " ".join(map(self._lookup, indexes)).replace("\n ", "\n")

    def phrase(self, words: int) -> str:
        """Words on one line."""
        indexes = array("H", self._rng.randbytes(2 * words))
        return " ".join(map(self._lookup, indexes)).replace("\n", "")

    def title(self) -> str:
        words = self._rng.choices(self.vocabulary, k=self._rng.randint(2, 5))
        return " ".join(words).capitalize()


@dataclass(frozen=True)
class _Layout:
    """A text document as an opening, a repeatable body piece and a closing."""

    head: str
    piece: Callable[[int], str]  # about this many characters of body
    tail: str


def _layout(kind: Kind, prose: _Prose, rng: random.Random, title: str) -> _Layout:
    if kind == "txt":
        return _Layout(
            head=f"{title}\n{'=' * len(title)}\n\n",
            piece=lambda size: prose.text(size) + "\n\n",
            tail="",
        )
    if kind == "md":

        def markdown(size: int) -> str:
            bullets = "".join(f"- {prose.phrase(rng.randint(3, 8))}\n" for _ in range(3))
            return f"## {prose.title()}\n\n{prose.text(size)}\n\n{bullets}\n"

        return _Layout(head=f"# {title}\n\n", piece=markdown, tail="")
    if kind == "html":

        def html(size: int) -> str:
            return f"<h2>{prose.title()}</h2>\n<p>{prose.text(size)}</p>\n"

        head = (
            '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
            f"<title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n"
        )
        return _Layout(head=head, piece=html, tail="</body>\n</html>\n")
    if kind == "csv":
        return _csv_layout(prose, rng)
    if kind == "json":
        return _json_layout(prose, rng, title)
    raise ValueError(f"{kind} is not a text kind")


_NOTE_WORDS = 10
_RECORD_RANDOM_BYTES = 11


def _records(prose: _Prose, rng: random.Random, count: int) -> list[tuple[str, str, str, str, str]]:
    """``count`` ledger records (date, category, amount, reference, note), drawn in bulk."""
    noise = rng.randbytes(_RECORD_RANDOM_BYTES * count)
    words = prose.phrase(_NOTE_WORDS * count).split(" ")
    categories = prose.vocabulary[:40]
    records = []
    for row in range(count):
        b = noise[_RECORD_RANDOM_BYTES * row : _RECORD_RANDOM_BYTES * (row + 1)]
        records.append(
            (
                f"2024-{b[0] % 12 + 1:02d}-{b[1] % 28 + 1:02d}",
                categories[b[2] % len(categories)],
                f"{int.from_bytes(b[3:6]) % 100_000 / 100:.2f}",
                b[6:11].hex(),
                " ".join(words[_NOTE_WORDS * row : _NOTE_WORDS * (row + 1)]),
            )
        )
    return records


def _csv_layout(prose: _Prose, rng: random.Random) -> _Layout:
    next_id = iter(range(1, 1 << 62))

    def rows(size: int) -> str:
        return "".join(
            f'{next(next_id)},{date},{category},{amount},{reference},"{note}"\n'
            for date, category, amount, reference, note in _records(prose, rng, max(1, size // 110))
        )

    return _Layout(head="id,date,category,amount,reference,note\n", piece=rows, tail="")


def _json_layout(prose: _Prose, rng: random.Random, title: str) -> _Layout:
    next_id = iter(range(1, 1 << 62))
    separator = ["  "]

    def records(size: int) -> str:
        out: list[str] = []
        for date, category, amount, reference, note in _records(prose, rng, max(1, size // 160)):
            # Generated words and tokens are [a-z0-9.] only, so no JSON escaping is needed.
            out.append(
                f'{separator[0]}{{"id": {next(next_id)}, "date": "{date}", '
                f'"category": "{category}", "amount": {amount}, '
                f'"reference": "{reference}", "note": "{note}"}}'
            )
            separator[0] = ",\n  "
        return "".join(out)

    return _Layout(head=f'{{"title": "{title}", "records": [\n', piece=records, tail="\n]}\n")


def _zipinfo(name: str, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_DATE_TIME)
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    # ZipFile.open(..., "w") takes the level from the ZipInfo only (compress_level from 3.13 on,
    # which keeps this name as an alias).
    info._compresslevel = _COMPRESS_LEVEL  # type: ignore[attr-defined]
    return info


def _write_text(
    archive: zipfile.ZipFile, name: str, layout: _Layout, raw_target: int, *, corrupt: bool
) -> zipfile.ZipInfo:
    info = _zipinfo(name, zipfile.ZIP_DEFLATED)
    goal = raw_target - len(layout.tail)
    with archive.open(info, "w") as out:
        written = _put(out, layout.head)
        while True:
            written += _put(out, layout.piece(min(_PIECE_BYTES, goal - written)))
            if written >= goal:
                break
        # A cut-off record makes the JSON invalid the way an interrupted export would.
        _put(out, _TRUNCATED_JSON_TAIL if corrupt else layout.tail)
    return archive.getinfo(name)


def _put(out: IO[bytes], text: str) -> int:
    data = text.encode("ascii")
    out.write(data)
    return len(data)


def _write_pdf(
    archive: zipfile.ZipFile,
    name: str,
    prose: _Prose,
    rng: random.Random,
    title: str,
    target: int,
    *,
    corrupt: bool,
) -> None:
    pages = [prose.text(2500) for _ in range(rng.randint(1, 4))]
    # A corrupt PDF is cut in half afterwards, so it is made twice as large to keep its share.
    full_size = 2 * target if corrupt else target
    bare = len(make_pdf(pages, title=title))
    padding = max(0, full_size - bare - _PDF_PADDING_OVERHEAD)
    document = make_pdf(pages, title=title, padding=rng.randbytes(padding))
    if corrupt:
        document = document[: len(document) // 2]
    archive.writestr(_zipinfo(name, zipfile.ZIP_STORED), document)


def _plan(
    files: int, corrupt: int, rng: random.Random, prose: _Prose
) -> tuple[list[Kind], list[str], set[int]]:
    kinds = [KINDS[i % len(KINDS)] for i in range(files)]
    rng.shuffle(kinds)
    width = max(4, len(str(files)))
    names = [
        f"{i + 1:0{width}d}-{'-'.join(rng.choices(prose.vocabulary, k=2))}.{kind}"
        for i, kind in enumerate(kinds)
    ]
    pdfs = [i for i, kind in enumerate(kinds) if kind == "pdf"]
    jsons = [i for i, kind in enumerate(kinds) if kind == "json"]
    rng.shuffle(pdfs)
    rng.shuffle(jsons)
    candidates = pdfs + jsons
    if corrupt > len(candidates):
        raise ValueError(
            f"at most {len(candidates)} of {files} members can be corrupt "
            "(only PDF and JSON members are corrupted)"
        )
    return kinds, names, set(candidates[:corrupt])


def make_documents_zip(
    path: Path, *, files: int, size_mb: float, corrupt: int, seed: int = 0
) -> SampleInfo:
    """Write a zip of ``files`` mixed documents of about ``size_mb`` MiB, ``corrupt`` of them bad.

    Corrupt members are PDFs cut off halfway and, when there are not enough PDFs, JSON files cut
    off mid-record. The archive is written next to ``path`` and renamed into place when complete.
    """
    if files < 1:
        raise ValueError("files must be at least 1")
    if size_mb <= 0:
        raise ValueError("size_mb must be positive")
    if corrupt < 0:
        raise ValueError("corrupt must not be negative")
    rng = random.Random(seed)
    prose = _Prose(rng)
    kinds, names, corrupt_indexes = _plan(files, corrupt, rng, prose)
    weights = [rng.uniform(0.5, 1.5) for _ in names]

    target_total = round(size_mb * MIB)
    name_bytes = [len(name.encode()) for name in names]
    central_directory = sum(_CENTRAL_HEADER_BYTES + n for n in name_bytes) + _END_RECORD_BYTES
    local_headers_left = sum(_LOCAL_HEADER_BYTES + n for n in name_bytes)
    weight_left = sum(weights)
    compressed = dict.fromkeys(KINDS, 0)
    raw = dict.fromkeys(KINDS, 0)

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with (
        partial.open("wb") as sink,
        zipfile.ZipFile(sink, "w", compresslevel=_COMPRESS_LEVEL) as archive,
    ):
        for index, (kind, name, weight) in enumerate(zip(kinds, names, weights, strict=True)):
            budget = target_total - sink.tell() - local_headers_left - central_directory
            share = max(0, budget) * weight / weight_left
            local_headers_left -= _LOCAL_HEADER_BYTES + name_bytes[index]
            weight_left -= weight
            title = prose.title()
            bad = index in corrupt_indexes
            if kind == "pdf":
                _write_pdf(archive, name, prose, rng, title, round(share), corrupt=bad)
                continue
            ratio = compressed[kind] / raw[kind] if raw[kind] else _INITIAL_RATIO
            layout = _layout(kind, prose, rng, title)
            info = _write_text(archive, name, layout, round(share / ratio), corrupt=bad)
            compressed[kind] += info.compress_size
            raw[kind] += info.file_size
    os.replace(partial, path)
    return SampleInfo(
        path=path,
        members=tuple(names),
        corrupt_names=tuple(name for i, name in enumerate(names) if i in corrupt_indexes),
        bytes=path.stat().st_size,
    )


def documents_zip_name(*, files: int, size_mb: float, corrupt: int, seed: int) -> str:
    return f"documents-{files}f-{size_mb:g}mb-{corrupt}c-seed{seed}-v{GENERATOR_VERSION}.zip"


def ensure_documents_zip(
    directory: Path, *, files: int, size_mb: float, corrupt: int, seed: int = 0
) -> tuple[SampleInfo, bool]:
    """The sample archive for these parameters, reused when already made; True if it was reused.

    A JSON sidecar next to the archive records its members, so reuse needs no regeneration.
    """
    path = directory / documents_zip_name(files=files, size_mb=size_mb, corrupt=corrupt, seed=seed)
    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists():
        try:
            info = SampleInfo.model_validate_json(sidecar.read_text())
        except ValidationError:
            pass
        else:
            if info.bytes == path.stat().st_size:
                return info.model_copy(update={"path": path}), True
    info = make_documents_zip(path, files=files, size_mb=size_mb, corrupt=corrupt, seed=seed)
    sidecar.write_text(json.dumps(info.model_dump(mode="json"), indent=2) + "\n")
    return info, False


def tiny_text_zip(units: int) -> bytes:
    """A zip of `units` tiny text members, built in memory: many units, almost no bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for n in range(units):
            archive.writestr(f"doc-{n:05d}.txt", f"unit {n}\n")
    return buffer.getvalue()
