"""One day of a million units on AWS, projected from what a small measured run asks of each service.

Run: .venv/bin/python -m bench.scale_model [--documents 100] [--prompts 100] [--peak-factor 4]
Two sessions go through the in-process stack (moto, chute's real handlers and Lambda event shapes),
each in a stack of its own: a zip of --documents mixed documents (chute_cli.samples: text,
markdown, CSV, JSON, HTML, PDF) and a CSV batch of --prompts rows answered by the dev model at
200 ms a call. Each is uploaded by its presigned POST, fanned out, worked, exported once as CSV
and read as a person's page would. Measured on the way, by the benches' own counters:
- requests per service and operation on chute's boto3 session (bench.capacity.RequestCounter),
  and the SQS event source's receives and deletes, its empty polls left out (pipeline_requests);
- DynamoDB read and write units from item sizes by AWS's rules, index writes included
  (bench.capacity.CapacityCounter);
- the write units of the busiest item and index partitions (bench.hot_items.KeyWrites);
- every Lambda invocation (on_upload, worker, the API's requests, one idle sweep) and its wall
  time in this process, where moto answers each AWS request in a few ms;
- the bytes left in S3, the SNS publishes and the emails they became.

The day: UNITS_PER_DAY units, MIX of them documents and prompts, in sessions the size of the
measured ones; the sweeper runs every minute. Lambda concurrency is Little's law: invocation
seconds per unit × units/s, at the average rate and at --peak-factor times it. Costs use the
on-demand list prices below, us-east-1 (PRICES_NOTED; no free tiers). Left out: API Gateway,
CloudWatch (logs, metrics, alarms), DynamoDB storage, data transfer, the model's own price
(Bedrock or an endpoint's tokens). Prints one JSON line, and the markdown table README's
Performance section carries on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import requests
from chalice.test import Client

from bench.capacity import CapacityCounter, RequestCounter, auth_headers, logs_to_stderr
from bench.hot_items import KeyWrites
from chalicelib.store.keys import DUE_SHARDS
from chalicelib.sweeper import sweep
from chute_cli.promptsamples import prompt_rows, prompts_csv
from chute_cli.samples import make_documents_zip
from infra.inprocess import REGION, InProcessStack
from infra.model_server import DevModelServer

ROOT = Path(__file__).resolve().parents[1]
UNITS_PER_DAY = 1_000_000
MIX = {"documents": 0.5, "prompts": 0.5}
MODEL_LATENCY_MS = 200
# The demo's mean document (`make demo`: 300 documents in a 40 MiB zip).
DOCUMENT_MB = 40 / 300
SWEEPS_PER_DAY = 24 * 60
# A person's page reads the session's summary while it runs (one read every few seconds,
# answered 304 when nothing moved): counted as this many API requests per session.
STATUS_READS_PER_SESSION = 20
# Lambda's SQS event source long-polls each queue with 5 pollers even when it is empty (AWS
# Lambda developer guide, "Using Lambda with Amazon SQS"): a receive per poller per 20 s.
EVENT_SOURCE_QUEUES = 3  # uploads, work, work-high
EMPTY_POLLS_PER_DAY = EVENT_SOURCE_QUEUES * 5 * 86_400 // 20
# Objects stay as long as their session (Settings.session_ttl_days; S3 lifecycle rules to match).
RETENTION_DAYS = 30
DAYS_PER_MONTH = 30.4
PARTITION_WCU_LIMIT = 1000

PRICES_NOTED = "prices as published, noted 2026-12-04 (us-east-1, on-demand, no free tier)"
PRICES = {
    "lambda_per_1m_requests": 0.20,
    "lambda_per_gb_s": 0.0000166667,  # x86
    "sqs_per_1m_requests": 0.40,  # standard queues; each 64 KB chunk is a request
    "dynamodb_per_1m_wru": 0.625,  # on-demand, after the November 2024 price cut
    "dynamodb_per_1m_rru": 0.125,
    "s3_per_1k_put": 0.005,  # PUT, COPY, POST, LIST
    "s3_per_1k_get": 0.0004,  # GET, HEAD and the rest
    "s3_per_gb_month": 0.023,  # S3 Standard, first 50 TB
    "sns_per_1m_publishes": 0.50,
    "sns_per_100k_emails": 2.00,
}
# S3 bills these at the PUT price; every other request at the GET price.
S3_PUT_CLASS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "ListObjects",
        "ListObjectsV2",
    }
)


# ---- measuring -------------------------------------------------------------------------------
@dataclasses.dataclass
class Invocations:
    """Lambda invocations per function and their wall time in this process."""

    count: Counter[str] = dataclasses.field(default_factory=Counter)
    seconds: defaultdict[str, float] = dataclasses.field(default_factory=lambda: defaultdict(float))

    def timed(self, function: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.invocation(function):
                return call(*args, **kwargs)

        return wrapper

    @contextmanager
    def invocation(self, function: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.count[function] += 1
            self.seconds[function] += time.perf_counter() - started


@dataclasses.dataclass
class Run:
    """What one measured session asked of AWS, per unit."""

    shape: str
    units: int
    status: str
    requests: Counter[str]  # service.Operation, chute's own clients
    event_source_sqs: int  # receives and deletes by Lambda's event source, empty polls out
    rcu: float
    wcu: float  # table and index write units
    invocations: Invocations
    aws_request_ms: float  # the mean time of chute's AWS requests, in this process
    s3_uploads: int  # presigned POSTs by the client
    s3_downloads: int  # presigned GETs of the export by the client
    s3_bytes: Counter[str]  # by top-level prefix: uploads, inputs, results, plans
    emails: int
    hot: KeyWrites

    def per_unit(self, n: float) -> float:
        return n / self.units


def _memory_gb() -> dict[str, float]:
    """Each function's memory from .chalice/config.json (the stage's default for the API)."""
    stage = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]
    default = int(stage.get("lambda_memory_size", 128))
    functions = stage.get("lambda_functions", {})
    names = ("api", "on_upload", "worker", "sweeper")
    return {n: int(functions.get(n, {}).get("lambda_memory_size", default)) / 1024 for n in names}


def _time_routes(stack: InProcessStack, invocations: Invocations) -> None:
    stack.routes = [
        dataclasses.replace(r, handler=invocations.timed(r.function, r.handler))
        for r in stack.routes
    ]


def _upload(
    client: Client, manifest: dict[str, Any], name: str, data: bytes, calls: Invocations
) -> str:
    body = {**manifest, "files": [{"name": name, "size": len(data)}]}
    with calls.invocation("api"):
        response = client.http.post("/sessions", headers=auth_headers(), body=json.dumps(body))
    created = json.loads(response.body)
    ticket = created["uploads"][0]
    requests.post(
        ticket["url"], data=ticket["fields"], files={"file": (name, data)}, timeout=120
    ).raise_for_status()
    return str(created["session_id"])


def measure(shape: str, name: str, data: bytes, manifest: dict[str, Any]) -> Run:
    model = DevModelServer(latency_ms=MODEL_LATENCY_MS)
    with InProcessStack(model=model) as stack:
        counter = RequestCounter()
        counter.register(stack.app_session.events)
        peek = boto3.Session(region_name=REGION).client("dynamodb")
        capacity = CapacityCounter(peek=peek)
        capacity.register(stack.app_session.events)
        hot = KeyWrites(peek=peek)
        hot.register(stack.app_session.events)
        event_source = RequestCounter()
        stack.sqs.meta.events.register("before-call", event_source.before_call)
        empty = Counter[str]()

        def count_empty(parsed: dict[str, Any], **_: Any) -> None:
            if not parsed.get("Messages"):
                empty["receives"] += 1

        stack.sqs.meta.events.register("after-call.sqs.ReceiveMessage", count_empty)
        calls = Invocations()
        _time_routes(stack, calls)
        with Client(stack.app.app) as client:
            sid = _upload(client, manifest, name, data, calls)
            stack.drain()
            for _ in range(STATUS_READS_PER_SESSION):
                with calls.invocation("api"):
                    summary = json.loads(
                        client.http.get(f"/sessions/{sid}", headers=auth_headers()).body
                    )
            with calls.invocation("api"):
                exported = client.http.get(
                    f"/sessions/{sid}/results?format=csv", headers=auth_headers()
                )
            downloads = int(exported.status_code == 302)
        emails = len(stack.outbox())
        used = capacity.snapshot().total()
        s3 = boto3.Session(region_name=REGION).client("s3")  # unhooked: not chute's request
        listed = s3.list_objects_v2(Bucket=stack.settings.bucket)
        stored: Counter[str] = Counter()
        for found in listed.get("Contents", []):
            stored[found.get("Key", "").split("/", 1)[0]] += int(found.get("Size", 0))
    return Run(
        shape=shape,
        units=int(summary["total"]),
        status=str(summary["status"]),
        requests=counter.calls,
        event_source_sqs=sum(event_source.calls.values()) - empty["receives"],
        rcu=used.rcu,
        wcu=used.wcu + used.wcu_index,
        invocations=calls,
        aws_request_ms=1000 * sum(counter.seconds.values()) / max(1, sum(counter.calls.values())),
        s3_uploads=1,
        s3_downloads=downloads,
        s3_bytes=stored,
        emails=emails,
        hot=hot,
    )


def measure_idle_sweep() -> tuple[Counter[str], float, float]:
    """One sweep with nothing to do: the requests (every shard of every list, the dead-letter
    queues), its read units and its wall time."""
    with InProcessStack() as stack:
        counter = RequestCounter()
        counter.register(stack.app_session.events)
        capacity = CapacityCounter(peek=boto3.Session(region_name=REGION).client("dynamodb"))
        capacity.register(stack.app_session.events)
        sweep(stack.services)  # clients built, first requests made
        before, rcu_before = counter.snapshot()[0], capacity.snapshot().total().rcu
        started = time.perf_counter()
        sweep(stack.services)
        seconds = time.perf_counter() - started
        calls = counter.snapshot()[0] - before
    return calls, capacity.snapshot().total().rcu - rcu_before, seconds


# ---- the day ---------------------------------------------------------------------------------
def _service(calls: Mapping[str, int], service: str) -> int:
    return sum(n for name, n in calls.items() if name.startswith(service + "."))


def _s3_put_class(calls: Mapping[str, int]) -> int:
    return sum(
        n for name, n in calls.items() if name.startswith("s3.") and name[3:] in S3_PUT_CLASS
    )


def per_unit(run: Run, memory: Mapping[str, float]) -> dict[str, float]:
    """Everything one unit of this shape costs a service, its session's share included."""
    calls = run.requests
    lambda_seconds = sum(run.invocations.seconds.values())
    gb_s = sum(s * memory[f] for f, s in run.invocations.seconds.items())
    s3_put = _s3_put_class(calls) + run.s3_uploads
    s3_get = _service(calls, "s3") - _s3_put_class(calls) + run.s3_downloads
    return {
        "lambda_invocations": run.per_unit(sum(run.invocations.count.values())),
        "lambda_seconds": run.per_unit(lambda_seconds),
        "lambda_gb_s": run.per_unit(gb_s),
        "sqs_requests": run.per_unit(_service(calls, "sqs") + run.event_source_sqs),
        "dynamodb_requests": run.per_unit(_service(calls, "dynamodb")),
        "dynamodb_rru": run.per_unit(run.rcu),
        "dynamodb_wru": run.per_unit(run.wcu),
        "s3_put": run.per_unit(s3_put),
        "s3_get": run.per_unit(s3_get),
        "s3_gb_stored": run.per_unit(sum(run.s3_bytes.values())) / 1e9,
        "sns_publishes": run.per_unit(_service(calls, "sns")),
        "sns_emails": run.per_unit(run.emails),
    }


