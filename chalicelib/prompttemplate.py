"""A prompts session's template: the user message sent per row, with the row's cells in it.

`{prompt}` is the row's prompt and `{Column name}` any other cell of its row (names match as the
prompt column does: case and surrounding spaces do not matter); `{{` and `}}` are literal braces.
Nothing else is interpreted — no attribute access or format specs as str.format would allow, so a
template can never reach into Python objects.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from chalicelib.errors import InvalidInput

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def _key(name: str) -> str:
    return name.strip().casefold()


def placeholders(template: str) -> list[str]:
    """The names a template uses, in order; InvalidInput `invalid_template` when malformed."""
    names = []
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None or not name.strip():
            raise InvalidInput(
                f"The template has a stray {token!r} at character {match.start() + 1}: write "
                "{column name} for a cell of the row, {{ or }} for a literal brace.",
                code="invalid_template",
                details={"position": match.start()},
            )
        names.append(name.strip())
    return names


def check_template(template: str | None, names: Collection[str]) -> None:
    """Every placeholder of the template names a column of the batch (or is {prompt})."""
    if template is None:
        return
    known = {_key(n) for n in names}
    for name in placeholders(template):
        if _key(name) not in known:
            # Imported here: the batch package is the fan-out's, the API reaches this module too.
            from chalicelib.batch import BatchRejected

            raise BatchRejected(
                f"The template uses {{{name}}}, but the batch has no column {name!r}. Its columns: "
                + ", ".join(sorted(names))
                + ".",
                code="template_unknown_column",
                details={"column": name, "columns": sorted(names)},
            )


def render(template: str, cells: Mapping[str, str]) -> str:
    """The template with every placeholder replaced by its cell (checked by check_template)."""
    by_key = {_key(name): value for name, value in cells.items()}

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return by_key[_key(match.group(1))]

    return _TOKEN.sub(substitute, template)
