"""The structured logger (Powertools): JSON lines, with each unit's keys on its own lines.

Keys appended with `unit_keys` live in a context variable, so a thread (or a row processed
concurrently) logs its own session_id and ordinal, never another's, and none after it is done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger

logger = Logger(service="chute")


@contextmanager
def log_keys(**keys: object) -> Iterator[None]:
    """Append keys to every line this thread logs inside the block."""
    logger.thread_safe_append_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(keys.keys())
