"""The time budget is defined once: the deployed timeouts and queue settings follow it."""

from __future__ import annotations

import json
from pathlib import Path

from chalicelib.budget import (
    SWEEPER_TIMEOUT_S,
    UPLOAD_TIMEOUT_S,
    UPLOADS_VISIBILITY_S,
    WORK_VISIBILITY_S,
    WORKER_TIMEOUT_S,
)
from chalicelib.jobs import BUILT_IN
from chalicelib.unitrun import LEASE_S
from infra.resources import LOCAL

CONFIG = json.loads((Path(__file__).parents[2] / ".chalice" / "config.json").read_text())


def test_the_chalice_config_deploys_the_budgets_timeouts() -> None:
    functions = CONFIG["lambda_functions"]  # every stage's

    assert functions["worker"]["lambda_timeout"] == WORKER_TIMEOUT_S
    assert functions["on_upload"]["lambda_timeout"] == UPLOAD_TIMEOUT_S
    assert functions["sweeper"]["lambda_timeout"] == SWEEPER_TIMEOUT_S


def test_queue_visibility_is_six_times_the_consumers_timeout() -> None:
    assert LOCAL.work_queue.visibility_timeout_s == WORK_VISIBILITY_S == 6 * WORKER_TIMEOUT_S
    assert LOCAL.work_high_queue.visibility_timeout_s == WORK_VISIBILITY_S
    assert LOCAL.uploads_queue.visibility_timeout_s == UPLOADS_VISIBILITY_S == 6 * UPLOAD_TIMEOUT_S


def test_leases_and_unit_limits_fit_inside_one_invocation_and_one_visibility() -> None:
    assert LEASE_S < WORKER_TIMEOUT_S < WORK_VISIBILITY_S
    for name in BUILT_IN.names:
        assert BUILT_IN.get(name).unit_timeout_s < WORKER_TIMEOUT_S


def test_a_work_message_is_dead_lettered_only_after_every_attempt_had_its_deliveries() -> None:
    max_attempts = max(BUILT_IN.get(n).max_attempts for n in BUILT_IN.names)

    assert LOCAL.work_queue.max_receive_count is not None
    assert LOCAL.work_queue.max_receive_count >= max_attempts + 2
