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


def test_functions_sharing_a_process_keep_their_own_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The local stack runs the API and the worker in one process: asking in turn must not
    # rebuild (and re-create the AWS clients of) the other's services every time.
    monkeypatch.setenv("CHUTE_BUCKET", "b")
    monkeypatch.setenv("CHUTE_WORK_QUEUE_URL", "http://q/work")
    monkeypatch.setenv("CHUTE_WORK_HIGH_QUEUE_URL", "http://q/high")
    monkeypatch.setenv("CHUTE_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t")
    set_services(None)
    try:
        api = get_services(ApiSettings)
        work = get_services(WorkSettings)
        assert (get_services(ApiSettings), get_services(WorkSettings)) == (api, work)
        assert (type(api.settings), type(work.settings)) == (ApiSettings, WorkSettings)
    finally:
        set_services(None)
