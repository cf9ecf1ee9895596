"""The deployment's model client, from its settings: Bedrock when `model` says `bedrock:<id>`,
else the OpenAI-compatible endpoint at `model_base_url`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from chalicelib.errors import PermanentError, RetryableError
from chalicelib.model.base import ModelClient

if TYPE_CHECKING:
    from chalicelib.config import ModelSettings

# Makes a boto3 client of the named service with the given config (Services.aws_client).
AwsClients = Callable[[str, Config], Any]


def build_model_client(settings: ModelSettings, aws: AwsClients) -> ModelClient:
    from chalicelib.model.bedrock import PREFIX

    if settings.model.startswith(PREFIX):
        from chalicelib.model.bedrock import BedrockChatClient

        # One try per call: a throttled row goes back to its queue with a delay (the worker's
        # backoff) instead of holding a thread while botocore sleeps.
        config = Config(
            retries={"max_attempts": 1, "mode": "standard"},
            read_timeout=settings.model_timeout_s,
            connect_timeout=min(10.0, settings.model_timeout_s),
            max_pool_connections=settings.model_concurrency,
        )
        return BedrockChatClient(
            settings.model.removeprefix(PREFIX),
            aws("bedrock-runtime", config),
            timeout_s=settings.model_timeout_s,
        )

    from chalicelib.model.openai import OpenAIChatClient

    return OpenAIChatClient(
        settings.model_base_url,
        settings.model,
        api_key=api_key(settings, aws),
        timeout_s=settings.model_timeout_s,
        max_connections=settings.model_concurrency,
    )


def api_key(settings: ModelSettings, aws: AwsClients) -> str | None:
    """The endpoint's key: from the environment, or (on AWS) from Secrets Manager, read once when
    the client is built."""
    if settings.model_api_key is not None:
        return settings.model_api_key.get_secret_value()
    if settings.model_api_key_secret_arn is None:
        return None
    from botocore.exceptions import ClientError

    secrets = aws("secretsmanager", Config(retries={"max_attempts": 3, "mode": "standard"}))
    try:
        secret = secrets.get_secret_value(SecretId=settings.model_api_key_secret_arn)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        if code in {"ThrottlingException", "InternalServiceError"}:
            raise RetryableError(
                f"The model endpoint's key could not be read from Secrets Manager now ({code}).",
                code="model_key_unavailable",
                details={"secret": settings.model_api_key_secret_arn, "reason": code},
            ) from exc
        raise PermanentError(
            f"The model endpoint's key could not be read from Secrets Manager ({code}).",
            code="model_key_unavailable",
            details={"secret": settings.model_api_key_secret_arn, "reason": code},
        ) from exc
    value = secret.get("SecretString")
    return str(value) if value else None
