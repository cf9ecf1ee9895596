"""Every bench runs in its small mode and prints its one JSON line with the fields a reader needs.

The chute benches are called in this process through their `main(argv)`; the moto_* benches
install and uninstall moto patches process-wide, so they run as their own processes.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import capacity, cold_start, fanout_large_zip, pipeline_requests, status_read_cost
from chalicelib.log import logger
from chute_cli.samples import make_documents_zip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _chute_log_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benches point chute's log handlers at this test's captured stderr, and a first import
    of app adds Chalice's handler on this test's stdout: put the handlers back afterwards, so
    later tests do not write to closed capture streams. (Not setStream: it flushes the stream
    it replaces, closed by then.)"""
    chute_log = logging.getLogger(logger.name)
    monkeypatch.setattr(chute_log, "handlers", list(chute_log.handlers))
    for handler in chute_log.handlers:
        if isinstance(handler, logging.StreamHandler):
            monkeypatch.setattr(handler, "stream", handler.stream)


def one_json_line(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    assert len(lines) == 1, f"expected one line on stdout, got {len(lines)}: {text[:500]}"
    result: dict[str, Any] = json.loads(lines[0])
    return result


def test_capacity_reports_units_per_unit_and_per_status_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    capacity.main(["--quick"])
    result = one_json_line(capsys.readouterr().out)
    assert result["units"] == 12
    assert result["status"] == "completed"
    assert result["per_unit"]["all"]["wcu"] > 0
    assert result["status_read"]["rcu"] > 0
    assert "final item sizes" in result["wcu_estimated_from"]


def test_status_read_cost_compares_chute_with_the_naive_query(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status_read_cost.main(["--quick"])
    result = one_json_line(capsys.readouterr().out)
    assert [r["units"] for r in result["by_units"]] == [10, 100]
    for row in result["by_units"]:
        assert row["naive_counts_match_chute"]
        assert row["chute"]["dynamodb_requests"] >= 1
        assert row["naive"]["read_units"] >= row["chute"]["read_units"]
    assert result["chute_identical_across_units"]
    assert result["read_unit_ratio_naive_over_chute"]["ratio"] > 1


def test_fanout_large_zip_measures_the_handler_in_its_own_process(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Smaller than --quick: the archive is generated afresh for every test run.
    fanout_large_zip.main(["--size-mb", "2", "--files", "10", "--cache-dir", str(tmp_path)])
    result = one_json_line(capsys.readouterr().out)
    assert result["units"] == 10
    fanout = result["fanout"]
    assert fanout["batch_item_failures"] == 0
    assert fanout["s3_get_requests"] >= 1
    assert 0 < fanout["s3_bytes_read"] < result["zip_bytes"]
    assert 0 < fanout["rss_baseline_mb"] <= fanout["rss_peak_mb"]
    assert set(result["goals"]) == {"s3_bytes_read_lt_1mb", "s3_gets_le_2", "rss_peak_lt_128mb"}


def test_cold_start_times_the_imports(capsys: pytest.CaptureFixture[str]) -> None:
    cold_start.main(["--quick", "--no-package"])
    result = one_json_line(capsys.readouterr().out)
    imports = result["imports"]
    assert imports["import_boto3_s"] > 0
    assert imports["import_app_s"] > 0
    assert imports["ratio_app_over_boto3"] > 0
    assert imports["app_importtime_self_us_by_package"]
    assert result["package"] is None


def test_cold_start_estimates_the_package_from_the_installed_requirements() -> None:
    estimate = cold_start.estimate_package()
    names = [name for name, _size in estimate["top_entries_compressed_bytes"]]
    assert "chalicelib" in names
    assert "pydantic_core" in names
    assert "boto3" not in names
    assert estimate["deployment_zip_bytes"] > 0


def test_pipeline_requests_counts_requests_per_unit(tmp_path: Path) -> None:
    # run() rather than main(): the script leaves chute's log lines on its stdout.
    sample = make_documents_zip(tmp_path / "bench.zip", files=6, size_mb=0.2, corrupt=0)
    result = pipeline_requests.run(sample.path, sample.bytes)
    json.dumps(result)
    assert result["units"] == 6
    assert result["status"] == "completed"
    assert result["fanout"]["s3_get_requests"] >= 1
    assert result["per_unit"]["dynamodb"]["all"] > 0


@pytest.mark.parametrize(
    ("module", "args", "fields"),
    [
        ("moto_ddb_transact", ["--items", "50", "--repeat", "1"], ["transact_ms_after"]),
        ("moto_sqs_receive", ["--queued", "50", "--repeat", "1"], ["receive_ms_after"]),
        ("moto_server_request", ["--requests", "5"], ["request_ms_after"]),
        ("hot_items", ["--units", "20"], ["busiest_item_wcu_per_s", "unsharded_meta_wcu_per_s"]),
        ("throughput", ["--sizes", "5", "10"], ["time_per_unit_ratio_largest_to_smallest"]),
    ],
)
def test_benches_run_as_processes_with_small_parameters(
    module: str, args: list[str], fields: list[str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = one_json_line(done.stdout)
    for name in fields:
        assert result[name] >= 0
