"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp server, the
dev model server) over httpx: one pooled client per process, shared by the worker's threads."""

from __future__ import annotations

import time
from typing import Any

import httpx

from chalicelib.model.base import (
    ChatRequest,
    Completion,
    bad_answer,
    rate_limited,
    rejected,
    retry_after_s,
    timed_out,
    unavailable,
    unreachable,
)

# A provider's error body as OpenAI shapes it: {"error": {"message": …}}; others send text.
_BODY_CHARS = 2000


class OpenAIChatClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_connections: int = 8,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.model = model
        self.provider = httpx.URL(base_url).host or base_url
        self.timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            # Connecting is quick or not at all; the answer may take the whole budget.
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
        )

    def complete(self, request: ChatRequest) -> Completion:
        body: dict[str, Any] = {"model": self.model, "messages": request.messages}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        started = time.monotonic()
        try:
            response = self._http.post("chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise timed_out(self.provider, self.timeout_s) from exc
        except httpx.TransportError as exc:
            raise unreachable(self.provider, str(exc) or type(exc).__name__) from exc
        latency_ms = round((time.monotonic() - started) * 1000)
        if response.status_code >= 400:
            raise self._failure(response)
        return self._completion(response, latency_ms)

    def _failure(self, response: httpx.Response) -> Exception:
        status = response.status_code
        message = _error_message(response)
        wait_s = retry_after_s(response.headers.get("retry-after"))
        if status == 429:
            return rate_limited(self.provider, message, wait_s)
        if status >= 500 or status == 408:
            return unavailable(self.provider, status, message, wait_s)
        return rejected(self.provider, status, message)

    def _completion(self, response: httpx.Response, latency_ms: int) -> Completion:
        try:
            payload = response.json()
            choice = payload["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise bad_answer(self.provider, f"no choices[0].message.content ({exc!r})") from exc
        if text is None:
            # A refusal or a tool call instead of text: nothing to keep, but not the row's fault.
            text = ""
        if not isinstance(text, str):
            raise bad_answer(self.provider, "choices[0].message.content is not text")
        usage = payload.get("usage") if isinstance(payload, dict) else None
        usage = usage if isinstance(usage, dict) else {}
        model = payload.get("model")
        return Completion(
            text=text,
            tokens_in=_count(usage.get("prompt_tokens")),
            tokens_out=_count(usage.get("completion_tokens")),
            latency_ms=latency_ms,
            model=model if isinstance(model, str) and model else self.model,
        )

    def close(self) -> None:
        self._http.close()


def _count(value: object) -> int:
    """A token count as servers send it; one that sends none (or nonsense) spent 0 as far as we
    can tell."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _error_message(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(payload.get("message"), str):
            return str(payload["message"])
    text = response.text[:_BODY_CHARS].strip()
    return text or response.reason_phrase or f"HTTP {response.status_code}"