def dollars(day: Mapping[str, float]) -> dict[str, float]:
    p = PRICES
    return {
        "lambda": day["lambda_invocations"] / 1e6 * p["lambda_per_1m_requests"]
        + day["lambda_gb_s"] * p["lambda_per_gb_s"],
        "sqs": day["sqs_requests"] / 1e6 * p["sqs_per_1m_requests"],
        "dynamodb": day["dynamodb_wru"] / 1e6 * p["dynamodb_per_1m_wru"]
        + day["dynamodb_rru"] / 1e6 * p["dynamodb_per_1m_rru"],
        "s3": day["s3_put"] / 1e3 * p["s3_per_1k_put"]
        + day["s3_get"] / 1e3 * p["s3_per_1k_get"]
        # A day's objects, kept RETENTION_DAYS: their share of the monthly storage bill.
        + day["s3_gb_stored"] * p["s3_per_gb_month"] * RETENTION_DAYS / DAYS_PER_MONTH,
        "sns": day["sns_publishes"] / 1e6 * p["sns_per_1m_publishes"]
        + day["sns_emails"] / 1e5 * p["sns_per_100k_emails"],
    }


def project(
    runs: Mapping[str, Run], sweep_cost: Mapping[str, float], peak_factor: float
) -> dict[str, Any]:
    memory = _memory_gb()
    day: defaultdict[str, float] = defaultdict(float)
    for shape, run in runs.items():
        units = UNITS_PER_DAY * MIX[shape]
        for name, amount in per_unit(run, memory).items():
            day[name] += amount * units
    for name, amount in sweep_cost.items():
        day[name] += amount * SWEEPS_PER_DAY
    day["sqs_requests"] += EMPTY_POLLS_PER_DAY
    cost = dollars(day)
    average = UNITS_PER_DAY / 86_400
    seconds_per_unit = {
        s: run.per_unit(sum(run.invocations.seconds.values())) for s, run in runs.items()
    }
    mean_seconds = sum(MIX[s] * v for s, v in seconds_per_unit.items())
    hottest = {
        key: max(_hot_per_unit(run)[key] for run in runs.values())
        for key in ("item", "gsi1_partition", "gsi2_list_one_key")
    }
    peak = average * peak_factor
    return {
        "day": {k: round(v, 1) for k, v in sorted(day.items())},
        "dollars_per_day": {k: round(v, 2) for k, v in cost.items()},
        "dollars_per_day_total": round(sum(cost.values()), 2),
        "dollars_per_1000_units": {k: round(v / UNITS_PER_DAY * 1000, 4) for k, v in cost.items()},
        "dollars_per_1000_units_total": round(sum(cost.values()) / UNITS_PER_DAY * 1000, 4),
        "units_per_s": {"average": round(average, 2), "peak": round(peak, 1)},
        "lambda_seconds_per_unit": {k: round(v, 4) for k, v in seconds_per_unit.items()},
        "lambda_concurrency": {
            "average": round(average * mean_seconds, 1),
            "peak": round(peak * mean_seconds, 1),
        },
        "peak_wcu_per_s": {
            "busiest_item": round(hottest["item"] * peak, 1),
            "busiest_gsi1_partition": round(hottest["gsi1_partition"] * peak, 1),
            "busiest_gsi2_shard": round(hottest["gsi2_list_one_key"] * peak / DUE_SHARDS, 1),
            "gsi2_list_under_one_key": round(hottest["gsi2_list_one_key"] * peak, 1),
            "limit": PARTITION_WCU_LIMIT,
        },
    }


