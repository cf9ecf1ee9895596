"""What a processor sees (UnitContext) and returns (ProcessorOutput), and the registry.

A job type (chalicelib.jobs) names the processor that runs its units; a processor declares its
stages and where each sits on the unit's 0–100 progress bar.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Generic, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from chalicelib.services import Services

Stage = Literal["downloading", "extracting", "parsing", "saving"]
Scalar = str | int | float | bool | None
T = TypeVar("T")

# Where each stage sits on the unit's 0–100 progress scale, unless a processor says otherwise.
DEFAULT_SPANS: Mapping[Stage, tuple[float, float]] = {
    "downloading": (0.0, 40.0),
    "extracting": (40.0, 60.0),
    "parsing": (60.0, 90.0),
    "saving": (90.0, 100.0),
}


@dataclass(frozen=True)
class ClientKey(Generic[T]):
    """Names a client a processor needs (a model endpoint, say) and how to build it. The worker
    builds it once per process from its services: processors never import them."""

    name: str
    build: Callable[[Services[Any]], T]


class UnitContext(Protocol):
    """The unit being processed, and the ways a processor reports back while it works."""

    session_id: str
    ordinal: str
    name: str
    content_type: str
    # Uncompressed size when known (zip members, plain objects, rows).
    size: int | None
    # The session's options (prompt column, template, model …).
    options: Mapping[str, Any]

    @property
    def resume_state(self) -> Any:
        """What an earlier attempt saved with checkpoint(), or None."""

    def stage(self, name: Stage) -> None:
        """Enter a stage; written to the unit item (coalesced to once per interval)."""

    def progress(self, fraction: float) -> None:
        """Progress within the current stage, 0.0–1.0; coalesced like stage()."""

    def open(self) -> BinaryIO:
        """A stream of the unit's (decompressed, CRC-checked) bytes. Read it once."""
        ...

    def checkpoint(self, state: Any) -> None:
        """Save small JSON on the unit now; a later attempt gets it back as resume_state."""

    def time_left(self) -> float:
        """Seconds before this unit must be done (its job type's limit, or the invocation's)."""
        ...

    def client(self, key: ClientKey[T]) -> T:
        """The client `key` names, built once per process."""
        ...


@dataclass(frozen=True)
class ProcessorOutput:
    # Small scalars kept on the unit item and shown in listings and exports.
    metadata: dict[str, Scalar]
    # Anything larger (extracted text); written with metadata to results/{sid}/….json.
    body: dict[str, Any] = field(default_factory=dict)
    # What the unit spent (store.items.AMOUNTS: model tokens), summed on the session's counters.
    amounts: dict[str, int] = field(default_factory=dict)


ProcessorFn = Callable[[UnitContext], ProcessorOutput]


@dataclass(frozen=True)
class Processor:
    name: str
    run: ProcessorFn
    spans: Mapping[Stage, tuple[float, float]] = field(default_factory=lambda: DEFAULT_SPANS)
    # The metadata fields a results export shows as columns, in order (JSON exports keep all).
    fields: tuple[str, ...] = ()


class Registry:
    """Processors by name; a job type says which one runs its units."""

    def __init__(self) -> None:
        self._processors: dict[str, Processor] = {}

    def processor(
        self,
        name: str,
        *,
        spans: Mapping[Stage, tuple[float, float]] = DEFAULT_SPANS,
        fields: tuple[str, ...] = (),
    ) -> Callable[[ProcessorFn], ProcessorFn]:
        def register(fn: ProcessorFn) -> ProcessorFn:
            if name in self._processors:
                raise ValueError(f"processor {name!r} registered twice")
            self._processors[name] = Processor(name=name, run=fn, spans=spans, fields=fields)
            return fn

        return register

    def get(self, name: str) -> Processor | None:
        return self._processors.get(name)


registry = Registry()
processor = registry.processor
