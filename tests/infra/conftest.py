"""The packaged template, built once per test run (chalice keeps its Lambda wheel cache under
build/chalice, shared with `make package`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.template import PackageError, package


@dataclass(frozen=True)
class Packaged:
    template_path: Path
    template: dict[str, Any]
    deployment_zip: Path

    def resource(self, logical_id: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][logical_id]
        return resource

    def properties(self, logical_id: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.resource(logical_id)["Properties"]
        return properties


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    out = tmp_path_factory.mktemp("package")
    try:
        path = package("prod", out)
    except PackageError as exc:
        pytest.fail(f"make package failed: {exc}")
    return Packaged(path, json.loads(path.read_text(encoding="utf-8")), out / "deployment.zip")
