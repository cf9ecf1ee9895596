"""What the page needs of the API beyond the CLI: files sent again after an upload was cut short,
and the results link as JSON (filtered pages of units: tests/unit/test_unit_page.py)."""

from __future__ import annotations

import json
from typing import Any

import requests

from chalicelib.clock import FakeClock
from tests.integration.conftest import Stack


def post(stack: Stack, path: str, user: str = "alice") -> tuple[int, dict[str, Any]]:
    response = stack.client.http.post(path, headers=stack.auth(user))
    return response.status_code, json.loads(response.body)


def send(ticket: dict[str, Any], name: str, data: bytes) -> None:
    files = {"file": (name, data)}
    posted = requests.post(ticket["url"], data=ticket["fields"], files=files, timeout=10)
    assert posted.status_code == 204, posted.text


def test_a_file_whose_upload_was_cut_short_is_sent_again_with_a_fresh_form(stack: Stack) -> None:
    files = [("a.txt", b"first file " * 10), ("b.txt", b"second file " * 10)]
    manifest = {"files": [{"name": n, "size": len(d)} for n, d in files]}
    response = stack.client.http.post("/sessions", headers=stack.auth(), body=json.dumps(manifest))
    created = json.loads(response.body)
    sid = created["session_id"]
    send(created["uploads"][0], *files[0])  # b.txt never arrives: the tab was reloaded
    stack.run_until_idle()

    status, summary = stack.get(f"/sessions/{sid}")
    assert (summary["files_received"], summary["upload_deadline"]) == (1, created["expires_at"])
    status, listed = stack.get(f"/sessions/{sid}/uploads")
    assert status == 200
    assert listed == {
        "session_id": sid,
        "upload_deadline": created["expires_at"],
        "files": [
            {
                "ordinal": 1,
                "name": "b.txt",
                "size": 120,
                "content_type": "application/octet-stream",
                "upload": None,
            }
        ],
    }
    status, fresh = post(stack, f"/sessions/{sid}/uploads")
    assert status == 200
    [missing] = fresh["files"]
    ticket = missing["upload"]
    assert (ticket["ordinal"], ticket["key"]) == (1, created["uploads"][1]["key"])
    send(ticket, *files[1])

    summary = stack.run_until_settled(sid)
    assert (summary["status"], summary["total"], summary["files_received"]) == ("completed", 2, 2)
    assert summary["upload_deadline"] is None
    # Done: nothing more to send.
    assert stack.get(f"/sessions/{sid}/uploads")[0] == 409
    status, refused = post(stack, f"/sessions/{sid}/uploads")
    assert (status, refused["error"]["code"]) == (409, "invalid_state")


def test_after_the_upload_window_no_new_form_is_given(stack: Stack, clock: FakeClock) -> None:
    created = stack.client.http.post(
        "/sessions",
        headers=stack.auth(),
        body=json.dumps({"files": [{"name": "a.txt", "size": 5}]}),
    )
    sid = json.loads(created.body)["session_id"]
    clock.advance(901)
    status, refused = post(stack, f"/sessions/{sid}/uploads")
    assert (status, refused["error"]["code"]) == (409, "upload_window_closed")
    # Another person's session does not exist for them.
    assert post(stack, f"/sessions/{sid}/uploads", user="mallory")[0] == 404
    assert stack.get(f"/sessions/{sid}/uploads", user="mallory")[0] == 404


def test_the_results_link_is_json_for_a_page_and_a_redirect_for_everyone_else(
    stack: Stack,
) -> None:
    sid = stack.create([("a.txt", b"hello there " * 5)])["session_id"]
    stack.run_until_settled(sid)
    headers = {**stack.auth(), "Accept": "application/json"}
    response = stack.client.http.get(f"/sessions/{sid}/results?format=csv", headers=headers)
    assert response.status_code == 200
    link = json.loads(response.body)
    assert (link["format"], link["version"]) == ("csv", stack.get(f"/sessions/{sid}")[1]["version"])
    downloaded = requests.get(link["url"], timeout=10)
    assert downloaded.status_code == 200
    assert downloaded.content.decode("utf-8-sig").splitlines()[1].startswith("00000-000000,a.txt,")
    redirect = stack.client.http.get(f"/sessions/{sid}/results?format=csv", headers=stack.auth())
    assert (redirect.status_code, redirect.headers["Location"].split("?")[0]) == (
        302,
        link["url"].split("?")[0],
    )
