"""The dev model server: an OpenAI-compatible chat-completions endpoint on 127.0.0.1 that the
embedded stack starts beside moto, as a stand-in for a real model (DESIGN §5).

It answers deterministically — the same messages always get the same answer — after a set
latency, and fails on purpose when asked to, so that a prompts batch can be run, timed and broken
on one machine with the same client code that talks to Ollama, vLLM or OpenAI:

- `POST /v1/chat/completions` (`model`, `messages`, optional `temperature`, `max_tokens`):
  with the enhancer's system prompt (it asks for `enhanced_prompt`) the answer is that JSON
  object; otherwise a short text. `usage` counts ceil(words × 4/3) tokens per side; an answer
  longer than `max_tokens` is cut (finish_reason `length`).
- `GET /v1/models`, `GET /health`.
- Failures: `failure_rate` of requests answer 500 and `rate_limit_rate` answer 429 with
  `Retry-After: 1` (seeded, so a run repeats); a user message containing `chute:fail=<status>`
  always answers that status, and `chute:flaky=<n>` answers 503 to the first n requests with the
  same messages, then succeeds. A malformed body, `max_tokens` < 1 or an unknown model answer 4xx
  with OpenAI's error shape; with `api_key` set, a request without it answers 401.

Settings from the environment (`from_env`): CHUTE_DEV_MODEL_LATENCY_MS (200),
CHUTE_DEV_MODEL_FAILURE_RATE (0), CHUTE_DEV_MODEL_RATE_LIMIT_RATE (0), CHUTE_DEV_MODEL_SEED (0),
CHUTE_DEV_MODEL_API_KEY (none).
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import random
import re
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "chute-dev"
MAX_BODY_BYTES = 4 * 1024 * 1024
TIMELINE_CALLS = 100_000  # the calls kept for stats()["timeline"]
_FAIL = re.compile(r"chute:fail=(\d{3})")
_FLAKY = re.compile(r"chute:flaky=(\d+)")
TECHNIQUES = (
    "role prompting",
    "few-shot examples",
    "chain of thought",
    "explicit constraints",
    "output format specification",
    "audience and tone framing",
)
ADDITIONS = (
    "Name the intended audience and the tone to use.",
    "State the length and the format the answer should take.",
    "Give one example of the result you expect.",
    "List the constraints the answer must respect.",
    "Explain the reasoning step by step before the final answer.",
)


class DevModelServer:
    def __init__(
        self,
        port: int = 0,
        *,
        latency_ms: int = 200,
        failure_rate: float = 0.0,
        rate_limit_rate: float = 0.0,
        seed: int = 0,
        api_key: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        if latency_ms < 0:
            raise ValueError("latency_ms must be 0 or more")
        for name, rate in (("failure_rate", failure_rate), ("rate_limit_rate", rate_limit_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        self.host, self.port = host, port
        self.latency_s = latency_ms / 1000
        self.failure_rate, self.rate_limit_rate = failure_rate, rate_limit_rate
        self.api_key = api_key
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._requests = 0
        self._by_status: collections.Counter[int] = collections.Counter()
        self._in_flight = self._max_in_flight = 0
        self._timeline: collections.deque[tuple[float, float]] = collections.deque(
            maxlen=TIMELINE_CALLS
        )
        self._flaky_seen: collections.Counter[str] = collections.Counter()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls, port: int = 0, env: Mapping[str, str] | None = None) -> DevModelServer:
        env = os.environ if env is None else env

        def read(name: str, kind: type[int] | type[float], default: str) -> Any:
            raw = env.get(f"CHUTE_DEV_MODEL_{name}", default)
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(
                    f"CHUTE_DEV_MODEL_{name} must be a {kind.__name__}, not {raw!r}"
                ) from None

        return cls(
            port,
            latency_ms=read("LATENCY_MS", int, "200"),
            failure_rate=read("FAILURE_RATE", float, "0"),
            rate_limit_rate=read("RATE_LIMIT_RATE", float, "0"),
            seed=read("SEED", int, "0"),
            api_key=env.get("CHUTE_DEV_MODEL_API_KEY") or None,
        )

    # --- lifecycle

    def start(self) -> DevModelServer:
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _handler(self))
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="dev-model",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DevModelServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL clients take (CHUTE_MODEL_BASE_URL): …/v1."""
        return f"http://{self.host}:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        """Requests served, by HTTP status, the most at once, and each chat call's (start, end)
        on time.monotonic()."""
        with self._lock:
            return {
                "requests": self._requests,
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "timeline": list(self._timeline),
            }

    # --- answering

    def chat(
        self, body: Any, authorization: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, extra headers) for one chat-completions request."""
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        problem = _invalid(body)
        if problem is not None:
            return _error(400, problem, "invalid_request_error")
        model = body["model"]
        if not (model == MODEL or model.startswith(MODEL + ":")):
            return _error(404, f"The model `{model}` does not exist.", "model_not_found")
        user_text = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
        forced = self._forced(body["messages"], user_text)
        if forced is not None:
            return forced
        time.sleep(self.latency_s)
        with self._lock:
            roll = self._random.random()
        if roll < self.rate_limit_rate:
            return _error(
                429, "Rate limit reached; try again in 1 s.", "rate_limit_exceeded", retry=True
            )
        if roll < self.rate_limit_rate + self.failure_rate:
            return _error(500, "The dev model failed on purpose (failure rate).", "server_error")
        return 200, _completion(body, user_text), {}

    def _forced(
        self, messages: list[dict[str, str]], user_text: str
    ) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        fail = _FAIL.search(user_text)
        if fail is not None:
            status = int(fail.group(1))
            if 400 <= status <= 599:
                return _error(
                    status,
                    f"The dev model was asked to fail this prompt with {status}.",
                    "requested_failure",
                    retry=status in (429, 503),
                )
        flaky = _FLAKY.search(user_text)
        if flaky is not None:
            key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
            with self._lock:
                self._flaky_seen[key] += 1
                seen = self._flaky_seen[key]
            if seen <= int(flaky.group(1)):
                return _error(
                    503,
                    f"The dev model is flaky on purpose ({seen} of {flaky.group(1)}).",
                    "server_error",
                    retry=True,
                )
        return None

    def record(self, status: int, started: float | None) -> None:
        with self._lock:
            self._requests += 1
            self._by_status[status] += 1
            if started is not None:
                self._timeline.append((started, time.monotonic()))

    def entered(self) -> float:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        return time.monotonic()

    def left(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A batch's rows connect at once: the default backlog of 5 drops SYNs, retried after 1 s.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout) closed the socket before the answer: not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _invalid(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "`model` is required."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "`messages` must be a non-empty list."
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("system", "user", "assistant")
            or not isinstance(message.get("content"), str)
        ):
            return "Each message needs a `role` (system, user, assistant) and a text `content`."
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        return f"`max_tokens` must be a positive integer, not {max_tokens!r}."
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        return f"`temperature` must be between 0 and 2, not {temperature!r}."
    return None


