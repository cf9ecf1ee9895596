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
