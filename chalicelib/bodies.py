"""Request bodies read into their models: one 400 shape for every route's bad input."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from chalicelib.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)

# The most each route reads, checked before the body is parsed. A manifest of 1,000 files is
# ~0.4 MB; inline prompts are what fills one, and Lambda takes at most 6 MB of request from API
# Gateway anyway (a larger batch goes as an uploaded file). Preferences are two short lists.
MANIFEST_MAX_BYTES = 5 * 1024**2
PREFERENCES_MAX_BYTES = 16 * 1024


def parse_body(model: type[M], body: Any, *, code: str, what: str, shape: str) -> M:
    """`body` as `model`; InvalidInput (`code`) naming the first problem and listing them all.
    `what` names the body in the message ("The manifest"), `shape` shows what to send."""
    if not isinstance(body, dict):
        raise InvalidInput(f"Send a JSON object: {shape}.", code=code)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        first = problems[0]
        raise InvalidInput(
            f"{what} is not valid: {first['field']}: {first['problem']}.",
            code=code,
            details={"problems": problems},
        ) from exc
