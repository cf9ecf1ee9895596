"""What every model client takes and gives back, and how a provider's failure becomes a unit's.

A unit's fate follows the failure's kind: throttling (429), an overloaded or failing provider
(5xx), a timeout or a connection that never opened are `RetryableError`s — the worker tries the
row again later, after the provider's Retry-After when it gave one — and any other refusal
(400 bad request, 401/403 key, 404 model) is a `PermanentError` carrying the provider's message.
"""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol, TypedDict

from chalicelib.errors import PermanentError, RetryableError

# How much of a provider's error message reaches the unit (and the person).
MESSAGE_CHARS = 300


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class ChatRequest:
    messages: list[Message]
    temperature: float | None = None
    max_tokens: int | None = None
    # The caller asked for a JSON object in its prompt (a hint only: never sent as a
    # response_format, which not every OpenAI-compatible server accepts).
    response_json: bool = False


@dataclass(frozen=True)
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    latency_ms: int
    model: str


class ModelClient(Protocol):
    """One chat model endpoint. Safe to call from several threads at once."""

    model: str

    def complete(self, request: ChatRequest) -> Completion: ...

    def close(self) -> None: ...


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for: delta-seconds or an HTTP date (RFC 9110 §10.2.3);
    None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _short(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 1] + "…"


def rate_limited(provider: str, message: str, wait_s: float | None) -> RetryableError:
    details: dict[str, object] = {"provider_message": _short(message)}
    if wait_s is not None:
        details["retry_after_s"] = wait_s
    return RetryableError(
        f"The model endpoint ({provider}) is rate limiting requests; the row will be tried again.",
        code="model_rate_limited",
        details=details,
    )


def unavailable(
    provider: str, status: int | str, message: str, wait_s: float | None
) -> RetryableError:
    details: dict[str, object] = {"status": status, "provider_message": _short(message)}
    if wait_s is not None:
        details["retry_after_s"] = wait_s
    return RetryableError(
        f"The model endpoint ({provider}) failed with {status}: {_short(message)}",
        code="model_unavailable",
        details=details,
    )


def timed_out(provider: str, timeout_s: float) -> RetryableError:
    return RetryableError(
        f"The model endpoint ({provider}) did not answer within {timeout_s:g} s.",
        code="model_timeout",
        details={"timeout_s": timeout_s},
    )


def unreachable(provider: str, reason: str) -> RetryableError:
    return RetryableError(
        f"The model endpoint ({provider}) could not be reached: {_short(reason)}",
        code="model_unreachable",
        details={"reason": _short(reason)},
    )


def rejected(provider: str, status: int | str, message: str) -> PermanentError:
    return PermanentError(
        f"The model endpoint ({provider}) refused this row ({status}): {_short(message)}",
        code="model_rejected",
        details={"status": status, "provider_message": _short(message)},
    )


def bad_answer(provider: str, reason: str) -> RetryableError:
    """A 2xx whose body is not a chat completion (a proxy's HTML page, a cut-off body)."""
    return RetryableError(
        f"The model endpoint ({provider}) sent an answer chute cannot read: {_short(reason)}",
        code="model_bad_answer",
        details={"reason": _short(reason)},
    )
