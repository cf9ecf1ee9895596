"""Sizes and durations in the words a person reads in an error message or an email."""

from __future__ import annotations

_UNITS = ("bytes", "KB", "MB", "GB", "TB")


def human_bytes(size: int | float) -> str:
    """1536 → "1.5 KB", 64 * 2**20 → "64 MB" (binary multiples, as file managers show)."""
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            if unit == "bytes":
                return f"{int(value):,} {'byte' if int(value) == 1 else 'bytes'}"
            text = f"{value:,.1f}".removesuffix(".0")
            return f"{text} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """59.4 → "59 s", 150 → "2 min 30 s", 7260 → "2 h 1 min"."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
