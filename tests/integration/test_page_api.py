"""What the page needs of the API beyond the CLI: files sent again after an upload was cut short,
the results link as JSON, and filtered pages of units that neither skip nor repeat a match."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
import requests

from chalicelib import sessions
from chalicelib.clock import FakeClock
from chalicelib.processors.pdfgen import make_pdf
from tests.integration.conftest import Stack

BROKEN_PDF = make_pdf(["A page."], title="Broken")[:200]


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


def zip_with_failures(files: int, every: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in range(files):
            if n % every == every - 1:
                archive.writestr(f"f{n:02d}.pdf", BROKEN_PDF)
            else:
                archive.writestr(f"f{n:02d}.txt", f"text {n} " * 5)
    return buffer.getvalue()


@pytest.mark.parametrize(("read_page", "read_max"), [(1000, 5000), (3, 5000), (3, 6)])
def test_a_filtered_page_of_units_neither_skips_nor_repeats_a_match(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, read_page: int, read_max: int
) -> None:
    # Small reads force the page to read on (and, with a small maximum, to stop early).
    monkeypatch.setattr(sessions, "FILTER_READ_PAGE", read_page)
    monkeypatch.setattr(sessions, "FILTER_READ_MAX", read_max)
    sid = stack.create([("docs.zip", zip_with_failures(25, every=5))])["session_id"]
    assert stack.run_until_settled(sid)["counts"]["failed"] == 5

    pages: list[list[str]] = []
    cursor = None
    while True:
        query = "status=failed&limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = stack.get(f"/sessions/{sid}/files?{query}")
        assert status == 200
        pages.append([u["name"] for u in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 20
    names = [name for page in pages for name in page]
    assert names == ["f04.pdf", "f09.pdf", "f14.pdf", "f19.pdf", "f24.pdf"]
    assert all(len(page) <= 2 for page in pages)
    if read_max == 5000:  # reads on until a page is full
        assert [len(page) for page in pages] == [2, 2, 1]
