"""The model clients: the OpenAI-compatible one against the real dev model server over HTTP,
Bedrock Converse through botocore's Stubber, and how each provider failure becomes a unit's."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from pydantic import SecretStr

from chalicelib.config import ModelSettings
from chalicelib.errors import PermanentError, RetryableError
from chalicelib.model import ChatRequest, Completion, build_model_client
from chalicelib.model.base import retry_after_s
from chalicelib.model.bedrock import BedrockChatClient
from chalicelib.model.openai import OpenAIChatClient
from chalicelib.processors.prompts import ENHANCER, read_answer
from infra.model_server import DevModelServer, answer_text, tokens

USER = "Write a haiku about S3 buckets"


def ask(text: str = USER, **kwargs: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **kwargs)


@pytest.fixture
def server() -> Iterator[DevModelServer]:
    with DevModelServer(latency_ms=0) as running:
        yield running


@pytest.fixture
def client(server: DevModelServer) -> Iterator[OpenAIChatClient]:
    openai = OpenAIChatClient(server.url, "chute-dev", timeout_s=5)
    yield openai
    openai.close()


# The OpenAI-compatible client, against the dev model server


def test_a_completion_carries_the_answer_tokens_and_model(client: OpenAIChatClient) -> None:
    done = client.complete(ask())

    expected = answer_text([{"role": "user", "content": USER}], USER)
    assert (done.text, done.tokens_in, done.tokens_out, done.model) == (
        expected,
        tokens(USER),
        tokens(expected),
        "chute-dev",
    )
    assert done.latency_ms >= 0


def test_the_enhancer_prompt_gets_json_that_read_answer_takes_apart(
    client: OpenAIChatClient,
) -> None:
    request = ChatRequest(
        messages=[{"role": "system", "content": ENHANCER}, {"role": "user", "content": USER}],
        response_json=True,
    )
    fields = read_answer(client.complete(request), structured=True)

    assert str(fields["enhanced_prompt"]).startswith(USER + " ")
    assert fields["technique"] in {
        "role prompting",
        "few-shot examples",
        "chain of thought",
        "explicit constraints",
        "output format specification",
        "audience and tone framing",
    }


def test_the_same_messages_always_get_the_same_answer(client: OpenAIChatClient) -> None:
    assert client.complete(ask()).text == client.complete(ask()).text


def test_max_tokens_cuts_the_answer(client: OpenAIChatClient) -> None:
    done = client.complete(ask(max_tokens=4, temperature=0.2))

    assert done.tokens_out == 4  # three words, ceil(3 x 4/3)
    assert len(done.text.split()) == 3


def test_a_refused_request_is_permanent_with_the_providers_message(
    client: OpenAIChatClient,
) -> None:
    with pytest.raises(PermanentError) as refused:
        client.complete(ask("chute:fail=400"))

    assert refused.value.code == "model_rejected"
    assert refused.value.details == {
        "status": 400,
        "provider_message": "The dev model was asked to fail this prompt with 400.",
    }


def test_an_invalid_parameter_is_refused_by_the_server_not_retried(
    client: OpenAIChatClient,
) -> None:
    with pytest.raises(PermanentError) as refused:
        client.complete(ask(max_tokens=0))

    assert refused.value.details["provider_message"] == (
        "`max_tokens` must be a positive integer, not 0."
    )


def test_an_unknown_model_is_permanent(server: DevModelServer) -> None:
    with pytest.raises(PermanentError) as refused:
        OpenAIChatClient(server.url, "gpt-nothing").complete(ask())

    assert refused.value.details == {
        "status": 404,
        "provider_message": "The model `gpt-nothing` does not exist.",
    }


def test_throttling_is_retryable_and_says_how_long_to_wait(client: OpenAIChatClient) -> None:
    with pytest.raises(RetryableError) as limited:
        client.complete(ask("chute:fail=429"))

    assert limited.value.code == "model_rate_limited"
    assert limited.value.details["retry_after_s"] == 1.0


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_failures_are_retryable(client: OpenAIChatClient, status: int) -> None:
    with pytest.raises(RetryableError) as failed:
        client.complete(ask(f"chute:fail={status}"))

    assert (failed.value.code, failed.value.details["status"]) == ("model_unavailable", status)


def test_a_flaky_prompt_fails_as_often_as_asked_then_answers(client: OpenAIChatClient) -> None:
    request = ask("chute:flaky=2 please")
    for _ in range(2):
        with pytest.raises(RetryableError):
            client.complete(request)

    assert client.complete(request).tokens_out > 0


def test_a_slow_endpoint_is_a_retryable_timeout() -> None:
    with DevModelServer(latency_ms=1000) as slow:
        client = OpenAIChatClient(slow.url, "chute-dev", timeout_s=0.2)
        with pytest.raises(RetryableError) as late:
            client.complete(ask())

    assert (late.value.code, late.value.details) == ("model_timeout", {"timeout_s": 0.2})


def test_an_endpoint_nobody_listens_on_is_retryable() -> None:
    with DevModelServer() as gone:
        url = gone.url
    with pytest.raises(RetryableError) as unreachable:
        OpenAIChatClient(url, "chute-dev", timeout_s=2).complete(ask())

    assert unreachable.value.code == "model_unreachable"


def test_the_api_key_is_sent_and_a_wrong_one_is_permanent() -> None:
    with DevModelServer(latency_ms=0, api_key="sk-right") as keyed:
        assert OpenAIChatClient(keyed.url, "chute-dev", api_key="sk-right").complete(ask())
        with pytest.raises(PermanentError) as wrong:
            OpenAIChatClient(keyed.url, "chute-dev", api_key="sk-wrong").complete(ask())

    assert wrong.value.details == {"status": 401, "provider_message": "Incorrect API key provided."}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>Bad gateway</html>", "no choices[0].message.content"),
        (b'{"choices": []}', "no choices[0].message.content"),
        (b'{"choices": [{"message": {"content": 7}}]}', "is not text"),
    ],
)
def test_a_2xx_that_is_not_a_completion_is_a_retryable_bad_answer(body: bytes, reason: str) -> None:
    transport = httpx.MockTransport(lambda _request: httpx.Response(200, content=body))
    client = OpenAIChatClient("https://proxy.example/v1", "m", transport=transport)

    with pytest.raises(RetryableError) as bad:
        client.complete(ask())

    assert bad.value.code == "model_bad_answer"
    assert reason in bad.value.message


def test_a_server_without_usage_counts_zero_tokens() -> None:
    answer = {"choices": [{"message": {"content": "hi"}}]}
    transport = httpx.MockTransport(lambda _request: httpx.Response(200, json=answer))
    done = OpenAIChatClient("https://x.example/v1", "m", transport=transport).complete(ask())

    assert (done.text, done.tokens_in, done.tokens_out, done.model) == ("hi", 0, 0, "m")


def test_a_plain_text_error_body_is_the_message() -> None:
    transport = httpx.MockTransport(lambda _r: httpx.Response(403, text="  Forbidden by policy "))
    with pytest.raises(PermanentError) as refused:
        OpenAIChatClient("https://x.example/v1", "m", transport=transport).complete(ask())

    assert refused.value.details == {"status": 403, "provider_message": "Forbidden by policy"}


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),
        ("Thu, 03 Dec 2026 12:00:30 GMT", 30.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    header: str | None, seconds: float | None
) -> None:
    now = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s(header, now) == seconds


# The dev model server itself


def test_calls_really_run_side_by_side() -> None:
    with DevModelServer(latency_ms=300) as slow:
        client = OpenAIChatClient(slow.url, "chute-dev", max_connections=8)
        start = threading.Barrier(8)

        def call(i: int) -> None:
            start.wait()
            client.complete(ask(f"prompt {i}"))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = slow.stats()

    assert (stats["requests"], stats["by_status"], stats["max_in_flight"]) == (8, {"200": 8}, 8)
    assert len(stats["timeline"]) == 8


def test_failure_rates_are_seeded_and_repeat() -> None:
    def statuses() -> list[str]:
        with DevModelServer(latency_ms=0, failure_rate=0.3, rate_limit_rate=0.2, seed=7) as s:
            client = OpenAIChatClient(s.url, "chute-dev")
            seen = []
            for i in range(20):
                try:
                    client.complete(ask(f"p{i}"))
                    seen.append("ok")
                except RetryableError as exc:
                    seen.append(exc.code)
        return seen

    first = statuses()
    assert first == statuses()
    assert set(first) == {"ok", "model_unavailable", "model_rate_limited"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHUTE_DEV_MODEL_LATENCY_MS": "fast"}, "CHUTE_DEV_MODEL_LATENCY_MS must be a int"),
        ({"CHUTE_DEV_MODEL_FAILURE_RATE": "2"}, "failure_rate must be between 0 and 1"),
    ],
)
def test_bad_dev_model_settings_say_which_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DevModelServer.from_env(env=env)


def test_dev_model_settings_come_from_the_environment() -> None:
    server = DevModelServer.from_env(
        7, env={"CHUTE_DEV_MODEL_LATENCY_MS": "50", "CHUTE_DEV_MODEL_API_KEY": "k"}
    )
    assert (server.port, server.latency_s, server.api_key) == (7, 0.05, "k")


def test_the_server_lists_its_model_and_refuses_bad_bodies(server: DevModelServer) -> None:
    assert httpx.get(server.url + "/models").json()["data"][0]["id"] == "chute-dev"
    bad = httpx.post(server.url + "/chat/completions", content=b"not json")
    assert (bad.status_code, bad.json()["error"]["message"]) == (400, "The body is not JSON.")
    empty = httpx.post(server.url + "/chat/completions", json={"model": "chute-dev"})
    assert empty.json()["error"]["message"] == "`messages` must be a non-empty list."


# Bedrock Converse, through botocore's Stubber


@pytest.fixture
def bedrock() -> Iterator[tuple[BedrockChatClient, Stubber]]:
    runtime = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(runtime) as stub:
        yield BedrockChatClient("anthropic.claude-3-haiku", runtime), stub


def test_bedrock_converse_sends_system_apart_and_reads_usage(
    bedrock: tuple[BedrockChatClient, Stubber],
) -> None:
    client, stub = bedrock
    stub.add_response(
        "converse",
        {
            "output": {"message": {"role": "assistant", "content": [{"text": '{"a": 1}'}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17},
            "metrics": {"latencyMs": 321},
        },
        expected_params={
            "modelId": "anthropic.claude-3-haiku",
            "system": [{"text": "be brief"}],
            "messages": [{"role": "user", "content": [{"text": USER}]}],
            "inferenceConfig": {"maxTokens": 50, "temperature": 0.5},
        },
    )
    request = ChatRequest(
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": USER}],
        max_tokens=50,
        temperature=0.5,
    )

    assert client.complete(request) == Completion(
        text='{"a": 1}',
        tokens_in=12,
        tokens_out=5,
        latency_ms=321,
        model="anthropic.claude-3-haiku",
    )
    stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "kind", "ours"),
    [
        ("ThrottlingException", 429, RetryableError, "model_rate_limited"),
        ("ServiceUnavailableException", 503, RetryableError, "model_unavailable"),
        ("ModelTimeoutException", 408, RetryableError, "model_unavailable"),
        ("ValidationException", 400, PermanentError, "model_rejected"),
        ("AccessDeniedException", 403, PermanentError, "model_rejected"),
    ],
)
def test_bedrock_errors_become_the_units(
    bedrock: tuple[BedrockChatClient, Stubber],
    code: str,
    status: int,
    kind: type[Exception],
    ours: str,
) -> None:
    client, stub = bedrock
    stub.add_client_error("converse", code, "provider says no", http_status_code=status)

    with pytest.raises(kind) as failed:
        client.complete(ask())

    assert getattr(failed.value, "code", None) == ours
    assert getattr(failed.value, "details", {})["provider_message"] == "provider says no"


# Choosing and building the client


def aws(service: str, config: Any) -> Any:
    return boto3.client(service, region_name="us-east-1", config=config)  # type: ignore[call-overload]


def test_bedrock_is_chosen_by_the_model_prefix() -> None:
    settings = ModelSettings(bucket="b", model="bedrock:amazon.nova-lite-v1:0")
    client = build_model_client(settings, aws)

    assert isinstance(client, BedrockChatClient)
    assert client.model == "amazon.nova-lite-v1:0"


def test_the_openai_client_takes_its_key_from_the_environment(server: DevModelServer) -> None:
    keyed = DevModelServer(latency_ms=0, api_key="sk-env").start()
    try:
        settings = ModelSettings(
            bucket="b", model_base_url=keyed.url, model_api_key=SecretStr("sk-env")
        )
        assert build_model_client(settings, aws).complete(ask()).model == "chute-dev"
    finally:
        keyed.stop()


def test_on_aws_the_key_comes_from_secrets_manager() -> None:
    with mock_aws(), DevModelServer(latency_ms=0, api_key="sk-secret") as keyed:
        arn = aws("secretsmanager", None).create_secret(
            Name="chute/model", SecretString="sk-secret"
        )["ARN"]
        settings = ModelSettings(bucket="b", model_base_url=keyed.url, model_api_key_secret_arn=arn)
        assert build_model_client(settings, aws).complete(ask()).tokens_in == tokens(USER)

        missing = settings.model_copy(update={"model_api_key_secret_arn": arn + "-gone"})
        with pytest.raises(PermanentError) as unreadable:
            build_model_client(missing, aws)
    assert unreadable.value.code == "model_key_unavailable"
