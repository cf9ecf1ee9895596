"""The memory the document processor takes for one document, by kind of document.

Run: .venv/bin/python -m bench.documents_memory [--size-mb 32] [--quick]

Each document (generated deterministically, --size-mb MiB each) is held in memory first, as the
stream the processor reads; tracemalloc then measures the peak of what `extract_document`
allocates on top of it (Python's allocations: every bytes and str buffer, pypdf's objects), and
again with the result saved as the worker saves it (`json.dumps(..., ensure_ascii=False)` then
`.encode()`), which holds the text up to three times. Seconds are timed in a run without
tracemalloc, which slows Python down. Kinds: ASCII prose (txt), the same with one emoji (Python
then stores every character in 4 bytes), Japanese in Shift_JIS (detected), HTML, CSV, JSON, and a
PDF of text pages (a sixteenth of the size in text) padded to the size.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
import tracemalloc
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

from chalicelib.processors import Stage
from chalicelib.processors.base import ClientKey, ProcessorOutput
from chalicelib.processors.documents import extract_document
from chalicelib.processors.pdfgen import make_pdf

MIB = 1024 * 1024
T = TypeVar("T")
_JAPANESE = (
    "市議会は昨夜、市役所で来年度の予算について話し合うために集まった。"
    "橋の改修工事は三月に始まると議長は述べた。"
)


@dataclass
class _Unit:
    """A UnitContext over bytes in memory, as the worker gives a processor a unit."""

    data: bytes
    name: str
    content_type: str = ""
    session_id: str = "bench"
    ordinal: str = "000001"
    options: Mapping[str, Any] = field(default_factory=dict)
    size: int | None = None

    @property
    def resume_state(self) -> Any:
        return None

    def stage(self, name: Stage) -> None:
        pass

    def progress(self, fraction: float) -> None:
        pass

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)

    def checkpoint(self, state: Any) -> None:
        pass

    def time_left(self) -> float:
        return 300.0

    def client(self, key: ClientKey[T]) -> T:
        raise NotImplementedError


def _prose(size: int, seed: int) -> str:
    """About ``size`` characters of lines of lower-case words."""
    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choice("bcdfghjklmnprstvwz") + rng.choice("aeiou") for _ in range(n))
        for n in (rng.randint(1, 4) for _ in range(4096))
    ]
    words = [w + ("\n" if i % 11 == 10 else "") for i, w in enumerate(vocabulary)]
    indexes = array("H", rng.randbytes(2 * (size // 6)))
    text = " ".join(words[i % len(words)] for i in indexes).replace("\n ", "\n")
    return text[:size]


def _documents(size: int) -> dict[str, tuple[str, bytes]]:
    prose = _prose(size, seed=1)
    rows = prose[: size // 2].split("\n")
    csv_text = "id,note,amount\n" + "".join(f'{i},"{r}",{i % 997}.5\n' for i, r in enumerate(rows))
    records = ",\n".join(
        json.dumps({"id": i, "note": r, "tags": r.split()[:3]}) for i, r in enumerate(rows)
    )
    html = "".join(f"<p>{line}</p>\n" for line in prose.split("\n"))
    # Pages of 40 lines holding a sixteenth of the size in text (400 pages at 32 MiB), padded to
    # the size with bytes pypdf does not read.
    lines = _prose(size // 16, seed=2).split("\n")
    pdf_pages = ["\n".join(lines[i : i + 40]) for i in range(0, len(lines), 40)]
    plain_pdf = make_pdf(pdf_pages)
    return {
        "txt": ("prose.txt", prose.encode()),
        "txt_emoji": ("prose.txt", ("🌍 " + prose[2:]).encode()),
        "shift_jis": ("minutes.txt", (_JAPANESE + "\n").encode("shift_jis") * (size // 130)),
        "html": ("page.html", html.encode()[:size]),
        "csv": ("table.csv", csv_text.encode()[: size // 2 * 2]),
        "json": ("records.json", f"[{records}]".encode()),
        "pdf": (
            "paper.pdf",
            make_pdf(pdf_pages, padding=random.Random(3).randbytes(max(0, size - len(plain_pdf)))),
        ),
    }


def _save(output: ProcessorOutput) -> bytes:
    # As chalicelib.worker writes results/{sid}/{ordinal}.json.
    document = {"name": "bench", "metadata": output.metadata, **output.body}
    return json.dumps(document, ensure_ascii=False).encode()


def _peak(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(name: str, data: bytes) -> dict[str, Any]:
    def process() -> ProcessorOutput:
        return extract_document(_Unit(data, name, size=len(data)))

    started = time.perf_counter()
    output = process()
    seconds = time.perf_counter() - started
    peak = _peak(process)
    with_save = _peak(lambda: _save(process()))
    return {
        "bytes": len(data),
        "peak_mb": round(peak / MIB, 1),
        "peak_over_size": round(peak / len(data), 2),
        "with_save_peak_mb": round(with_save / MIB, 1),
        "with_save_over_size": round(with_save / len(data), 2),
        "seconds": round(seconds, 2),
        "encoding": output.metadata.get("encoding"),
        "words": output.metadata.get("words"),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=float, default=32.0, help="size of each document in MiB")
    parser.add_argument("--quick", action="store_true", help="2 MiB documents")
    args = parser.parse_args(argv)
    size = int((2.0 if args.quick else args.size_mb) * MIB)
    kinds = {kind: measure(name, data) for kind, (name, data) in _documents(size).items()}
    print(
        json.dumps(
            {
                "bench": "documents_memory",
                "size_mb": round(size / MIB, 1),
                "text_peak_mb": kinds["txt"]["peak_mb"],
                "pdf_peak_mb": kinds["pdf"]["peak_mb"],
                "worst_with_save_over_size": max(k["with_save_over_size"] for k in kinds.values()),
                "kinds": kinds,
            }
        )
    )


if __name__ == "__main__":
    main()
