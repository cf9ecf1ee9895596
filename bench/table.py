"""The table `make bench` ends with: each bench's JSON line read back, the headline numbers beside
the goals of the benchmarks issue.

Run: .venv/bin/python -m bench.table < .chute/bench.jsonl
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

Row = tuple[str, str, str, str]  # measure, value, goal, met
Result = dict[str, Any]


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def status_read_cost(r: Result) -> Iterator[Row]:
    for run in r["by_units"]:
        chute, naive = run["chute"], run["naive"]
        yield (
            f"status read, {run['units']:,} units ({run['units_state']})",
            f"{chute['dynamodb_requests']} req, {chute['read_units']} RCU, "
            f"{chute['median_ms']} ms; naive {naive['read_units']} RCU, {naive['median_ms']} ms",
            "identical across N",
            _met(r["chute_identical_across_units"]),
        )
    ratio = r["read_unit_ratio_naive_over_chute"]
    yield (
        f"naive / chute read units at {ratio['units']:,}",
        f"{ratio['ratio']}x",
        f">= {ratio['goal']}x",
        _met(ratio["met"]),
    )


def pipeline_requests(r: Result) -> Iterator[Row]:
    per_unit = r["per_unit"]
    sqs = per_unit["sqs"]["all"] + r["event_source_sqs_per_unit_without_empty_polls"]
    yield (
        f"DynamoDB requests per unit ({r['units']} units)",
        str(per_unit["dynamodb"]["all"]),
        "<= 4 (+1 per 2 s of progress)",
        _met(per_unit["dynamodb"]["all"] <= 4),
    )
    yield ("SQS requests per unit (send/receive/delete)", f"{sqs:.3f}", "<= 0.5", _met(sqs <= 0.5))
    yield (
        "fan-out reads of a zip",
        f"{r['fanout']['s3_get_requests']} GET, {r['fanout']['s3_bytes_read']:,} B",
        "<= 2 GETs, < 1 MB",
        _met(r["fanout"]["s3_get_requests"] <= 2 and r["fanout"]["s3_bytes_read"] < 2**20),
    )


def fanout_large_zip(r: Result) -> Iterator[Row]:
    fanout, goals = r["fanout"], r["goals"]
    yield (
        f"fan-out of {r['zip_bytes'] / 2**20:,.0f} MiB / {r['members']} members",
        f"{fanout['s3_get_requests']} GET, {fanout['s3_bytes_read']:,} B, "
        f"peak RSS {fanout['rss_peak_mb']} MB, {fanout['handler_s']} s",
        "<= 2 GETs, < 1 MB, < 128 MB",
        _met(all(goals.values())),
    )


def cold_start(r: Result) -> Iterator[Row]:
    imports = r["imports"]
    yield (
        "import app vs import boto3",
        f"{imports['import_app_s']} s vs {imports['import_boto3_s']} s "
        f"({imports['ratio_app_over_boto3']}x)",
        f"<= {imports['goal_ratio']}x",
        _met(imports["met"]),
    )
    if r.get("package"):
        size = r["package"].get("deployment_zip_bytes")
        yield ("deploy package", f"{size / 2**20:.2f} MiB" if size else "?", "<= 10 MiB",
               _met(bool(size) and size <= 10 * 2**20))  # fmt: skip
        if package := r["package"].get("imports"):
            yield (
                "import app from the package (as on Lambda) vs import boto3",
                f"{package['import_app_s']} s vs {package['import_boto3_s']} s "
                f"({package['ratio_app_over_boto3']}x; without bytecode "
                f"{package['ratio_without_bytecode']}x)",
                f"<= {imports['goal_ratio']}x",
                _met(package["ratio_app_over_boto3"] <= imports["goal_ratio"]),
            )


def capacity(r: Result) -> Iterator[Row]:
    every = r["per_unit"]["all"]
    yield (
        "capacity units per unit",
        f"{every['wcu']} WCU + {every['wcu_index']} index WCU, {every['rcu']} RCU",
        "-",
        "-",
    )
    yield ("status read", f"{r['status_read']['rcu']} RCU", "O(1)", "-")


def throughput(r: Result) -> Iterator[Row]:
    for run in r["runs"]:
        yield (
            f"end to end, {run['units']:,} units",
            f"{run['units_per_s']} units/s; last finish -> done {run['last_finish_to_done_s']} s,"
            f" -> email {run['last_finish_to_email_s']} s",
            "<= 1 s each",
            _met(max(run["last_finish_to_done_s"], run["last_finish_to_email_s"]) <= 1),
        )
    ratio = r["time_per_unit_ratio_largest_to_smallest"]
    yield ("time per unit, largest / smallest", f"{ratio}x", "<= 1.1x", _met(ratio <= 1.1))


def hot_items(r: Result) -> Iterator[Row]:
    rate, limit = f"{r['units_per_s_assumed']:,.0f}", r["partition_wcu_limit"]
    yield (
        f"busiest GSI2 shard at {rate} units/s, many sessions",
        f"{r['gsi2_shard_wcu_per_s_many_sessions']} WCU/s "
        f"(one key per list: LEASE {r['unsharded_lease_list_wcu_per_s']})",
        f"<= {limit} WCU/s",
        _met(r["gsi2_shard_wcu_per_s_many_sessions"] <= limit),
    )
    zipped = r["shapes"]["zip"]
    peak = max(
        zipped["busiest_item_wcu_per_s"],
        zipped["busiest_gsi1_partition_wcu_per_s"],
        zipped["busiest_gsi2_partition_wcu_per_s"],
    )
    yield (
        f"one batch session at {rate} units/s: item / GSI1 / GSI2",
        f"{zipped['busiest_item']} {zipped['busiest_item_wcu_per_s']}, "
        f"{zipped['busiest_gsi1_partition_wcu_per_s']}, "
        f"{zipped['busiest_gsi2_partition']} {zipped['busiest_gsi2_partition_wcu_per_s']} WCU/s "
        f"(unsharded META: {r['unsharded_meta_wcu_per_s']})",
        f"<= {limit} WCU/s",
        _met(peak <= limit),
    )
    yield (
        "one session of single files, most files/s",
        f"{r['session_max_units_per_s']['files']:,} (META takes "
        f"{r['shapes']['files']['busiest_item_wcu_per_unit']} WCU per file)",
        "-",
        "-",
    )


def scale_model(r: Result) -> Iterator[Row]:
    per_k = r["dollars_per_1000_units"]
    yield (
        f"cost per 1,000 units ({r['units_per_day']:,}/day, half documents, half prompts)",
        f"${r['dollars_per_1000_units_total']} (Lambda {per_k['lambda']}, DynamoDB "
        f"{per_k['dynamodb']}, S3 {per_k['s3']}, SQS {per_k['sqs']}, SNS {per_k['sns']})",
        "-",
        "-",
    )
    concurrency, peak = r["lambda_concurrency"], r["peak_wcu_per_s"]
    yield (
        f"Lambda concurrency, average / peak ({r['assumptions']['peak_to_average']}x)",
        f"{concurrency['average']} / {concurrency['peak']}",
        "-",
        "-",
    )
    busiest = max(peak["busiest_item"], peak["busiest_gsi1_partition"], peak["busiest_gsi2_shard"])
    yield (
        "busiest item or partition at the day's peak",
        f"{busiest} WCU/s",
        f"<= {peak['limit']} WCU/s",
        _met(busiest <= peak["limit"]),
    )


def prompts_e2e(r: Result) -> Iterator[Row]:
    goals = r.get("goals", {})
    for run in r["runs"]:
        calls = run["model_in_flight"]
        goal, met = "-", None
        if run["prompts"] == 100:
            goal, met = "< 10 s", goals.get("100_prompts_under_10s")
        yield (
            f"{run['prompts']:,} prompts end to end ({r['model_latency_ms']} ms model)",
            f"{run['elapsed_s']} s, in order {run['results_in_order']}; model calls at once: "
            f"max {calls['max']}, mean {calls['mean_while_busy']}",
            goal,
            _met(met),
        )
    if "ratio_1000_over_100" in r:
        yield (
            "1,000 / 100 prompts time",
            f"{r['ratio_1000_over_100']}x",
            "<= 11x",
            _met(goals.get("1000_within_11x")),
        )


def export_large(r: Result) -> Iterator[Row]:
    for units, run in r["runs"].items():
        for made in run["exports"]:
            yield (
                f"export {made['format']}, {int(units):,} units",
                f"{made['seconds']} s, {made['bytes']:,} B, "
                f"RSS +{made['rss_over_imports_mb']} MB over imports",
                "-",
                "-",
            )
    for fmt, growth in r.get("rss_growth_mb", {}).items():
        yield (
            f"export {fmt} memory, largest - smallest",
            f"{growth} MB",
            "constant",
            _met(r["goals"]["memory_constant_in_units"]),
        )


def restart(r: Result) -> Iterator[Row]:
    yield (
        f"restart with {r['units']:,} units",
        f"{r['restart_s']} s (restore {r['restore_s']} s; empty start {r['empty_start_s']} s), "
        f"snapshot {r['snapshot_mb']} MB, session as before: {r['same_summary']}",
        "< 10 s",
        _met(r["goals"]["restart_lt_10s"]),
    )


def generic(r: Result) -> Iterator[Row]:
    for key, value in r.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield (key, str(value), "-", "-")


HEADLINES: dict[str, Callable[[Result], Iterator[Row]]] = {
    "status_read_cost": status_read_cost,
    "pipeline_requests": pipeline_requests,
    "fanout_large_zip": fanout_large_zip,
    "cold_start": cold_start,
    "capacity": capacity,
    "throughput": throughput,
    "hot_items": hot_items,
    "scale_model": scale_model,
    "prompts_e2e": prompts_e2e,
    "export_large": export_large,
    "restart": restart,
}


def main() -> None:
    rows: list[tuple[str, ...]] = [("bench", "measure", "value", "goal", "met")]
    for line in sys.stdin:
        if not line.strip().startswith("{"):
            continue
        result = json.loads(line)
        name = str(result.get("bench") or result.get("name") or "moto")
        rows += [(name, *headline) for headline in HEADLINES.get(name, generic)(result)]
    widths = [max(len(cells[i]) for cells in rows) for i in range(5)]
    for cells in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)))


if __name__ == "__main__":
    main()
