"""The in-process stack (moto in this process, chute's real handlers) seen as a client sees it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from chalice.test import Client

from chalicelib.auth import issue_token
from chalicelib.clock import FakeClock
from chalicelib.jobs import BUILT_IN
from infra.inprocess import TOKEN_KEY, InProcessStack


@dataclass
class Stack:
    """The in-process stack, seen as a client would: the HTTP API and presigned POSTs."""

    stack: InProcessStack
    client: Client

    def token(self, user: str = "alice", *, admin: bool = False) -> str:
        """A bearer token for `user`, issued now by the stack's clock."""
        return issue_token(TOKEN_KEY, user, self.stack.services.clock.now(), admin=admin)

    def auth(self, user: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}", "Content-Type": "application/json"}

    def create(self, files: list[tuple[str, bytes]], user: str = "alice") -> dict[str, Any]:
        manifest = {
            "files": [
                {"name": name, "size": len(data), "content_type": "application/octet-stream"}
                for name, data in files
            ]
        }
        response = self.client.http.post(
            "/sessions", headers=self.auth(user), body=json.dumps(manifest)
        )
        assert response.status_code == 201, response.body
        created: dict[str, Any] = json.loads(response.body)
        for ticket, (name, data) in zip(created["uploads"], files, strict=True):
            posted = requests.post(
                ticket["url"], data=ticket["fields"], files={"file": (name, data)}, timeout=10
            )
            assert posted.status_code == 204, posted.text
        return created

    def get(self, path: str, user: str = "alice") -> Any:
        response = self.client.http.get(path, headers=self.auth(user))
        return response.status_code, json.loads(response.body) if response.body else None

    def run_until_idle(self) -> None:
        self.stack.drain()

    def run_until_settled(self, sid: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Drain until the session is no longer uploading or processing, waiting out the delays
        SQS holds retried messages for (a model's Retry-After); its summary then."""
        deadline = time.monotonic() + timeout_s
        while (summary := self.get(f"/sessions/{sid}")[1])["status"] in ("uploading", "processing"):
            assert time.monotonic() < deadline, summary
            self.run_until_idle()
            time.sleep(0.1)
        return dict(summary)

    def emails(self) -> list[dict[str, Any]]:
        return self.stack.outbox()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stack(clock: FakeClock) -> Iterator[Stack]:
    with (
        InProcessStack(clock, BUILT_IN.tuned(backoff_base_s=0), progress_interval_s=0) as stack,
        Client(stack.app.app) as client,
    ):
        yield Stack(stack, client)