def tokens(text: str) -> int:
    """About how many tokens a text is: 4/3 per word, as English runs."""
    return math.ceil(len(text.split()) * 4 / 3)


def answer_text(messages: list[dict[str, str]], user_text: str) -> str:
    digest = hashlib.sha256(user_text.encode()).digest()
    wants_json = any(m["role"] == "system" and "enhanced_prompt" in m["content"] for m in messages)
    if wants_json:
        enhanced = f"{' '.join(user_text.split())} {ADDITIONS[digest[0] % len(ADDITIONS)]}"
        return json.dumps(
            {"enhanced_prompt": enhanced, "technique": TECHNIQUES[digest[1] % len(TECHNIQUES)]},
            ensure_ascii=False,
        )
    words = user_text.split()
    if any(m["role"] == "system" and m["content"].startswith("Summarize") for m in messages):
        return f"A summary of {' '.join(words[:3])}: {' '.join(words[3:40])}"
    return f"Here is an answer to “{' '.join(words[:24])}”: {ADDITIONS[digest[0] % len(ADDITIONS)]}"


def _completion(body: dict[str, Any], user_text: str) -> dict[str, Any]:
    text = answer_text(body["messages"], user_text)
    finish = "stop"
    limit = body.get("max_tokens")
    if limit is not None and tokens(text) > limit:
        text = " ".join(text.split()[: max(1, math.floor(limit * 3 / 4))])
        finish = "length"
    prompt_tokens = sum(tokens(m["content"]) for m in body["messages"])
    completion_tokens = tokens(text)
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    return {
        "id": f"chatcmpl-{digest}",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _error(
    status: int, message: str, code: str, *, retry: bool = False
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Retry-After": "1"} if retry else {}
    kind = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return status, {"error": {"message": message, "type": kind, "code": code}}, headers


def _handler(server: DevModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as clients pool connections
        server_version = "chute-dev-model"

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._drain()
                self._send(*_error(404, f"No route {self.path}.", "not_found"))
                server.record(404, None)
                return
            started = server.entered()
            try:
                status, payload, headers = self._answer()
            finally:
                server.left()
            self._send(status, payload, headers)
            server.record(status, started)

        def do_GET(self) -> None:
            path = self.path.rstrip("/")
            if path == "/v1/models":
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": [{"id": MODEL, "object": "model", "owned_by": "chute"}],
                    },
                    {},
                )
            elif path == "/health":
                self._send(200, {"status": "ok"}, {})
            else:
                self._send(*_error(404, f"No route {self.path}.", "not_found"))

        def _answer(self) -> tuple[int, dict[str, Any], dict[str, str]]:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY_BYTES:
                self.close_connection = True
                return _error(
                    413, "The body is missing its length or is too large.", "invalid_request_error"
                )
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                return _error(400, "The body is not JSON.", "invalid_request_error")
            return server.chat(body, self.headers.get("Authorization"))

        def _drain(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            if 0 < length <= MAX_BODY_BYTES:
                self.rfile.read(length)

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 — quiet
            return None

    return Handler
