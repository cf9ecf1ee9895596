"""Settings, read from the environment (prefix ``CHUTE_``) when first needed, never at import."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHUTE_", extra="ignore")

    region: str = "us-east-1"
    # Set locally to the embedded moto server; unset on AWS.
    aws_endpoint_url: str | None = None
    bucket: str
    table: str = "chute"
    uploads_queue_url: str
    work_queue_url: str
    work_high_queue_url: str
    topic_arn: str
    # Dead-letter queues of the work queues: the sweeper fails the units whose messages died there.
    work_dlq_url: str | None = None
    work_high_dlq_url: str | None = None
    # The uploads queue's dead-letter queue: the sweeper finishes the files whose fan-out kept
    # failing.
    uploads_dlq_url: str | None = None
    # HMAC key for local bearer tokens (`chute token NAME`); on AWS, Cognito authorizes instead.
    token_key: SecretStr | None = None

    max_files: int = Field(default=1000, ge=1)
    max_file_bytes: int = Field(default=2 * 1024**3, ge=1)
    max_session_bytes: int = Field(default=5 * 1024**3, ge=1)
    max_units_per_file: int = Field(default=10_000, ge=1)
    presign_expiry_s: int = Field(default=900, ge=60, le=900)
    # Files not arrived this long after the presigned POSTs expired are failed by the sweeper
    # (an upload started just before expiry may still be on its way).
    upload_grace_s: int = Field(default=900, ge=0)
    progress_interval_s: float = Field(default=2.0, ge=0)
    high_priority_threshold: int = Field(default=7, ge=1, le=10)
    session_ttl_days: int = Field(default=30, ge=1)
    max_member_bytes: int = Field(default=512 * 1024**2, ge=1)
