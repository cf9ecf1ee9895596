"""The browser tests' page: Debian's chromium driven by Playwright, its failures photographed."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

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
# A failed browser test leaves its last screen here (ignored by git, kept by CI as an artifact).
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# Records each browser notification and each aria-live announcement, with the browser's time.
RECORDERS = """
window.__notified = [];
window.Notification = class extends window.Notification {
  constructor(title, options) {
    super(title, options);
    window.__notified.push({ title, body: options.body, at: Date.now() / 1000 });
  }
};
window.__announced = [];
document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("announce");
  new MutationObserver(() => window.__announced.push(
    { text: live.textContent, at: Date.now() / 1000 })).observe(live, { childList: true });
});
"""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_OUTCOME] = report.failed
    return report


_OUTCOME = pytest.StashKey[bool]()


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Page]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; no browser download)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            permissions=["notifications"], viewport={"width": 1280, "height": 900}
        )
        context.add_init_script(RECORDERS)
        page = context.new_page()
        # A confirm() (Cancel asks) is answered yes; Playwright would dismiss it otherwise.
        page.on("dialog", lambda dialog: dialog.accept())
        yield page
        if request.node.stash.get(_OUTCOME, False):
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
        browser.close()
