"""The web page in a real browser (Debian's chromium driven by Playwright) on the local stack.

One test (a 50-file zip, start to finish: table, failure, notification, retry, download, reload,
aria-live, 1280 and 390 px) runs in `make test`; the others (prompts paused and resumed, an upload
cut short, preferences, the operator's view) are `slow` and run in CI's `make slow`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from chalice.test import Client

import app
from chalicelib.auth import issue_token
from chalicelib.errors import NotFound
from chalicelib.processors.pdfgen import make_pdf
from chalicelib.web import read_asset
from infra.local import LocalStack

if TYPE_CHECKING:
    from playwright.sync_api import FilePayload, Page

SCREENSHOTS = Path("/tmp/chute-page")


def docs_zip(files: int = 50) -> bytes:
    """`files - 1` text documents, then a PDF cut in half, which the PDF processor must reject."""
    pdf = make_pdf(["The first page.", "The second page."], title="Broken")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for number in range(files - 1):
            archive.writestr(f"note-{number:02d}.txt", f"Note {number}. " + "Some words. " * 20)
        archive.writestr("broken.pdf", pdf[: len(pdf) // 2])
    return buffer.getvalue()


def zip_payload(files: int = 50) -> FilePayload:
    return {"name": "docs.zip", "mimeType": "application/zip", "buffer": docs_zip(files)}


def call(info: dict[str, Any], path: str, token: str | None = None) -> Any:
    request = urllib.request.Request(
        f"{info['api_url']}/{path}",
        headers={"Authorization": f"Bearer {token or info['token']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def session_id(page: Page) -> str:
    return parse_qs(urlsplit(page.url).query)["session"][0]


def count_of(page: Page, status: str) -> int:
    return int(page.locator(f"#counts li[data-status={status}] strong").inner_text())


def open_page(page: Page, info: dict[str, Any], token: str | None = None) -> list[str]:
    """Sign the page in; the problems (page errors, console errors) it reports are collected."""
    from playwright.sync_api import expect

    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    # (Chromium logs each answer >= 400 as a console error: the tests that cause one on purpose
    # take it out again.)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(f"{info['api_url']}/#token={token or info['token']}")
    expect(page.locator("#whoami")).to_have_text(re.compile(r"^Signed in as "))
    assert "token" not in page.url
    return problems


@pytest.mark.e2e
@pytest.mark.browser
def test_a_zip_of_50_files_from_upload_to_download(tmp_path: Path, page: Page) -> None:
    from playwright.sync_api import expect

    SCREENSHOTS.mkdir(exist_ok=True)
    with LocalStack(tmp_path, api_port=0) as stack:
        info = stack.info
        problems = open_page(page, info)
        page.set_input_files("#files", files=[zip_payload()])
        page.fill("#session-name", "browser check")
        page.click("#start")

        summary = page.locator("#summary")
        expect(page.locator("#session-status")).to_have_attribute(
            "data-status", "completed_with_errors", timeout=90_000
        )
        expect(summary).to_have_text("49 of 50 done, 1 failed")
        expect(page.locator("#upload-status")).to_have_text("Uploaded 1 of 1 file.")
        # The table filled, in input order, and says which unit failed and why.
        rows = page.locator("#unit-rows tr")
        expect(rows).to_have_count(50)
        assert rows.locator("th").all_inner_texts() == [
            *(f"note-{n:02d}.txt" for n in range(49)),
            "broken.pdf",
        ]
        failed = page.locator("#unit-rows tr[data-status=failed]")
        expect(failed.locator("code")).to_have_text("pdf_unreadable")
        expect(page.locator("#failures li")).to_have_count(1)
        expect(page.locator("#failures li")).to_contain_text("broken.pdf — pdf_unreadable: ")
        expect(page.locator("#retry")).to_have_text("Retry failed (1)")
        expect(page.locator("#pause")).to_be_hidden()
        # A person who is not an operator has no operator's view.
        expect(page.locator("#show-operator")).to_be_hidden()
        sid = session_id(page)
        done_at = call(info, f"sessions/{sid}")["done_at"]
        notified = page.evaluate("window.__notified")
        announced = page.evaluate("window.__announced")
        page.screenshot(path=SCREENSHOTS / "done-1280.png", full_page=True)
        # At 1280 px the table stays inside its card.
        card = page.locator("#session").bounding_box()
        table = page.locator("#units").bounding_box()
        assert card is not None
        assert table is not None
        assert table["x"] + table["width"] <= card["x"] + card["width"]

        # The CSV download: every unit in input order, the failure marked.
        with page.expect_download() as downloading:
            page.click("button[data-format=csv]")
        text = Path(downloading.value.path()).read_text(encoding="utf-8-sig")
        records = list(csv.DictReader(io.StringIO(text)))
        assert [r["name"] for r in records] == rows.locator("th").all_inner_texts()
        assert [r["status"] for r in records] == ["completed"] * 49 + ["failed"]
        assert records[-1]["error_code"] == "pdf_unreadable"

        # A reload shows the same state; an ending seen before is no news.
        page.reload()
        expect(page.locator("#session-status")).to_have_attribute(
            "data-status", "completed_with_errors"
        )
        expect(summary).to_have_text("49 of 50 done, 1 failed")
        expect(rows).to_have_count(50)
        expect(page.locator("#session-list a[aria-current=page]")).to_have_text("browser check")
        assert page.evaluate("window.__notified") == []

        # Retry failed: the broken PDF runs again (and fails again), and the ending is news again.
        page.click("#retry")
        expect(page.locator("#session-status")).to_have_attribute(
            "data-status", "completed_with_errors", timeout=60_000
        )
        page.wait_for_function("window.__notified.length === 1", timeout=10_000)
        assert call(info, f"sessions/{sid}")["version"] > 0

        # 390 px: one column, nothing wider than the screen.
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=SCREENSHOTS / "done-390.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390

    assert [(n["title"], n["body"]) for n in notified] == [
        ("browser check: completed with errors", "49 of 50 done, 1 failed.")
    ]
    # The page polls every 2 s: the news must be out within 3 s of the session finishing.
    assert notified[0]["at"] - done_at < 3.0
    # aria-live said the session started and ended, and not much in between (rate-limited).
    texts = [a["text"] for a in announced]
    assert texts[-1].startswith("browser check: completed with errors. Finished in ")
    assert any(t.startswith("browser check: ") for t in texts[:-1])
    assert len(texts) <= 2 + (announced[-1]["at"] - announced[0]["at"]) / 10 + 2
    assert problems == []


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.browser
def test_pasted_prompts_pause_resume_and_a_reload_mid_way(
    tmp_path: Path, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    # Slow answers, one at a time: 20 rows take long enough to pause half-way.
    monkeypatch.setenv("CHUTE_DEV_MODEL_LATENCY_MS", "700")
    monkeypatch.setenv("CHUTE_MODEL_CONCURRENCY", "1")
    with LocalStack(tmp_path, api_port=0, work_concurrency=2) as stack:
        info = stack.info
        problems = open_page(page, info)
        page.check("input[name=job][value=prompts]")
        page.check("input[name=source][value=paste]")
        page.fill("#prompts-text", "\n".join(f"a haiku about the number {n}" for n in range(20)))
        expect(page.locator("#prompts-count")).to_have_text("20 prompts")
        page.click("#start")
        expect(page.locator("#session-title")).to_have_text("20 pasted prompts")
        page.wait_for_function(
            "Number(document.querySelector('#counts li[data-status=completed] strong')"
            "?.textContent) >= 2",
            timeout=60_000,
        )
        expect(page.locator("#step")).to_contain_text("Processing rows… ")

        # The server stops answering for a while: the page says so, then carries on.
        summary_url = re.compile(r".*/sessions/[0-9a-f]+$")
        page.route(summary_url, lambda route: route.fulfill(status=503, body="{}"))
        expect(page.locator("#connection")).to_contain_text("Reconnecting… ", timeout=10_000)
        page.unroute(summary_url)
        expect(page.locator("#connection")).to_be_hidden(timeout=10_000)
        problems[:] = [p for p in problems if "status of 503 (Service Unavailable)" not in p]

        page.click("#pause")
        expect(page.locator("#session-status")).to_have_attribute("data-status", "paused")
        expect(page.locator("#paused-why")).to_have_text(
            "Paused: nothing new starts until you resume. Running units finish."
        )
        expect(page.locator("#resume")).to_be_visible()
        sid = session_id(page)
        # Running rows finish; then nothing new starts.
        deadline = time.monotonic() + 30
        while call(info, f"sessions/{sid}")["counts"]["running"] and time.monotonic() < deadline:
            time.sleep(0.5)
        # (Waiting units whose message arrives meanwhile are parked: pending becomes paused.)
        started = ("running", "completed", "failed", "timeout")
        before = call(info, f"sessions/{sid}")["counts"]
        time.sleep(3)
        after = call(info, f"sessions/{sid}")["counts"]
        assert {s: after[s] for s in started} == {s: before[s] for s in started}
        assert after["running"] == 0
        assert after["completed"] < 20

        # A reload mid-way shows the same session, paused, with its rows.
        page.reload()
        expect(page.locator("#session-title")).to_have_text("20 pasted prompts")
        expect(page.locator("#session-status")).to_have_attribute("data-status", "paused")
        expect(page.locator("#unit-rows tr")).to_have_count(20)
        expect(page.locator("#unit-rows tr[data-status=completed]")).to_have_count(
            before["completed"]
        )

        page.click("#resume")
        expect(page.locator("#session-status")).to_have_attribute(
            "data-status", "completed", timeout=90_000
        )
        expect(page.locator("#summary")).to_have_text("All 20 rows done.")
        expect(page.locator("#session-meta")).to_contain_text(" tokens in, ")
        expect(page.locator("#unit-rows tr[data-status=completed]")).to_have_count(20)
        announced = [a["text"] for a in page.evaluate("window.__announced")]
    assert "Resumed. " in " ".join(announced)
    assert announced[-1].startswith("20 pasted prompts: completed. ")
    assert problems == []


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.browser
def test_an_upload_cut_short_is_sent_again_or_cancelled(tmp_path: Path, page: Page) -> None:
    from playwright.sync_api import Route, expect

    def cut(route: Route) -> None:
        route.abort()

    with LocalStack(tmp_path, api_port=0) as stack:
        info = stack.info
        bucket = re.compile(r".*/chute-local/?$")
        open_page(page, info)
        # The upload never reaches storage (the connection drops, or the tab is reloaded).
        page.route(bucket, cut)
        page.set_input_files("#files", files=[zip_payload(5)])
        page.click("#start")
        expect(page.locator("#upload-status")).to_have_text("Uploaded 0 of 1 file; 1 failed.")
        page.reload()
        missing = page.locator("#missing")
        expect(missing).to_be_visible()
        expect(page.locator("#missing-text")).to_contain_text(
            "1 of 1 file has not been received. If this page was reloaded"
        )
        expect(page.locator("#missing-text")).to_contain_text("Missing: docs.zip (")
        expect(page.locator("#step")).to_have_text("Uploading… 0 of 1 file received.")

        # The wrong file is refused in words; the right one goes through.
        wrong: FilePayload = {"name": "docs.zip", "mimeType": "application/zip", "buffer": b"x"}
        page.set_input_files("#missing-files", files=[wrong])
        page.click("#reupload")
        expect(page.locator("#error-text")).to_contain_text(
            "docs.zip is 1 B, but the session expects "
        )
        page.unroute(bucket, cut)
        page.set_input_files("#missing-files", files=[zip_payload(5)])
        page.click("#reupload")
        expect(page.locator("#session-status")).to_have_attribute(
            "data-status", "completed_with_errors", timeout=60_000
        )
        expect(page.locator("#summary")).to_have_text("4 of 5 done, 1 failed")
        expect(missing).to_be_hidden()

        # Or, given up: cancel the session that waits for its file.
        page.route(bucket, cut)
        page.set_input_files("#files", files=[zip_payload(5)])
        page.click("#start")
        expect(page.locator("#upload-status")).to_have_text("Uploaded 0 of 1 file; 1 failed.")
        expect(missing).to_be_visible()
        page.click("#missing-cancel")
        expect(page.locator("#session-status")).to_have_attribute("data-status", "cancelled")
        expect(missing).to_be_hidden()


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.browser
def test_notifications_preferences_and_the_operator_view(tmp_path: Path, page: Page) -> None:
    from playwright.sync_api import expect

    with LocalStack(tmp_path, api_port=0) as stack:
        info = stack.info
        key = Path(info["token_key_path"]).read_text(encoding="utf-8").strip()
        ops = issue_token(key, "ops", time.time(), admin=True)
        problems = open_page(page, info, token=ops)
        expect(page.locator("#show-operator")).to_be_visible()
        # A scanned PDF (pages, no text layer) is skipped, and the table says why.
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("scan.pdf", make_pdf([""], title="Scan"))
            z.writestr("broken.pdf", make_pdf(["A page."])[:100])
            z.writestr("note.txt", "A few words to read.")
        scans: FilePayload = {
            "name": "docs.zip",
            "mimeType": "application/zip",
            "buffer": archive.getvalue(),
        }
        page.set_input_files("#files", files=[scans])
        page.click("#start")
        expect(page.locator("#session-status")).to_have_attribute(
            "data-status", "completed_with_errors", timeout=60_000
        )
        expect(page.locator("#summary")).to_have_text("1 of 3 done, 1 failed, 1 skipped")
        scan = page.locator("#unit-rows tr", has_text="scan.pdf")
        expect(scan).to_have_attribute("data-status", "skipped")
        expect(scan.locator("td[data-label=Error]")).to_contain_text(
            "no_text_layer This PDF has no text to read on any of its 1 pages: it looks scanned"
        )

        page.click("#show-notifications")
        items = page.locator("#notification-list li")
        expect(items.first).to_have_attribute("data-event", "completed_with_errors")
        expect(items.first).to_contain_text("docs.zip")
        page.click("#preferences summary")
        email_done = page.get_by_label("Completed: email", exact=True)
        expect(email_done).to_be_checked()
        expect(page.get_by_label("Started: email", exact=True)).not_to_be_checked()
        email_done.uncheck()
        page.get_by_label("Started: email", exact=True).check()
        page.click("#preferences-save")
        expect(page.locator("#preferences-status")).to_have_text("Saved.")
        saved = call(info, "me/preferences", token=ops)
        assert saved["email"] == [
            "session.started",
            "session.completed_with_errors",
            "session.failed",
            "session.cancelled",
            "session.rejected",
        ]

        page.click("#show-operator")
        operator = page.locator("#operator")
        expect(operator.locator("caption").first).to_have_text("Queues")
        expect(operator.get_by_role("rowheader", name="chute-work-high", exact=True)).to_have_count(
            1
        )
        expect(operator.get_by_role("rowheader", name="chute-work-dlq", exact=True)).to_have_count(
            1
        )
        # The finished session is no longer under way: nothing to count, and it says so.
        expect(operator).to_contain_text("Sessions under way: 0: none.")
        expect(operator).to_contain_text("Failures by code: none.")
    assert problems == []


def test_the_page_and_its_assets_are_served_with_their_content_types() -> None:
    with Client(app.app) as client:
        served = {
            path: client.http.get(path) for path in ("/", "/static/app.js", "/static/app.css")
        }

    assert {path: r.headers["Content-Type"] for path, r in served.items()} == {
        "/": "text/html; charset=utf-8",
        "/static/app.js": "text/javascript; charset=utf-8",
        "/static/app.css": "text/css; charset=utf-8",
    }
    assert all(r.status_code == 200 for r in served.values())
    assert b'<script type="module" src="static/app.js">' in served["/"].body


@pytest.mark.parametrize("name", ["../app.py", "web.py", "/etc/passwd", "index.html/", ""])
def test_only_the_page_assets_can_be_read(name: str) -> None:
    with pytest.raises(NotFound):
        read_asset(name)
