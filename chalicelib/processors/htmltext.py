"""The text a browser shows of an HTML page, read as the page arrives."""

from __future__ import annotations

from html.parser import HTMLParser

# Text nodes are turned into finished lines every so many, so a page of many small nodes does not
# hold a string object (about 50 bytes of overhead) for each until the end, nor its raw text beside
# its finished text.
_PARTS_PER_BATCH = 4096


class VisibleText(HTMLParser):
    """The text a browser would show, one block element per line, and the document title.

    Fed piece by piece (it is a sink of textdecode.StreamDecoder), so the page's markup is never
    held whole: only its visible text is.
    """

    _HIDDEN = frozenset({"script", "style", "template"})
    _CELLS = frozenset({"td", "th"})
    _BLOCKS = frozenset(
        {
            "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
            "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
            "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr",
            "ul",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._finished: list[str] = []  # lines done, joined by "\n", a string per batch
        self._parts: list[str] = []
        self._title_parts: list[str] = []
        self._hidden_depth = 0
        self._in_title = False
        self.title: str | None = None

    def __call__(self, piece: str) -> None:
        self.feed(piece)

    def handle_starttag(self, tag: str, _attrs: list[tuple[str, str | None]]) -> None:
        self._boundary(tag)
        if tag in self._HIDDEN:
            self._hidden_depth += 1
        elif tag == "title" and self.title is None:
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        self._boundary(tag)
        if tag in self._HIDDEN:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag == "title" and self._in_title:
            self._in_title = False
            # Only the first title counts: an inline SVG in the body can carry its own.
            self.title = " ".join("".join(self._title_parts).split()) or None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)
        elif not self._hidden_depth:
            self._append(data)

    def parse_marked_section(self, i: int, _report: bool = True) -> int:
        # Python before 3.13 raises AssertionError on a "<![" it does not know. Browsers treat any
        # "<![" in HTML content, CDATA included, as a bogus comment that ends at the next ">".
        end = self.rawdata.find(">", i + 3)
        return -1 if end < 0 else end + 1

    def _boundary(self, tag: str) -> None:
        # Browsers break lines at block elements and separate table cells; inline tags join words.
        if tag in self._BLOCKS:
            self._append("\n")
        elif tag in self._CELLS:
            self._append(" ")

    def _append(self, part: str) -> None:
        self._parts.append(part)
        if len(self._parts) >= _PARTS_PER_BATCH:
            self._finish_lines(last=False)

    def _finish_lines(self, *, last: bool) -> None:
        pending = "".join(self._parts)
        self._parts = []
        if not last:
            # The text after the last "\n" may go on in the next batch.
            cut = pending.rfind("\n") + 1
            pending, rest = pending[:cut], pending[cut:]
            if rest:
                self._parts.append(rest)
        lines = (" ".join(line.split()) for line in pending.splitlines())
        if finished := "\n".join(line for line in lines if line):
            self._finished.append(finished)

    def text(self) -> str:
        """The visible text, each line's whitespace collapsed, empty lines left out."""
        self._finish_lines(last=True)
        text = "\n".join(self._finished)
        self._finished = []
        return text
