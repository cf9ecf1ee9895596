"""What one `GET /sessions/{id}` costs in DynamoDB as a session grows, against the naive design.

Run: .venv/bin/python -m bench.status_read_cost [--units 10,1000,10000] [--reads 20]
     [--process-up-to 1000] [--quick]

For each N, on the in-process stack (moto in this process, chute's real handlers): a zip of N tiny
.txt members is uploaded through the HTTP API and its presigned POST, and `drain("on_upload")` fans
it out into N units. When N <= --process-up-to the workers then run every unit to completion
(`units_state: completed`); larger sessions are left with every unit pending (`pending`), since the
status read must not depend on how far the work got. Then, through Chalice's test client:

- chute: --reads x `GET /sessions/{id}`: DynamoDB requests per read and read units per read,
  counted by botocore hooks on chute's own boto3 session (bench.capacity sizes each item read),
  and the median wall time of the route (in-process moto: compare, do not quote as AWS latency).
- naive: what a design without session counters would do: Query every `F#` unit item of the
  session (eventually consistent, paginated) and count statuses in Python; the same counts, read
  units (each 1 MB page's items rounded up to 4 KB, x0.5) and median wall time, with fewer
  repetitions for large N (--naive-reads-large).

Prints one JSON line: per N both sides, whether chute's requests and read units are identical for
every N, and the naive/chute ratio of read units at the largest N (goal: >= 1000 at 10,000).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from chalice.test import Client

from bench.capacity import (
    CapacityCounter,
    RequestCounter,
    auth_headers,
    get_summary,
    item_size,
    logs_to_stderr,
    upload_in_process,
)
from chute_cli.samples import tiny_text_zip
from infra.inprocess import REGION, InProcessStack

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

GOAL_RATIO = 1000
# From this many units a naive read takes seconds in moto (its response serializer costs ~3 ms
# per item), and its requests and units are the same every time: a few repetitions suffice.
LARGE = 1000


class Meter:
    """DynamoDB requests, read units and wall time of one action, from the stack's hooks."""

    def __init__(self, requests: RequestCounter, capacity: CapacityCounter) -> None:
        self._requests = requests
        self._capacity = capacity

    def measure(self, action: Callable[[], object], repeat: int) -> dict[str, Any]:
        samples: list[float] = []
        operations: Counter[str] = Counter()
        read_units: list[float] = []
        for _ in range(repeat):
            calls_before, _bytes = self._requests.snapshot()
            capacity_before = self._capacity.snapshot()
            started = time.perf_counter()
            action()
            samples.append((time.perf_counter() - started) * 1000)
            calls = self._requests.snapshot()[0] - calls_before
            operations = Counter(
                {k.split(".", 1)[1]: n for k, n in calls.items() if k.startswith("dynamodb.")}
            )
            read_units.append((self._capacity.snapshot() - capacity_before).total().rcu)
        return {
            "dynamodb_requests": sum(operations.values()),
            "operations": dict(sorted(operations.items())),
            "read_units": read_units[-1],
            # Every repetition reads the same items; a difference would mean the data changed.
            "read_units_stable": len(set(read_units)) == 1,
            "median_ms": round(statistics.median(samples), 2),
            "repetitions": repeat,
        }


