"""Cells as a spreadsheet will see them: text that a spreadsheet would run as a formula is escaped.

A cell beginning with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with an apostrophe
(OWASP's advice against CSV injection): Excel, LibreOffice and Google Sheets show it as text. Only
CSV and XLSX cells are escaped; JSON keeps every value verbatim, as it was stored.
"""

from __future__ import annotations

import json
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escaped(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def cell(value: Any) -> str | int | float | None:
    """A table cell: numbers stay numbers, objects are JSON, text is escaped."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return escaped(str(value))