def _hot_per_unit(run: Run) -> dict[str, float]:
    hot, units = run.hot, run.units
    lists: Counter[str] = Counter()
    for partition, wcu in hot.partition_wcu["GSI2"].items():
        lists[partition.split("#", 1)[0]] += wcu
    return {
        "item": max(hot.item_wcu.values(), default=0) / units,
        "gsi1_partition": max(hot.partition_wcu["GSI1"].values(), default=0) / units,
        "gsi2_list_one_key": max(lists.values(), default=0) / units,
    }


def markdown(result: Mapping[str, Any]) -> str:
    day, per_k = result["day"], result["dollars_per_1000_units"]
    per_day = result["dollars_per_day"]
    rows = [
        ("Lambda", f"{day['lambda_invocations']:,.0f} invocations, {day['lambda_gb_s']:,.0f} GB-s",
         "lambda"),
        ("SQS", f"{day['sqs_requests']:,.0f} requests", "sqs"),
        ("DynamoDB", f"{day['dynamodb_wru']:,.0f} WRU, {day['dynamodb_rru']:,.0f} RRU "
         f"({day['dynamodb_requests']:,.0f} requests)", "dynamodb"),
        ("S3", f"{day['s3_put']:,.0f} PUT/POST/LIST, {day['s3_get']:,.0f} GET, "
         f"{day['s3_gb_stored']:,.1f} GB kept {RETENTION_DAYS} days", "s3"),
        ("SNS", f"{day['sns_publishes']:,.0f} publishes, {day['sns_emails']:,.0f} emails", "sns"),
    ]  # fmt: skip
    lines = [
        "| service | one day of 1,000,000 units | $ per day | $ per 1,000 units |",
        "|---|---|---|---|",
        *(f"| {s} | {what} | {per_day[k]:,.2f} | {per_k[k]:.4f} |" for s, what, k in rows),
        f"| **total** | | **{result['dollars_per_day_total']:,.2f}** | "
        f"**{result['dollars_per_1000_units_total']:.4f}** |",
    ]
    return "\n".join(lines)


