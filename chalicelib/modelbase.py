"""The base of every pydantic shape."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    # Validators are built on a model's first use, not at import: a Lambda cold start builds only
    # the few models its event needs.
    model_config = ConfigDict(defer_build=True)


class StrictModel(Model):
    model_config = ConfigDict(defer_build=True, extra="forbid", str_strip_whitespace=True)
