"""The web page's static files (chalicelib/web/), served by the API itself: no build step."""

from __future__ import annotations

from pathlib import Path

from chalicelib.errors import NotFound

WEB_DIR = Path(__file__).with_name("web")
# Only these names are ever read: a request cannot name any other file, so no path traversal.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


def read_asset(name: str) -> tuple[str, str]:
    """(text, content type) of an allowed asset, read on each call so edits show on reload."""
    content_type = ASSETS.get(name)
    if content_type is None:
        raise NotFound(f"No page asset {name!r}.", code="asset_not_found")
    return (WEB_DIR / name).read_text(encoding="utf-8"), content_type
