"""Replace attributes of moto's classes and modules, and put them back: the moto fixes share it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Patches:
    def __init__(self, *patches: tuple[object, str, Callable[..., Any] | object]) -> None:
        self._patches = patches
        # Taken at import, before anything is replaced.
        self._originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]

    def apply(self) -> None:
        for owner, name, replacement in self._patches:
            setattr(owner, name, replacement)

    def revert(self) -> None:
        for owner, name, original in self._originals:
            setattr(owner, name, original)

    @property
    def applied(self) -> bool:
        return all(getattr(owner, name) is new for owner, name, new in self._patches)
