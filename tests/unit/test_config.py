"""Each function reads only its own settings: what per-function IAM and deployment follow."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chalicelib.config import ApiSettings, Settings, SweeperSettings, WorkSettings
from chalicelib.services import get_services, set_services


def test_the_api_needs_no_queue_or_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUTE_BUCKET", "b")

    settings = ApiSettings()

    assert (settings.bucket, settings.table) == ("b", "chute")
    assert not hasattr(settings, "work_queue_url")


def test_the_worker_needs_its_queues_and_topic_and_never_sees_the_token_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHUTE_BUCKET", "b")
    monkeypatch.setenv("CHUTE_TOKEN_KEY", "secret")
    with pytest.raises(ValidationError, match="work_queue_url"):
        WorkSettings()
    for name, value in {
        "WORK_QUEUE_URL": "q",
        "WORK_HIGH_QUEUE_URL": "h",
        "TOPIC_ARN": "t",
    }.items():
        monkeypatch.setenv(f"CHUTE_{name}", value)

    settings = WorkSettings()

    assert settings.work_queue_url == "q"
    assert not hasattr(settings, "token_key")


def test_one_process_with_every_setting_serves_every_function() -> None:
    assert issubclass(Settings, ApiSettings)
    assert issubclass(Settings, SweeperSettings)
    assert issubclass(SweeperSettings, WorkSettings)


def test_services_are_built_for_the_function_that_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUTE_BUCKET", "b")
    set_services(None)
    try:
        api = get_services(ApiSettings)
        again = get_services(ApiSettings)
        assert api is again
        assert type(api.settings) is ApiSettings
    finally:
        set_services(None)
