"""The `make bench` table reads the benches' JSON lines back and judges them against the goals."""

from __future__ import annotations

import io
import json

import pytest

from bench import table


def render(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *lines: object
) -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(json.dumps(x) for x in lines)))
    table.main()
    return capsys.readouterr().out


def test_goals_met_and_missed_are_marked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = {
        "bench": "pipeline_requests",
        "units": 300,
        "per_unit": {"dynamodb": {"all": 2.18}, "sqs": {"all": 0.1}},
        "event_source_sqs_per_unit_without_empty_polls": 0.6,
        "fanout": {"s3_get_requests": 1, "s3_bytes_read": 65558},
    }

    out = render(monkeypatch, capsys, pipeline)

    dynamodb, sqs, fanout = out.splitlines()[1:]
    assert dynamodb.rstrip().endswith("yes")
    assert sqs.rstrip().endswith("NO")
    assert "65,558 B" in fanout


def test_an_unknown_bench_line_lists_its_numbers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = render(monkeypatch, capsys, {"items": 10000, "transact_ms_after": 6.4, "note": "x"})

    assert "transact_ms_after" in out
    assert "note" not in out
