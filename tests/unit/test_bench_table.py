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


def test_hot_keys_and_the_scale_model_are_judged_against_the_partition_limit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    zipped = {
        "busiest_item": "C08",
        "busiest_item_wcu_per_s": 260.0,
        "busiest_gsi1_partition_wcu_per_s": 13.0,
        "busiest_gsi2_partition": "LEASE#15",
        "busiest_gsi2_partition_wcu_per_s": 1028.0,
    }
    hot = {
        "bench": "hot_items",
        "units_per_s_assumed": 1000.0,
        "partition_wcu_limit": 1000,
        "gsi2_shard_wcu_per_s_many_sessions": 125.0,
        "unsharded_lease_list_wcu_per_s": 2000.0,
        "unsharded_meta_wcu_per_s": 6000.0,
        "session_max_units_per_s": {"zip": 973, "files": 469},
        "shapes": {"zip": zipped, "files": {"busiest_item_wcu_per_unit": 2.13}},
    }
    model = {
        "bench": "scale_model",
        "units_per_day": 1_000_000,
        "dollars_per_1000_units": {"lambda": 1, "dynamodb": 2, "s3": 3, "sqs": 4, "sns": 5},
        "dollars_per_1000_units_total": 0.0245,
        "lambda_concurrency": {"average": 3.2, "peak": 12.9},
        "assumptions": {"peak_to_average": 4.0},
        "peak_wcu_per_s": {
            "busiest_item": 14.8,
            "busiest_gsi1_partition": 6.9,
            "busiest_gsi2_shard": 9.1,
            "limit": 1000,
        },
    }

    out = render(monkeypatch, capsys, hot, model).splitlines()[1:]

    assert [line.rstrip().rsplit(" ", 1)[-1] for line in out] == ["yes", "NO", "-", "-", "-", "yes"]
    assert "LEASE#15 1028.0 WCU/s" in out[1]
    assert "469 (META takes 2.13 WCU per file)" in out[2]
    assert "$0.0245" in out[3]
