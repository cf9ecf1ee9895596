"""Every bench runs in its small mode, prints its one JSON line, and its numbers hold real bounds.

Counts (requests, units, GETs, bytes of the zip read, capacity units from bench.capacity's
accounting) are deterministic and asserted exactly, derived from what the code does. Times and
memory are asserted with wide margins (a shared 2-core machine), but every bound can fail.

The chute benches are called in this process through their `main(argv)`; the moto_* benches
install and uninstall moto patches process-wide, so they run as their own processes.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench import (
    capacity,
    cold_start,
    fanout_large_zip,
    pipeline_requests,
    scale_model,
    status_read_cost,
)
from chalicelib.clock import SystemClock
from chalicelib.log import logger
from chalicelib.store.keys import (
    COUNTER_SHARDS,
    DUE_SHARDS,
    UnitRef,
    counter_sk,
    declared_file_key,
    due_shard,
    shard_of,
)
from chalicelib.zipindex import read_central_directory
from chute_cli.samples import make_documents_zip

ROOT = Path(__file__).resolve().parents[2]

# The fan-out lists a zip with one ranged GET of its tail (64 KiB + the end record); a central
# directory of a few members lies inside it, so that GET is the only one and reads exactly this.
ZIP_TAIL_BYTES: int = inspect.signature(read_central_directory).parameters["tail_bytes"].default
# A status read is one eventually consistent Query of the session's META partition: META and at
# most COUNTER_SHARDS counter shards, about 0.4 KB + 16 x 0.14 KB: one 4 KB block at half a unit.
STATUS_READ_RCU = capacity.read_units([3 * capacity.KB], consistent=False, per_item=False)
# A unit item of a tiny text member is ~470 bytes pending and ~730 completed; never under this.
MIN_UNIT_ITEM_BYTES = 400


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


def run_bench_process(module: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return one_json_line(done.stdout)


# ---- what chute asks of AWS, derived from the code -----------------------------------------
def shards_used(units: int) -> int:
    """The counter shards a one-file session of `units` units counts on (file 0)."""
    return len({shard_of(0, index) for index in range(units)})


def fan_out_requests(units: int) -> Counter[str]:
    """on_upload for a one-file zip of `units` members: central directory in the tail, plan
    inline on the declared-file item (under 32 KB), one SendMessageBatch per 10 units."""
    return Counter(
        {
            "s3.GetObject": 1,  # the tail: end record and central directory
            "dynamodb.GetItem": 2,  # the declared file and META
            "dynamodb.TransactWriteItems": 1,  # claim_file: declared file, META, the shards
            # The unit items, once: the units just written are sent without reading them back.
            "dynamodb.BatchWriteItem": math.ceil(units / 25),
            "dynamodb.Query": 1,  # complete_if_done's load_session
            # mark_file_sent; the session.started event's claim and record
            "dynamodb.UpdateItem": 3,
            "dynamodb.PutItem": 1,  # session.started in the in-app list
            "sqs.SendMessageBatch": math.ceil(units / 10),
        }
    )


def worker_requests(units: int) -> Counter[str]:
    """The workers of those units, run to completion (each unit well under progress_interval_s,
    so no progress write)."""
    shards = shards_used(units)
    return Counter(
        {
            # Claim and finish per unit; a shard's last unit first tries the finish on the
            # condition "not the last" (cancelled), then unconditionally; claim_completion.
            "dynamodb.TransactWriteItems": 2 * units + shards + 1,
            # complete_if_done after each shard's last unit; after_completion's load_session;
            # a milestone look after every other finish (under 20 units, every unit looks).
            "dynamodb.Query": shards + 1 + units - 1,
            # The session's state before each claim: read once a second per invocation, so
            # between 1 (a batch within a second) and `units` reads (see state_reads).
            "dynamodb.GetItem": units,
            # Claim and record of the 25/50/75 % milestones and of the ending.
            "dynamodb.UpdateItem": 2 * 4,
            "dynamodb.PutItem": 4,  # their in-app notification items
            "s3.GetObject": units,  # each member, one ranged GET
            "s3.PutObject": units,  # each result
            "sns.Publish": 1,
        }
    )


def dynamodb_per_unit(requests: Counter[str], units: int) -> dict[str, float]:
    """As bench.capacity reports `by_operation`: DynamoDB operations, requests per unit."""
    return {
        name.split(".", 1)[1]: round(n / units, 3)
        for name, n in requests.items()
        if name.startswith("dynamodb.")
    }


# ---- the chute benches, in this process ----------------------------------------------------
def test_capacity_counts_exact_units_per_unit_and_half_a_read_unit_per_status_read(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every timestamp with the same number of digits (odd sixteenths of a second): an item's
    # size, and so its write units near a 1 KB edge, does not depend on when the test runs.
    monkeypatch.setattr(SystemClock, "now", lambda _self: math.floor(time.time() * 8) / 8 + 1 / 16)
    capacity.main(["--quick"])
    result = one_json_line(capsys.readouterr().out)
    units, shards = 12, shards_used(12)
    assert (result["units"], result["status"]) == (units, "completed")
    assert "final item sizes" in result["wcu_estimated_from"]

    status_read = result["status_read"]
    assert status_read["by_operation"] == {
        "Query": {"requests": 1.0, "rcu": STATUS_READ_RCU, "wcu": 0.0, "wcu_index": 0.0}
    }
    assert status_read["approximations"] == {}

    fanout, workers, every = (result["per_unit"][p] for p in ("fanout", "workers", "all"))
    requests = {op: usage["requests"] for op, usage in fanout["by_operation"].items()}
    assert requests == dynamodb_per_unit(fan_out_requests(units), units)
    requests = {op: usage["requests"] for op, usage in workers["by_operation"].items()}
    expected = dynamodb_per_unit(worker_requests(units), units)
    # The session's state is read once a second per invocation, not per unit (checked below).
    expected["GetItem"] = requests["GetItem"]
    assert requests == expected
    # Every cancelled "not the last in its shard" finish is kept out of the totals, estimated
    # beside them at one unit for the unit item and one for its shard.
    assert fanout["approximations"] == {}
    assert workers["approximations"] == {
        "cancelled_transactions": shards,
        "wcu_cancelled_transactions_estimate": 2 * shards,
    }

    # Reads, one 4 KB block each: Queries of the META partition, strongly consistent for the
    # completion and eventually consistent (half a unit) for the milestone looks, and per unit
    # a GetItem of META (the session's state: a paused session parks the unit).
    by_operation = workers["by_operation"]
    looks = (units - 1) / units
    consistent = by_operation["Query"]["requests"] - looks
    assert workers["rcu"] == pytest.approx(
        consistent + looks / 2 + by_operation["GetItem"]["requests"], abs=0.002
    )
    # The state is read once a second per invocation: fewer reads than units when they are quick.
    state_reads = by_operation["GetItem"]["requests"]
    assert 0 < state_reads <= 1.0
    # Writes. Unit items (~0.8 KB), shards, META and the notification are each under 1 KB: the
    # workers write 4 units per claim and 4 per finish (unit + shard, doubled in a
    # transaction), 2 x (META + 16 shard checks) to claim completion, and for each of the
    # ending and the three milestones 1 notification item and 2 META updates.
    worker_wcu = 8 * units + 2 * (1 + COUNTER_SHARDS) + 4 * (1 + 2)
    assert workers["wcu"] == round(worker_wcu / units, 3)
    # The fan-out: the batch of units, claim_file over the declared file (7 KB: it carries the
    # inline plan), META and the new shards, doubled; mark_file_sent rewrites the declared file;
    # session.started: its in-app item and 2 META updates.
    declared_kb = 7
    fan_out_wcu = units + 2 * (declared_kb + 1 + shards) + declared_kb + 1 + 2
    assert fanout["wcu"] == round(fan_out_wcu / units, 3)
    # Together, and the reads and index writes (each unit enters and leaves the lease list;
    # each META update rewrites its GSI1 entry, the session's notifications five of them):
    # identical over repeated runs. The nearest block edge is META's: ~1,010 B at its largest
    # with these timestamps (1,026 B with time.time()'s 17 digits, its due-list key carrying
    # the shard: its two largest updates would then cost 2 units each).
    assert (every["wcu"], every["wcu_index"]) == (17.0, 5.25)
    # Each rounded to 3 decimals; the milestone looks are half a unit each.
    assert every["rcu"] == pytest.approx(1.333 + looks / 2 + state_reads, abs=0.002)


def test_status_read_cost_is_one_query_at_any_size_and_the_naive_read_grows_with_units(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status_read_cost.main(["--quick"])
    result = one_json_line(capsys.readouterr().out)
    rows = result["by_units"]
    assert [(r["units"], r["units_state"], r["status"]) for r in rows] == [
        (10, "completed", "completed"),
        (100, "pending", "processing"),
    ]
    for row in rows:
        chute, naive = row["chute"], row["naive"]
        assert row["naive_counts_match_chute"]
        assert {k: chute[k] for k in ("operations", "read_units", "read_units_stable")} == {
            "operations": {"Query": 1},
            "read_units": STATUS_READ_RCU,
            "read_units_stable": True,
        }
        assert chute["dynamodb_requests"] == 1
        # The naive side: one page (well under 1 MB) of every unit item, billed by its bytes.
        assert naive["operations"] == {"Query": 1}
        assert naive["read_units_stable"]
        assert naive["read_units"] == capacity.read_units(
            [naive["bytes_read"]], consistent=False, per_item=False
        )
        # A unit item holds its keys, name, status, source and times; under 1 KB, one write
        # unit per write.
        assert MIN_UNIT_ITEM_BYTES <= naive["bytes_per_unit"] < capacity.KB
        floor = capacity.read_units(
            [row["units"] * MIN_UNIT_ITEM_BYTES], consistent=False, per_item=False
        )
        assert naive["read_units"] >= floor
    assert result["chute_identical_across_units"]
    # At 100 units the naive read is at least 100 x 400 B = 10 blocks: 5 units vs 0.5.
    largest = rows[-1]
    ratio = result["read_unit_ratio_naive_over_chute"]
    assert ratio["units"] == 100
    assert ratio["ratio"] == round(largest["naive"]["read_units"] / STATUS_READ_RCU, 1)
    assert ratio["ratio"] >= 10
    assert ratio["goal"] == status_read_cost.GOAL_RATIO
    assert ratio["met"] == (ratio["ratio"] >= ratio["goal"])
    # Times (moto in-process): chute's one Query beats reading 100 items (~14 vs ~250 ms).
    assert largest["chute"]["median_ms"] < largest["naive"]["median_ms"]


def test_fanout_of_a_ten_member_zip_reads_only_its_tail_in_one_get_within_the_memory_goal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Smaller than --quick: the archive is generated afresh for every test run.
    fanout_large_zip.main(["--size-mb", "2", "--files", "10", "--cache-dir", str(tmp_path)])
    result = one_json_line(capsys.readouterr().out)
    # The bench stops after the fan-out: units made, none run.
    assert (result["members"], result["units"], result["session_status"]) == (
        10,
        10,
        "processing",
    )
    assert result["zip_bytes"] > ZIP_TAIL_BYTES
    fanout = result["fanout"]
    assert fanout["batch_item_failures"] == 0
    assert fanout["requests"] == dict(fan_out_requests(10))
    assert fanout["s3_get_requests"] == 1
    assert fanout["s3_bytes_read"] == ZIP_TAIL_BYTES
    # Memory: ~50 MB after the imports, ~71 MB at the peak (the handler's AWS clients).
    assert 0 < fanout["rss_baseline_mb"] < fanout["rss_peak_mb"] < fanout_large_zip.GOAL_RSS_MB
    assert fanout["rss_peak_mb"] - fanout["rss_baseline_mb"] < 40
    assert fanout["handler_s"] < 10  # ~0.35 s
    assert result["goals"] == {
        "s3_bytes_read_lt_1mb": True,
        "s3_gets_le_2": True,
        "rss_peak_lt_128mb": True,
    }


def test_cold_start_app_import_stays_within_a_few_boto3_imports_and_pdf_parsing_stays_lazy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Three runs, not --quick's two: a median that one slow interpreter start cannot move.
    cold_start.main(["--runs", "3", "--no-package"])
    result = one_json_line(capsys.readouterr().out)
    assert result["package"] is None
    imports = result["imports"]
    assert imports["runs"] == 3
    assert imports["goal_ratio"] == cold_start.GOAL_RATIO
    assert imports["met"] == (imports["ratio_app_over_boto3"] <= cold_start.GOAL_RATIO)
    # ~0.45 s vs ~0.2 s, 2.2-2.3x (the goal is 1.5x); 3.5x would be another ~0.25 s of imports.
    assert imports["import_boto3_s"] > 0
    assert 0 < imports["ratio_app_over_boto3"] < 3.5
    packages = [name for name, _us in imports["app_importtime_self_us_by_package"]]
    assert len(packages) == 8
    assert {"chalicelib", "pydantic", "botocore"} <= set(packages)
    # pypdf (~75 ms of imports, it would rank near the top) is imported by the PDF processor.
    assert "pypdf" not in packages


def test_pipeline_requests_counts_exactly_what_the_fan_out_and_the_workers_ask_of_aws(
    tmp_path: Path,
) -> None:
    # run() rather than main(): the script leaves chute's log lines on its stdout.
    sample = make_documents_zip(tmp_path / "bench.zip", files=6, size_mb=0.2, corrupt=0)
    result = pipeline_requests.run(sample.path, sample.bytes)
    json.dumps(result)
    units = 6
    assert (result["units"], result["status"]) == (units, "completed")
    assert result["fanout"]["s3_get_requests"] == 1
    assert result["fanout"]["s3_bytes_read"] == min(sample.bytes, ZIP_TAIL_BYTES)
    # POST /sessions (declared files, then META) and the closing GET /sessions/{id} besides.
    around = Counter({"dynamodb.BatchWriteItem": 1, "dynamodb.PutItem": 1, "dynamodb.Query": 1})
    expected = fan_out_requests(units) + worker_requests(units) + around
    got = dict(result["requests"])
    state_reads = units - (expected["dynamodb.GetItem"] - got["dynamodb.GetItem"])
    assert 1 <= state_reads <= units  # ~1 here: the six units run within a second
    expected["dynamodb.GetItem"] += state_reads - units
    assert got == dict(expected)
    dynamodb = sum(n for name, n in expected.items() if name.startswith("dynamodb."))
    assert result["per_unit"]["dynamodb"]["all"] == round(dynamodb / units, 3)  # 6.833
    assert result["per_unit"]["sqs"]["all"] == round(1 / units, 3)


# ---- the benches that run as their own processes -------------------------------------------
def test_moto_ddb_transact_patch_beats_moto_as_shipped_on_a_500_item_table() -> None:
    result = run_bench_process("moto_ddb_transact", "--items", "500", "--repeat", "3")
    assert result["items"] == 500
    # moto copies the whole table for rollback (~30 ms at 500 items); the patch, touched items
    # only (~5 ms, at any size).
    assert result["transact_ms_after"] < result["transact_ms_before"] / 2
    assert result["cancelled_transact_ms_after"] < result["cancelled_transact_ms_before"] / 2
    assert 0 < result["transact_ms_after"] < 100


def test_moto_sqs_receive_patch_beats_moto_as_shipped_with_50_queued() -> None:
    result = run_bench_process("moto_sqs_receive", "--queued", "50", "--repeat", "3")
    assert result["queued"] == 50
    # moto scans the queue per receive (~45 ms at 50 queued); the patch's index, ~3 ms.
    assert result["receive_ms_after"] < result["receive_ms_before"] / 2
    assert result["send_batch_ms_after"] < result["send_batch_ms_before"]  # ~2.5 vs ~14 ms
    assert 0 < result["delete_batch_ms_after"] < 100


def test_moto_server_request_round_trips_in_milliseconds_both_ways() -> None:
    result = run_bench_process("moto_server_request", "--requests", "5")
    assert result["requests"] == 5
    # ~3-8 ms per GetQueueAttributes over localhost HTTP, cached routing or not.
    assert 0 < result["request_ms_after"] < 100
    assert 0 < result["request_ms_before"] < 100


def test_hot_items_charges_each_item_and_index_partition_its_writes() -> None:
    units, files = 60, 6
    result = run_bench_process("hot_items", "--units", str(units), "--files", str(files))
    rate = float(result["units_per_s_assumed"])
    zipped, many = result["shapes"]["zip"], result["shapes"]["files"]
    assert [(s["files"], s["units"], s["status"]) for s in (zipped, many)] == [
        (1, units, "completed"),
        (files, files, "completed"),
    ]

    def per_s(wcu: float, n: int = units) -> float:
        return round(wcu / n * rate, 1)

    # A counter shard of k units: claim_file's add, a claim and a finish per unit, and
    # claim_completion's check, each in a transaction (2 WCU: the shards are under 1 KB). The
    # cancelled "not the last in its shard" finish is not billed.
    per_shard = Counter(shard_of(0, index) for index in range(units))
    assert {
        kind: wcu for kind, wcu in zipped["item_wcu_per_s_by_kind"].items() if kind[0] == "C"
    } == {counter_sk(s): per_s(2 * (2 * k + 2)) for s, k in per_shard.items()}
    assert zipped["cancelled_transactions"] == len(per_shard)
    # Each unit enters its lease shard when claimed and leaves it when finished: 2 index
    # writes of an item under 1 KB. Under one key that is 2 WCU per unit; sharded, a shard
    # takes its units' share. (Under crc32 a unit's shard is a constant of the session XOR one
    # of its key's fixed-length rest: how units fall on shards is the same for any session.)
    per_lease_shard = Counter(due_shard(UnitRef("x", 0, i).key) for i in range(units))
    lease = zipped["gsi2_lists"]["LEASE"]
    assert lease["one_key_wcu_per_s"] == per_s(2 * units) == 2 * rate
    assert lease["partitions"] == len(per_lease_shard)
    assert lease["max_wcu_per_s"] == per_s(2 * max(per_lease_shard.values()))
    assert result["unsharded_lease_list_wcu_per_s"] == 2 * rate
    # A session's own entries (META on OPEN and NOTIFY, its one file on FANOUT) are one
    # partition each; a many-file session's files spread over the FANOUT shards.
    assert [zipped["gsi2_lists"][n]["partitions"] for n in ("OPEN", "NOTIFY", "FANOUT")] == [1] * 3
    assert many["gsi2_lists"]["FANOUT"]["partitions"] == len(
        {due_shard(declared_file_key("x", f)) for f in range(files)}
    )
    # One file per unit writes META once per file: one session at the whole rate is over the
    # limit, and says how many files a second it can take.
    assert many["busiest_item"] == "META"
    assert result["session_max_units_per_s"]["files"] == round(
        result["partition_wcu_limit"]
        * rate
        / max(
            many["busiest_item_wcu_per_s"],
            many["busiest_gsi1_partition_wcu_per_s"],
            many["busiest_gsi2_partition_wcu_per_s"],
        )
    )
    spread = max(
        e["one_key_wcu_per_s"] / DUE_SHARDS
        for s in (zipped, many)
        for e in s["gsi2_lists"].values()
    )
    assert result["gsi2_shard_wcu_per_s_many_sessions"] == round(spread, 1)
    assert result["unsharded_meta_wcu_per_s"] == 6 * rate
    # A session's table partition keys hold its items together (split by DynamoDB when busy).
    for shape in (zipped, many):
        assert shape["busiest_table_partition_key"] in ("S#{sid}", "M#{sid}")
        assert shape["busiest_table_partition_key_wcu_per_s"] > shape["busiest_item_wcu_per_s"]


def test_scale_model_projects_a_day_from_what_two_small_sessions_asked_of_each_service() -> None:
    result = run_bench_process("scale_model", "--documents", "10", "--prompts", "10")
    measured = result["measured"]
    for shape in ("documents", "prompts"):
        run = measured[shape]
        assert (run["units"], run["status"]) == (10, "completed")
        # One create, the page's status reads and one export through the API; one fan-out; the
        # ten units in one SQS batch.
        assert run["invocations"] == {
            "api": 1 + scale_model.STATUS_READS_PER_SESSION + 1,
            "on_upload": 1,
            "worker": 1,
        }
        per_unit = run["per_unit"]
        assert (per_unit["sns_publishes"], per_unit["sns_emails"]) == (0.1, 0.1)
        assert per_unit["lambda_invocations"] == (22 + 1 + 1) / 10
    # An idle sweep reads every shard of its five lists and the unsharded keys (half a read unit
    # each, eventually consistent and empty) and looks at the three dead-letter queues.
    assert result["idle_sweep"]["requests"] == {
        "dynamodb.Query": 5 * (DUE_SHARDS + 1),
        "sqs.ReceiveMessage": 3,
    }
    assert result["idle_sweep"]["rru"] == 0.5 * 5 * (DUE_SHARDS + 1)

    # The day: each shape's units at its share, the sweeps, Lambda's empty polls.
    day, half = result["day"], scale_model.UNITS_PER_DAY / 2
    both = {
        k: measured["documents"]["per_unit"][k] + measured["prompts"]["per_unit"][k] for k in day
    }
    sweeps = scale_model.SWEEPS_PER_DAY
    assert day["sns_publishes"] == both["sns_publishes"] * half == 100_000
    assert day["dynamodb_rru"] == pytest.approx(
        both["dynamodb_rru"] * half + result["idle_sweep"]["rru"] * sweeps, rel=1e-5
    )
    assert day["sqs_requests"] == pytest.approx(
        both["sqs_requests"] * half + 3 * sweeps + scale_model.EMPTY_POLLS_PER_DAY, rel=1e-5
    )
    # Dollars: the day at the stated prices, per 1,000 units.
    prices = result["prices"]
    assert prices["noted"].startswith("prices as published, noted 2026-12-04")
    dynamodb = (
        day["dynamodb_wru"] * prices["dynamodb_per_1m_wru"]
        + day["dynamodb_rru"] * prices["dynamodb_per_1m_rru"]
    ) / 1e6
    assert result["dollars_per_day"]["dynamodb"] == pytest.approx(dynamodb, abs=0.01)
    total = sum(result["dollars_per_day"].values())
    assert result["dollars_per_day_total"] == pytest.approx(total, abs=0.03)
    assert result["dollars_per_1000_units_total"] == pytest.approx(total / 1000, abs=1e-4)
    # Little's law at the average rate and at the stated peak.
    average = scale_model.UNITS_PER_DAY / 86_400
    seconds = result["lambda_seconds_per_unit"]
    mean = (seconds["documents"] + seconds["prompts"]) / 2
    assert result["lambda_concurrency"]["average"] == pytest.approx(average * mean, abs=0.1)
    assert result["lambda_concurrency"]["peak"] == pytest.approx(4 * average * mean, abs=0.2)
    # A prompt's unit waits 200 ms on the model, side by side with its batch: well under a
    # second of Lambda per unit, its session's share of the API included.
    assert 0 < seconds["prompts"] < 2
    assert result["peak_wcu_per_s"]["busiest_gsi2_shard"] < result["peak_wcu_per_s"]["limit"]


def test_throughput_completes_each_session_and_notifies_within_seconds() -> None:
    result = run_bench_process("throughput", "--sizes", "5", "10")
    runs = result["runs"]
    assert [(r["units"], r["status"]) for r in runs] == [(5, "completed"), (10, "completed")]
    for run in runs:
        # The last finisher claims completion itself (~0.05-0.1 s, up to ~0.3 s under load; the
        # goal is 1 s): the sweeper, every 60 s, would be far later. The email goes through the
        # outbox (~0.1-0.4 s, up to ~1.1 s under load).
        assert 0 <= run["last_finish_to_done_s"] < 2
        assert 0 <= run["last_finish_to_email_s"] < 5
    # ~4.2 s for 10 units (2.4 units/s, 4 worker threads); ~14 s on a machine three times
    # oversubscribed. A unit waiting out a visibility timeout or the sweeper would take minutes.
    assert runs[-1]["elapsed_s"] < 40
    # 0.9-1.1x at these sizes, where a unit's fixed costs dominate.
    assert 0 < result["time_per_unit_ratio_largest_to_smallest"] < 2


def test_prompts_e2e_answers_every_row_in_order_with_calls_side_by_side() -> None:
    result = run_bench_process("prompts_e2e", "--sizes", "12", "--latency-ms", "100")
    (run,) = result["runs"]
    assert (run["prompts"], run["status"], run["results_rows"], run["results_in_order"]) == (
        12,
        "completed",
        12,
        True,
    )
    calls = run["model_in_flight"]
    assert calls["calls"] == 12
    # The rows of one SQS batch call the model at once: more than one call ran at a time.
    assert 1 < calls["max"] <= 12
    # ~2-3 s here; a row waiting for a visibility timeout would take 5 minutes.
    assert run["elapsed_s"] < 60
    assert run["tokens"]["tokens_in"] > 0


def test_export_large_exports_every_unit_and_memory_does_not_follow_their_number() -> None:
    result = run_bench_process(
        "export_large", "--units", "40", "400", "--formats", "csv", "xlsx", "zip"
    )
    small, large = result["runs"]["40"]["exports"], result["runs"]["400"]["exports"]
    assert [(e["format"], e["rows"]) for e in small] == [("csv", 40), ("xlsx", 40), ("zip", 40)]
    assert [(e["format"], e["rows"]) for e in large] == [("csv", 400), ("xlsx", 400), ("zip", 400)]
    # ~1 KB of CSV per unit (a 600-character answer and the row): the file grows, memory not.
    assert 300_000 < large[0]["bytes"] < 600_000
    assert all(e["rss_over_imports_mb"] < 64 for e in large)
    assert result["goals"] == {"400_units_exported": True, "memory_constant_in_units": True}


@pytest.mark.slow  # two stack starts; tests/integration/test_restart.py covers the behaviour
def test_restart_restores_a_session_exactly_and_starts_within_the_goal() -> None:
    result = run_bench_process("restart", "--units", "50")

    assert (result["units"], result["same_summary"], result["units_listed"]) == (50, True, 5)
    assert result["snapshot_mb"] > 0
    assert result["goals"] == {"restart_lt_10s": True}
