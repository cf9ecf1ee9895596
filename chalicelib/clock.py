"""Time and ids, injected everywhere so tests control them."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def new_id(self) -> str: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def new_id(self) -> str:
        return uuid.uuid4().hex


class FakeClock:
    """A clock that moves only when told to; ids are sequential and readable."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._seq = 0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def new_id(self) -> str:
        with self._lock:
            self._seq += 1
            return f"id{self._seq:08d}"
