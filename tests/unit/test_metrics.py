"""The operator's numbers as EMF: what CloudWatch reads from the sweeper's stdout."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.metrics import camel, publish_after_sweep, publish_operator_metrics

STATS: dict[str, Any] = {
    "generated_at": 1000.0,
    "queues": [
        {"name": "chute-work", "visible": 7, "in_flight": 2, "delayed": 1, "oldest_age_s": None},
        {"name": "chute-work-dlq", "visible": 1, "in_flight": 0, "delayed": 0, "oldest_age_s": 9},
    ],
    "sessions": {"active": 2, "by_status": {"processing": 1, "paused": 1}, "truncated": False},
    "units": {"by_status": {"pending": 10, "running": 3, "completed": 40}},
    "throughput": {"window_s": 300, "units_finished": 25},
    "failures_by_code": {"pdf_unreadable": 4},
    "stuck": {"leases_expired": 1, "retries_overdue": 0, "fanouts_unsent": 0},
}


def emitted(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def metrics_of(blob: dict[str, Any]) -> dict[str, list[float]]:
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "chute"
    return {m["Name"]: blob[m["Name"]] for m in directive["Metrics"]}


def test_the_operators_numbers_become_metrics_with_their_dimensions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert publish_operator_metrics(STATS) == 4
    overall, work, dlq, failures = emitted(capsys)

    assert overall["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert metrics_of(overall) == {
        "SessionsActive": [2.0],
        "SessionsProcessing": [1.0],
        "SessionsPaused": [1.0],
        "UnitsPending": [10.0],
        "UnitsRunning": [3.0],
        "UnitsCompleted": [40.0],
        "UnitsFinished5m": [25.0],
        "StuckLeasesExpired": [1.0],
        "StuckRetriesOverdue": [0.0],
        "StuckFanoutsUnsent": [0.0],
    }
    assert (work["Queue"], metrics_of(work)) == (
        "chute-work",
        {"MessagesVisible": [7.0], "MessagesInFlight": [2.0], "MessagesDelayed": [1.0]},
    )
    assert dlq["Queue"] == "chute-work-dlq"
    assert work["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Queue", "service"]]
    assert (failures["Code"], metrics_of(failures)) == (
        "pdf_unreadable",
        {"UnitsFailedByCode": [4.0]},
    )


def test_metric_names_are_camel_case() -> None:
    assert camel("completed_with_errors") == "CompletedWithErrors"
    assert camel("in_flight") == "InFlight"


def test_after_the_sweep_the_metrics_are_best_effort(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import stats

    services: Any = object()  # never used: admin_stats is replaced below
    monkeypatch.setattr(stats, "admin_stats", lambda _services: STATS)
    assert publish_after_sweep(services, lambda: 60_000) is True
    assert len(emitted(capsys)) == 4
    # Too little time left: skipped, nothing printed.
    assert publish_after_sweep(services, lambda: 29_999) is False
    assert emitted(capsys) == []

    def broken(_services: Any) -> Any:
        raise RuntimeError("CloudWatch is down")

    monkeypatch.setattr(stats, "admin_stats", broken)
    assert publish_after_sweep(services, None) is False  # logged, not raised
