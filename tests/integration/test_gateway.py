"""What the API answers outside its routes, on the local server as deployed: chute's own JSON
errors (404 for an unknown path, 405 for a method a path does not serve), never a gateway's
message, and never a credential echoed back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from infra.local import LocalStack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    # Per test: the suite's autouse fixture clears CHUTE_* variables, which the stack sets.
    with LocalStack(tmp_path, api_port=0, start_dispatcher=False) as running:
        yield running


def call(stack: LocalStack, method: str, path: str) -> requests.Response:
    return requests.request(
        method,
        stack.info["api_url"] + path,
        headers={"Authorization": f"Bearer {stack.info['token']}"},
        timeout=10,
    )


def test_an_unknown_path_is_chutes_404_and_echoes_no_token(stack: LocalStack) -> None:
    for path in ["/nope", "/sessions/abc/nope", "/a/b/c/d/e", "/sessions/x%2Fy/z"]:
        response = call(stack, "GET", path)

        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "route_not_found"
        assert stack.info["token"] not in response.text
    assert call(stack, "GET", "/sessions").status_code == 200
    assert call(stack, "GET", "/").status_code == 200


def test_a_method_a_path_does_not_serve_is_chutes_405_with_allow(stack: LocalStack) -> None:
    for method, path, allowed in [
        ("DELETE", "/sessions", ["GET", "POST"]),
        ("PUT", "/sessions/abc", ["GET"]),
        ("GET", "/sessions/abc/pause", ["POST"]),
    ]:
        response = call(stack, method, path)

        assert response.status_code == 405
        assert response.headers["Allow"] == ", ".join(allowed)
        assert response.json()["error"] == {
            "code": "method_not_allowed",
            "message": f"{method} is not allowed here; use {', '.join(allowed)}.",
            "details": {"allowed": allowed},
        }
