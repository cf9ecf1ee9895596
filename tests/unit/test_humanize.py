"""Sizes as a person reads them in messages."""

from __future__ import annotations

import pytest

from chalicelib.humanize import human_bytes


@pytest.mark.parametrize(
    ("size", "words"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (1023, "1,023 bytes"),
        (1536, "1.5 KB"),
        (64 * 2**20, "64 MB"),
        (512 * 2**20, "512 MB"),
        (3 * 2**40, "3 TB"),
    ],
)
def test_sizes_read_in_words(size: int, words: str) -> None:
    assert human_bytes(size) == words
