"""The structured logger (Powertools): JSON lines, with each unit's keys on its own lines.

Keys appended with `unit_keys` live in a context variable, so a thread (or a row processed
concurrently) logs its own session_id and ordinal, never another's, and none after it is done.

Every line passes through `redact` before it is written: values under names that hold secrets
(authorization, tokens, keys, passwords, presigned-form signatures and policies) and bearer
tokens or signatures inside any string (an exception's message, a URL) become ``[redacted]``.
Nothing chute logs should carry them; this is the net under that rule. File contents are not
recognisable by pattern: chute logs codes, counts and keys, never a unit's bytes or its answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.types import LogRecord

REDACTED = "[redacted]"
# Names (of a logged key, header or form field) whose values are secrets, compared lowercased
# with '-' read as '_'.
SECRET_NAMES = re.compile(
    r"(authorization|token|token_key|secret|password|api_?key|signature|policy|credential|cookie)$"
)
_SECRETS_IN_TEXT = [
    # Authorization headers and the tokens in them, whatever else surrounds them.
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"),
    # Query strings and forms: X-Amz-Signature=…, Signature=…, X-Amz-Security-Token=…, policy=…
    re.compile(
        r"(?i)(\b(?:x-amz-signature|signature|x-amz-security-token|x-amz-credential|policy"
        r"|awsaccesskeyid|api_key|token)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',}]+"
    ),
    # OpenAI-style API keys, wherever they appear.
    re.compile(r"()\bsk-[A-Za-z0-9_-]{8,}"),
]


def redact_text(text: str) -> str:
    for pattern in _SECRETS_IN_TEXT:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact(value: Any, name: str = "") -> Any:
    """`value` with every secret in it replaced by ``[redacted]`` (see the module's note)."""
    if name and SECRET_NAMES.search(name.lower().replace("-", "_")) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))  # an exception, a Decimal: logged as its text anyway


class RedactingFilter(logging.Filter):
    """Redacts a line's message for every handler (Chalice's own, a root handler it reaches),
    not only Powertools' JSON."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg, record.args = redact_text(record.getMessage()), ()
        return True


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON lines, redacted just before they are serialised."""

    def serialize(self, log: LogRecord) -> str:
        return super().serialize(redact(dict(log)))


logger = Logger(service="chute", logger_formatter=RedactingFormatter())
logging.getLogger(logger.name).addFilter(RedactingFilter())


@contextmanager
def log_keys(**keys: object) -> Iterator[None]:
    """Append keys to every line this thread logs inside the block."""
    logger.thread_safe_append_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(keys.keys())