def run(documents: int, prompts: int, peak_factor: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        sample = make_documents_zip(
            Path(scratch) / "docs.zip",
            files=documents,
            size_mb=documents * DOCUMENT_MB,
            corrupt=0,
        )
        zip_bytes = sample.path.read_bytes()
    rows = prompt_rows(prompts, seed=1)
    runs = {
        "documents": measure("documents", "docs.zip", zip_bytes, {}),
        "prompts": measure("prompts", "prompts.csv", prompts_csv(rows), {"job_type": "prompts"}),
    }
    calls, rcu, seconds = measure_idle_sweep()
    memory = _memory_gb()
    sweep_cost = {
        "lambda_invocations": 1.0,
        "lambda_gb_s": seconds * memory["sweeper"],
        "dynamodb_requests": float(_service(calls, "dynamodb")),
        "dynamodb_rru": rcu,
        "sqs_requests": float(_service(calls, "sqs")),
    }
    result: dict[str, Any] = {
        "bench": "scale_model",
        "units_per_day": UNITS_PER_DAY,
        "mix": MIX,
        "measured": {
            shape: {
                "units": r.units,
                "status": r.status,
                "per_unit": {k: round(v, 6) for k, v in per_unit(r, memory).items()},
                "invocations": dict(r.invocations.count),
                "aws_request_ms_mean": round(r.aws_request_ms, 2),
                "s3_bytes_per_unit": {k: round(r.per_unit(n)) for k, n in r.s3_bytes.items()},
            }
            for shape, r in runs.items()
        },
        "idle_sweep": {"requests": dict(calls), "rru": rcu, "seconds": round(seconds, 3)},
        "assumptions": {
            "model_latency_ms": MODEL_LATENCY_MS,
            "peak_to_average": peak_factor,
            "status_reads_per_session": STATUS_READS_PER_SESSION,
            "event_source_empty_polls_per_day": EMPTY_POLLS_PER_DAY,
            "s3_retention_days": RETENTION_DAYS,
            "lambda_memory_gb": memory,
            "lambda_seconds": "wall time in this process (moto answering in-process)",
        },
        "prices": {**PRICES, "noted": PRICES_NOTED},
        **project(runs, sweep_cost, peak_factor),
    }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=100, help="documents in the zip")
    parser.add_argument("--prompts", type=int, default=100, help="rows in the prompts batch")
    parser.add_argument("--peak-factor", type=float, default=4.0)
    args = parser.parse_args(argv)
    logs_to_stderr()
    result = run(args.documents, args.prompts, args.peak_factor)
    print(json.dumps(result))
    print(markdown(result), file=sys.stderr)


if __name__ == "__main__":
    main()
