"""What a processor sees (UnitContext) and returns (ProcessorOutput), and the registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal, Protocol

Stage = Literal["downloading", "extracting", "parsing", "saving"]
Scalar = str | int | float | bool | None


class UnitContext(Protocol):
    """The unit being processed, and the ways a processor reports back while it works."""

    session_id: str
    ordinal: str
    name: str
    content_type: str
    # Uncompressed size when known (zip members, plain objects); None for rows.
    size: int | None

    def stage(self, name: Stage) -> None:
        """Enter a stage; written to the unit item (coalesced to once per interval)."""

    def progress(self, fraction: float) -> None:
        """Progress within the current unit, 0.0–1.0; coalesced like stage()."""

    def open(self) -> BinaryIO:
        """A stream of the unit's (decompressed, CRC-checked) bytes. Read it once."""
        ...


@dataclass(frozen=True)
class ProcessorOutput:
    # Small scalars kept on the unit item and shown in listings and exports.
    metadata: dict[str, Scalar]
    # Anything larger (extracted text); written with metadata to results/{sid}/{ordinal}.json.
    body: dict[str, Any] = field(default_factory=dict)


ProcessorFn = Callable[[UnitContext], ProcessorOutput]
Matcher = Callable[[str, str], bool]  # (file name, content type) -> handles it?


@dataclass(frozen=True)
class Processor:
    name: str
    match: Matcher
    run: ProcessorFn


class Registry:
    """Processors in registration order; the first whose matcher accepts a unit runs it."""

    def __init__(self) -> None:
        self._processors: list[Processor] = []

    def processor(self, name: str, match: Matcher) -> Callable[[ProcessorFn], ProcessorFn]:
        def register(fn: ProcessorFn) -> ProcessorFn:
            if any(p.name == name for p in self._processors):
                raise ValueError(f"processor {name!r} registered twice")
            self._processors.append(Processor(name=name, match=match, run=fn))
            return fn

        return register

    def resolve(self, file_name: str, content_type: str) -> Processor | None:
        for candidate in self._processors:
            if candidate.match(file_name, content_type):
                return candidate
        return None

    def get(self, name: str) -> Processor | None:
        return next((p for p in self._processors if p.name == name), None)


registry = Registry()
processor = registry.processor
