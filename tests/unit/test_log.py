"""Hole 13: each thread logs its own unit's keys, never another's, and none after it is done."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from chalicelib.log import log_keys, logger


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    # A first `import app` anywhere earlier in the run (Chalice's app_name logger setup) sets
    # this logger's level to ERROR: these lines are INFO.
    named = logging.getLogger(logger.name)
    level = named.level
    named.setLevel(logging.INFO)
    yield buffer
    named.setLevel(level)
    handler.setStream(previous)  # type: ignore[attr-defined]


def test_concurrent_units_log_their_own_keys(lines: io.StringIO) -> None:
    both_inside = threading.Barrier(2)

    def unit(sid: str, ordinal: str) -> None:
        with log_keys(session_id=sid, ordinal=ordinal):
            both_inside.wait()
            logger.info("working")
            both_inside.wait()
        logger.info("done")

    threads = [
        threading.Thread(target=unit, args=("s1", "00000-000001")),
        threading.Thread(target=unit, args=("s2", "00000-000002")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    logged = [json.loads(line) for line in lines.getvalue().splitlines()]
    working = sorted((r["session_id"], r["ordinal"]) for r in logged if r["message"] == "working")
    assert working == [("s1", "00000-000001"), ("s2", "00000-000002")]
    done = [r for r in logged if r["message"] == "done"]
    assert len(done) == 2
    assert all("session_id" not in r and "ordinal" not in r for r in done)
