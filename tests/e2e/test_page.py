"""The web page in a real browser (Debian's chromium driven by Playwright) on the local stack."""

from __future__ import annotations

import io
import json
import os
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from chalice.test import Client

import app
from chalicelib.errors import NotFound
from chalicelib.processors.pdfgen import make_pdf
from chalicelib.web import read_asset
from infra.local import LocalStack

if TYPE_CHECKING:
    from playwright.sync_api import FilePayload, Page

CHROMIUM = Path("/usr/bin/chromium")
# Headless and quiet: no GPU, no sandbox (containers), nothing that calls out to the internet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/chute-page.png")
# Records each browser notification the page shows, with the browser's time, for the assertions.
RECORD_NOTIFICATIONS = """
window.__notified = [];
window.Notification = class extends window.Notification {
  constructor(title, options) {
    super(title, options);
    window.__notified.push({ title, body: options.body, at: Date.now() / 1000 });
  }
};
"""


def docs_zip() -> bytes:
    """Three good text files and a PDF cut in half, which the PDF processor must reject."""
    pdf = make_pdf(["The first page.", "The second page."], title="Broken")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for number in (1, 2, 3):
            archive.writestr(f"note-{number}.txt", f"Note {number}. " + "Some words. " * 20)
        archive.writestr("broken.pdf", pdf[: len(pdf) // 2])
    return buffer.getvalue()


def get_summary(info: dict[str, Any], sid: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{info['api_url']}/sessions/{sid}", headers={"Authorization": f"Bearer {info['token']}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        summary: dict[str, Any] = json.load(response)
    return summary


@pytest.fixture
def page() -> Iterator[Page]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; no browser download)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(permissions=["notifications"])
        context.add_init_script(RECORD_NOTIFICATIONS)
        yield context.new_page()
        browser.close()


@pytest.mark.e2e
@pytest.mark.browser
def test_the_page_uploads_a_zip_watches_it_to_the_end_and_survives_a_reload(
    tmp_path: Path, page: Page
) -> None:
    from playwright.sync_api import expect

    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    with LocalStack(tmp_path, api_port=0) as stack:
        info = stack.info
        page.goto(f"{info['api_url']}/#token={info['token']}")
        expect(page.locator("#whoami")).to_have_text("Signed in as dev")
        assert "token" not in page.url
        upload: FilePayload = {
            "name": "docs.zip",
            "mimeType": "application/zip",
            "buffer": docs_zip(),
        }
        page.set_input_files("#files", files=[upload])
        page.fill("#session-name", "browser check")
        page.click("#start")

        summary = page.locator("#summary")
        expect(summary).to_have_attribute("data-status", "completed_with_errors", timeout=60_000)
        expect(summary).to_have_text("3 of 4 files completed; 1 failed — see below.")
        expect(page.locator("#upload-status")).to_have_text("Uploaded 1 of 1 file.")
        expect(page.locator("#unit-rows tr[data-status=completed]")).to_have_count(3)
        failed = page.locator("#unit-rows tr[data-status=failed]")
        expect(failed).to_have_count(1)
        expect(failed).to_contain_text("broken.pdf")
        expect(failed.locator("code")).to_have_text("pdf_unreadable")
        sid = parse_qs(urlsplit(page.url).query)["session"][0]
        done_at = get_summary(info, sid)["done_at"]
        notified = page.evaluate("window.__notified")
        page.screenshot(path=SCREENSHOT, full_page=True)

        page.reload()
        expect(page.locator("#session-status")).to_have_attribute(
            "data-status", "completed_with_errors"
        )
        expect(summary).to_contain_text("3 of 4 files completed; 1 failed")
        expect(page.locator("#unit-rows tr")).to_have_count(4)
        expect(page.locator("#session-list a[aria-current=page]")).to_have_text("browser check")
        # A session that was already over when the page opened is no news: no second notification.
        assert page.evaluate("window.__notified") == []

    assert [n["title"] for n in notified] == ["browser check: completed with errors"]
    # The page polls every 2 s: the news must be out within 3 s of the session finishing.
    assert notified[0]["at"] - done_at < 3.0
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
