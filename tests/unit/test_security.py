"""Logs carry no secrets: every line chute's logger writes is redacted before it is written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.log import REDACTED, logger, redact, redact_text

TOKEN = "eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
SIGNATURE = "ba71cc25ad2df95add1ae1ebc2b0f78ac5e6d0b452166e9f48cc5e3b2e1e6315"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    named = logging.getLogger(logger.name)
    level = named.level
    named.setLevel(logging.INFO)  # `import app` elsewhere in the run sets it to ERROR
    yield buffer
    named.setLevel(level)
    handler.setStream(previous)  # type: ignore[attr-defined]


def logged(lines: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Bearer {TOKEN}", f"Authorization: Bearer {REDACTED}"),
        (f"header bearer {TOKEN} sent", f"header bearer {REDACTED} sent"),
        (
            f"https://s3/b/k?X-Amz-Signature={SIGNATURE}&X-Amz-Date=1",
            f"https://s3/b/k?X-Amz-Signature={REDACTED}&X-Amz-Date=1",
        ),
        (
            "{'policy': 'eyJleHBp', 'key': 'uploads/a'}",
            f"{{'policy': '{REDACTED}', 'key': 'uploads/a'}}",
        ),
        ("X-Amz-Security-Token=FwoGZX&x=1", f"X-Amz-Security-Token={REDACTED}&x=1"),
        ("401: key sk-proj-abcdEFGH1234 is wrong", f"401: key {REDACTED} is wrong"),
        ("tokens_in: 12, max_tokens=100", "tokens_in: 12, max_tokens=100"),
        ("uploads/id1/00000/report.pdf", "uploads/id1/00000/report.pdf"),
    ],
)  # fmt: skip
def test_secrets_inside_text_are_redacted_and_nothing_else(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_values_under_secret_names_are_redacted_at_any_depth() -> None:
    value = {
        "headers": {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        "fields": [{"x-amz-signature": SIGNATURE, "policy": "eyJ", "key": "uploads/a"}],
        "model_api_key": "anything",
        "token_key": "k",
        "token": None,
        "tokens_in": 12,
        "result_key": "results/a",
    }

    assert redact(value) == {
        "headers": {"Authorization": REDACTED, "Content-Type": "application/json"},
        "fields": [{"x-amz-signature": REDACTED, "policy": REDACTED, "key": "uploads/a"}],
        "model_api_key": REDACTED,
        "token_key": REDACTED,
        "token": None,
        "tokens_in": 12,
        "result_key": "results/a",
    }


def test_a_logged_line_is_redacted_in_its_message_its_keys_and_its_exception(
    lines: io.StringIO,
) -> None:
    try:
        raise RuntimeError(f"the call with Bearer {TOKEN} failed")
    except RuntimeError:
        logger.exception(
            "calling with Bearer %s", TOKEN, extra={"authorization": TOKEN, "units": 3}
        )

    (line,) = logged(lines)
    assert TOKEN not in json.dumps(line)
    assert (line["message"], line["authorization"], line["units"]) == (
        f"calling with Bearer {REDACTED}",
        REDACTED,
        3,
    )
    assert line["exception"].endswith(f"RuntimeError: the call with Bearer {REDACTED} failed")
