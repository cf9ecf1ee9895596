"""Settings, read from the environment (prefix ``CHUTE_``) when first needed, never at import.

Each Lambda function reads only what it uses — the API no queue URLs, the worker no token key —
so each can be deployed with only its own variables and, on AWS, only its own permissions.
`Settings` is all of them at once: the embedded stack and tests run every function in one process.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

ENV_PREFIX = "CHUTE_"


class EnvSettings(BaseModel):
    """Settings whose fields not given are read from `CHUTE_<FIELD>` environment variables (any
    case) when the object is made, then validated as given ones are. What chute used of
    pydantic-settings, without importing it: that import alone cost every cold start ~0.18 s of
    CPU, more than half of all of app.py's imports beyond boto3 (bench/cold_start)."""

    # Built when first made, not at import: a function makes one or two of these classes.
    model_config = ConfigDict(extra="ignore", defer_build=True)

    def __init__(self, **values: Any) -> None:
        environ = {name.upper(): value for name, value in os.environ.items()}
        for field in type(self).model_fields:
            name = f"{ENV_PREFIX}{field.upper()}"
            if field not in values and name in environ:
                values[field] = environ[name]
        super().__init__(**values)


if TYPE_CHECKING:
    # Type-checked as what it does: pydantic's mypy plugin knows BaseSettings' fields may come
    # from the environment, so `ApiSettings()` needs no arguments.
    from pydantic_settings import BaseSettings as SettingsBase
else:
    SettingsBase = EnvSettings


class CoreSettings(SettingsBase):
    """What every function needs: where the table and the bucket are."""

    region: str = "us-east-1"
    # Set locally to the embedded moto server; unset on AWS.
    aws_endpoint_url: str | None = None
    bucket: str
    table: str = "chute"
    session_ttl_days: int = Field(default=30, ge=1)


class ApiSettings(CoreSettings):
    """The HTTP API: sessions, uploads, status."""

    # Who vouches for the caller (CHUTE_AUTH_MODE): `local`, chute's own HMAC bearer tokens
    # (`chute token NAME`), signed with `token_key`; or `cognito`, API Gateway's Cognito authorizer,
    # whose verified claims the app reads from the request context. One or the other, never both.
    auth_mode: Literal["local", "cognito"] = "local"
    token_key: SecretStr | None = None
    max_files: int = Field(default=1000, ge=1)
    max_file_bytes: int = Field(default=2 * 1024**3, ge=1)
    max_session_bytes: int = Field(default=5 * 1024**3, ge=1)
    presign_expiry_s: int = Field(default=900, ge=60, le=900)
    # Files not arrived this long after the presigned POSTs expired are failed by the sweeper
    # (an upload started just before expiry may still be on its way).
    upload_grace_s: int = Field(default=900, ge=0)
    # On AWS, the events topic: each person who wants email gets their own subscription to it
    # (chalicelib.subscriptions). Unset locally, where the outbox shows every email.
    email_topic_arn: str | None = None


class ModelSettings(CoreSettings):
    """Where prompts rows are answered: any OpenAI-compatible chat-completions endpoint, or
    Amazon Bedrock Converse when `model` is `bedrock:<model id>`."""

    model_base_url: str = "http://127.0.0.1:8011/v1"
    model: str = Field(default="chute-dev", min_length=1)
    # The endpoint's key: from the environment, or on AWS from Secrets Manager by ARN.
    model_api_key: SecretStr | None = None
    model_api_key_secret_arn: str | None = None
    model_timeout_s: float = Field(default=60.0, gt=0, le=900)
    # Rows of one SQS batch answered at once (a model call is I/O) and the connections kept.
    model_concurrency: int = Field(default=8, ge=1, le=64)


class WorkSettings(ModelSettings):
    """The fan-out and the worker: they send work and notifications."""

    work_queue_url: str
    work_high_queue_url: str
    topic_arn: str
    progress_interval_s: float = Field(default=2.0, ge=0)
    high_priority_threshold: int = Field(default=7, ge=1, le=10)
    max_units_per_file: int = Field(default=10_000, ge=1)
    # Where people open the page (links in emails); locally the stack's API URL.
    public_url: str | None = None


class SweeperSettings(WorkSettings):
    """The sweeper also reads the dead-letter queues."""

    # Dead-letter queues of the work queues: the sweeper fails the units whose messages died there.
    work_dlq_url: str | None = None
    work_high_dlq_url: str | None = None
    # The uploads queue's dead-letter queue: the sweeper finishes the files whose fan-out kept
    # failing.
    uploads_dlq_url: str | None = None
    # Print the operator's numbers as CloudWatch EMF metrics each run (chalicelib.metrics): on AWS.
    operator_metrics: bool = False


class ControlSettings(ApiSettings, WorkSettings):
    """The API's control routes (pause, resume, cancel): they send the units they put back to
    the work queues, and a cancel may end the session and publish its event."""


class AdminSettings(ControlSettings, SweeperSettings):
    """The operator's routes (`/admin/…`): every queue, to report on it and re-drive from it."""

    uploads_queue_url: str | None = None


class Settings(AdminSettings):
    """Every function's settings at once: the embedded stack and the tests."""
