"""Settings read the CHUTE_ environment when made, as pydantic-settings did (chute no longer
imports it at a cold start)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from chalicelib.config import ApiSettings, WorkSettings


def test_a_field_not_given_comes_from_its_variable_in_any_case_and_is_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHUTE_BUCKET", "from-env")
    monkeypatch.setenv("chute_max_files", "7")
    monkeypatch.setenv("CHUTE_TOKEN_KEY", "k")

    settings = ApiSettings()

    assert (settings.bucket, settings.max_files) == ("from-env", 7)
    assert settings.token_key is not None
    assert settings.token_key.get_secret_value() == "k"


def test_a_given_field_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUTE_BUCKET", "from-env")

    assert ApiSettings(bucket="given").bucket == "given"


def test_a_bad_or_missing_value_fails_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUTE_BUCKET", "b")
    monkeypatch.setenv("CHUTE_MAX_FILES", "0")
    with pytest.raises(ValidationError, match="max_files"):
        ApiSettings()
    with pytest.raises(ValidationError, match="topic_arn"):
        WorkSettings(work_queue_url="q", work_high_queue_url="h")


def test_variables_of_other_functions_and_other_programs_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHUTE_BUCKET", "b")
    monkeypatch.setenv("CHUTE_WORK_QUEUE_URL", "q")

    assert "work_queue_url" not in ApiSettings().model_dump()


def test_importing_the_settings_does_not_import_pydantic_settings() -> None:
    code = "import sys, chalicelib.config; print('pydantic_settings' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "False"
