"""Per-unit work. Importing this package registers the built-in processors."""

from chalicelib.processors import documents as _documents  # noqa: F401  (registers processors)
from chalicelib.processors import prompts as _prompts  # noqa: F401
from chalicelib.processors import summaries as _summaries  # noqa: F401
from chalicelib.processors.base import (
    Processor,
    ProcessorOutput,
    Registry,
    Stage,
    UnitContext,
    processor,
    registry,
)

__all__ = [
    "Processor",
    "ProcessorOutput",
    "Registry",
    "Stage",
    "UnitContext",
    "processor",
    "registry",
]
