"""Prompts batches end to end on the embedded stack, with the dev model answering in 200 ms.

Run: .venv/bin/python -m bench.prompts_e2e [--sizes 100 1000] [--latency-ms 200]
For each size N: a CSV of N varied prompts goes through the real local stack (moto's server in a
child process, the Chalice API over HTTP, the dispatcher's worker threads, the dev model server
over HTTP): session created → CSV uploaded → fan-out → N model calls → completion → the results
CSV downloaded and checked against the input. Reported per size: seconds from creating the
session to holding the checked results, and the model calls in flight over time (the most at
once, the mean while any ran, and per second), which shows the rows of a batch really run side
by side. Goals (issue 13): 100 prompts under 10 s; 1000 within 11x of that. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.capacity import logs_to_stderr
from chute_cli.client import ChuteClient
from chute_cli.promptsamples import write_prompts_csv
from chute_cli.promptsdemo import check_results, start_prompts_session
from chute_cli.report import is_terminal
from infra.local import LocalStack

POLL_S = 0.1
GOAL_100_S = 10.0
GOAL_RATIO = 11.0


def in_flight(timeline: Sequence[tuple[float, float]], since: float) -> dict[str, Any]:
    """How many calls ran at once: the most, the mean over the time any ran, and per second the
    mean (calls' busy seconds within that second)."""
    calls = [(start, end) for start, end in timeline if start >= since]
    if not calls:
        return {"calls": 0, "max": 0, "mean_while_busy": 0.0, "per_s": []}
    edges = sorted([(s, 1) for s, _ in calls] + [(e, -1) for _, e in calls])
    running = most = 0
    busy = weighted = 0.0
    last = edges[0][0]
    for when, step in edges:
        if running:
            busy += when - last
            weighted += running * (when - last)
        running += step
        most = max(most, running)
        last = when
    first, end = min(s for s, _ in calls), max(e for _, e in calls)
    per_s = []
    second = first
    while second < end:
        window = sum(max(0.0, min(e, second + 1) - max(s, second)) for s, e in calls)
        per_s.append(round(window, 1))
        second += 1
    return {
        "calls": len(calls),
        "max": most,
        "mean_while_busy": round(weighted / busy, 1) if busy else 0.0,
        "per_s": per_s,
    }


def run_one(stack: LocalStack, client: ChuteClient, root: Path, size: int) -> dict[str, Any]:
    rows = write_prompts_csv(root / f"prompts-{size}.csv", size, seed=size)
    assert stack.model is not None, "the bench runs the dev model server"
    since = time.monotonic()
    started = time.perf_counter()
    sid = start_prompts_session(client, root / f"prompts-{size}.csv")
    summary: dict[str, Any] | None = None
    while summary is None or not is_terminal(summary):
        time.sleep(POLL_S)
        summary, _etag = client.get_session(sid)
    check = check_results(client.results(sid, "csv"), rows)
    elapsed = time.perf_counter() - started
    return {
        "prompts": size,
        "status": summary["status"],
        "elapsed_s": round(elapsed, 2),
        "prompts_per_s": round(size / elapsed, 1),
        "tokens": summary.get("usage"),
        "results_rows": check.rows,
        "results_in_order": check.in_order and not check.mismatches,
        "model_in_flight": in_flight(stack.model.stats()["timeline"], since),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4, help="worker threads")
    args = parser.parse_args(argv)
    logs_to_stderr()
    os.environ["CHUTE_DEV_MODEL_LATENCY_MS"] = str(args.latency_ms)
    os.environ.pop("CHUTE_MODEL_BASE_URL", None)
    with (
        contextlib.redirect_stdout(sys.stderr),  # the stack's console output (outbox, banner)
        tempfile.TemporaryDirectory() as root,
        LocalStack(Path(root), api_port=0, work_concurrency=args.concurrency) as stack,
    ):
        client = ChuteClient(stack.info["api_url"], stack.info["token"])
        runs = [run_one(stack, client, Path(root), size) for size in args.sizes]
    result: dict[str, Any] = {
        "bench": "prompts_e2e",
        "model_latency_ms": args.latency_ms,
        "work_concurrency": args.concurrency,
        "runs": runs,
    }
    by_size = {run["prompts"]: run for run in runs}
    goals: dict[str, bool] = {}
    if 100 in by_size:
        goals["100_prompts_under_10s"] = by_size[100]["elapsed_s"] < GOAL_100_S
    if 100 in by_size and 1000 in by_size:
        ratio = by_size[1000]["elapsed_s"] / by_size[100]["elapsed_s"]
        result["ratio_1000_over_100"] = round(ratio, 2)
        goals["1000_within_11x"] = ratio <= GOAL_RATIO
    result["goals"] = goals
    print(json.dumps(result))


if __name__ == "__main__":
    main()
