"""Amazon Bedrock's Converse API (`CHUTE_MODEL=bedrock:<model id>`) through boto3."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from chalicelib.model.base import (
    ChatRequest,
    Completion,
    bad_answer,
    rate_limited,
    rejected,
    timed_out,
    unavailable,
    unreachable,
)

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient
    from mypy_boto3_bedrock_runtime.type_defs import MessageTypeDef, SystemContentBlockTypeDef

PREFIX = "bedrock:"
PROVIDER = "bedrock"
# Bedrock's error codes that a later attempt can get past; every other one is the row's (or the
# deployment's) and trying again would fail the same way.
_THROTTLED = {"ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException"}
_TRANSIENT = {
    "ServiceUnavailableException",
    "InternalServerException",
    "ModelNotReadyException",
    "ModelTimeoutException",
    "ModelErrorException",
}


class BedrockChatClient:
    def __init__(
        self, model_id: str, client: BedrockRuntimeClient, *, timeout_s: float = 60.0
    ) -> None:
        self.model = model_id
        self.timeout_s = timeout_s
        self._client = client

    def complete(self, request: ChatRequest) -> Completion:
        system: list[SystemContentBlockTypeDef] = [
            {"text": m["content"]} for m in request.messages if m["role"] == "system"
        ]
        messages: list[MessageTypeDef] = [
            {"role": m["role"], "content": [{"text": m["content"]}]}
            for m in request.messages
            if m["role"] != "system"
        ]
        config: dict[str, Any] = {}
        if request.max_tokens is not None:
            config["maxTokens"] = request.max_tokens
        if request.temperature is not None:
            config["temperature"] = request.temperature
        kwargs: dict[str, Any] = {"modelId": self.model, "messages": messages}
        if system:
            kwargs["system"] = system
        if config:
            kwargs["inferenceConfig"] = config
        started = time.monotonic()
        try:
            answer = self._client.converse(**kwargs)
        except ClientError as exc:
            raise _failure(exc) from exc
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise timed_out(PROVIDER, self.timeout_s) from exc
        except EndpointConnectionError as exc:
            raise unreachable(PROVIDER, str(exc)) from exc
        elapsed_ms = round((time.monotonic() - started) * 1000)
        try:
            blocks = answer["output"]["message"]["content"]
            usage = answer["usage"]
        except (KeyError, TypeError) as exc:
            raise bad_answer(PROVIDER, f"no output.message.content ({exc!r})") from exc
        text = "".join(block.get("text", "") for block in blocks)
        return Completion(
            text=text,
            tokens_in=int(usage.get("inputTokens", 0)),
            tokens_out=int(usage.get("outputTokens", 0)),
            latency_ms=int(answer.get("metrics", {}).get("latencyMs", elapsed_ms)),
            model=self.model,
        )

    def close(self) -> None:
        self._client.close()


def _failure(exc: ClientError) -> Exception:
    error = exc.response.get("Error", {})
    code = error.get("Code", "Unknown")
    message = error.get("Message", "") or code
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", code)
    if code in _THROTTLED:
        return rate_limited(PROVIDER, message, None)
    if code in _TRANSIENT or (isinstance(status, int) and status >= 500):
        return unavailable(PROVIDER, code, message, None)
    return rejected(PROVIDER, code, message)