def naive_counts(
    ddb: DynamoDBClient, table: str, sid: str
) -> tuple[Counter[str], list[dict[str, Any]]]:
    """Every unit item of the session, page by page, counted by status in Python; and the items
    (sized afterwards, outside the timing)."""
    counts: Counter[str] = Counter()
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :units)",
        "ExpressionAttributeValues": {":pk": {"S": f"S#{sid}"}, ":units": {"S": "F#"}},
    }
    while True:
        page = ddb.query(**kwargs)
        counts.update(item["status"]["S"] for item in page.get("Items", []))
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return counts, items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def run(
    sizes: Sequence[int], *, reads: int, naive_reads_large: int, process_up_to: int
) -> dict[str, Any]:
    requests, capacity = RequestCounter(), CapacityCounter()
    results = []
    with InProcessStack() as stack:
        # Hooks first: chute's clients are created on first use and copy the session's hooks.
        requests.register(stack.app_session.events)
        capacity.register(stack.app_session.events)
        naive_ddb = stack.app_session.client("dynamodb", region_name=REGION)
        meter = Meter(requests, capacity)
        with Client(stack.app.app) as client:
            for units in sizes:
                results.append(
                    _measure_session(
                        stack,
                        client,
                        meter,
                        naive_ddb,
                        units,
                        reads=reads,
                        naive_reads=reads if units < LARGE else naive_reads_large,
                        process=units <= process_up_to,
                    )
                )
    largest = results[-1]
    ratio = largest["naive"]["read_units"] / largest["chute"]["read_units"]
    chute_costs = {
        (r["chute"]["dynamodb_requests"], r["chute"]["read_units"], str(r["chute"]["operations"]))
        for r in results
    }
    return {
        "bench": "status_read_cost",
        "read_consistency": "eventual (chute's status read and the naive Query alike)",
        "by_units": results,
        "chute_identical_across_units": len(chute_costs) == 1,
        "read_unit_ratio_naive_over_chute": {
            "units": largest["units"],
            "ratio": round(ratio, 1),
            "goal": GOAL_RATIO,
            "met": ratio >= GOAL_RATIO,
        },
    }


def _measure_session(
    stack: InProcessStack,
    client: Client,
    meter: Meter,
    naive_ddb: DynamoDBClient,
    units: int,
    *,
    reads: int,
    naive_reads: int,
    process: bool,
) -> dict[str, Any]:
    started = time.perf_counter()
    sid = upload_in_process(client, f"units-{units}.zip", tiny_text_zip(units))
    stack.drain("on_upload")
    if process:
        stack.drain()
    print(f"{units} units ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    summary = get_summary(client, sid)
    if summary["total"] != units:
        raise RuntimeError(f"the fan-out made {summary['total']} units of {units}")
    headers = auth_headers()

    def chute_read() -> None:
        if client.http.get(f"/sessions/{sid}", headers=headers).status_code != 200:
            raise RuntimeError("the status read failed")

    naive: list[tuple[Counter[str], list[dict[str, Any]]]] = []
    naive_side = meter.measure(
        lambda: naive.append(naive_counts(naive_ddb, stack.settings.table, sid)), naive_reads
    )
    counts = {k: v for k, v in summary["counts"].items() if v}
    naive_bytes = sum(item_size(item) for item in naive[-1][1])
    naive_side["bytes_read"] = naive_bytes
    naive_side["bytes_per_unit"] = round(naive_bytes / units, 1)
    return {
        "units": units,
        "units_state": "completed" if process else "pending",
        "status": summary["status"],
        "chute": meter.measure(chute_read, reads),
        "naive": naive_side,
        "naive_counts_match_chute": dict(naive[-1][0]) == counts,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", default="10,1000,10000", help="session sizes, comma-separated")
    parser.add_argument("--reads", type=int, default=20, help="status reads per size")
    parser.add_argument("--naive-reads-large", type=int, default=3, help=f"naive reads, N>={LARGE}")
    parser.add_argument(
        "--process-up-to", type=int, default=1000, help="run the workers when N is at most this"
    )
    parser.add_argument("--quick", action="store_true", help="N = 10, 100; 5 reads")
    args = parser.parse_args(argv)
    if args.quick:
        args.units, args.reads, args.naive_reads_large, args.process_up_to = "10,100", 5, 2, 10
    logs_to_stderr()
    sizes = sorted(int(n) for n in args.units.split(","))
    print(
        json.dumps(
            run(
                sizes,
                reads=args.reads,
                naive_reads_large=args.naive_reads_large,
                process_up_to=args.process_up_to,
            )
        )
    )


if __name__ == "__main__":
    main()
