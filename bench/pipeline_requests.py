"""AWS requests chute makes per unit, and what the fan-out reads of a zip, counted not estimated.

Run: .venv/bin/python -m bench.pipeline_requests [--files 300] [--size-mb 40]
A zip of --files documents (the demo's generator) goes through the in-process stack: HTTP API,
presigned POST, S3 event, fan-out, workers, completion. botocore event hooks on chute's own boto3
session count every request by service and operation, split into the fan-out (on_upload) and the
workers; the SQS polls and deletes of Lambda's event source are counted apart. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from chalice.test import Client

from bench.capacity import RequestCounter, logs_to_stderr
from chalicelib.auth import issue_token
from chute_cli.samples import make_documents_zip
from infra.inprocess import TOKEN_KEY, InProcessStack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--size-mb", type=float, default=40.0)
    args = parser.parse_args()
    logs_to_stderr()
    with tempfile.TemporaryDirectory() as scratch:
        sample = make_documents_zip(
            Path(scratch) / "bench.zip", files=args.files, size_mb=args.size_mb, corrupt=0
        )
        print(json.dumps(run(sample.path, sample.bytes)))


def run(zip_path: Path, zip_bytes: int) -> dict[str, Any]:
    counter = RequestCounter()
    with InProcessStack() as stack:
        stack.app_session.events.register("before-call", counter.before_call)
        stack.app_session.events.register("after-call.s3.GetObject", counter.after_get)
        event_source = RequestCounter()
        stack.sqs.meta.events.register("before-call", event_source.before_call)
        empty_polls = Counter[str]()

        def count_empty(parsed: dict[str, Any], **_: Any) -> None:
            if not parsed.get("Messages"):
                empty_polls["receives"] += 1

        stack.sqs.meta.events.register("after-call.sqs.ReceiveMessage", count_empty)
        token = issue_token(TOKEN_KEY, "bench", time.time())
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        manifest = {"files": [{"name": "bench.zip", "size": zip_bytes}]}
        with Client(stack.app.app) as client:
            created = json.loads(
                client.http.post("/sessions", headers=headers, body=json.dumps(manifest)).body
            )
            ticket = created["uploads"][0]
            with zip_path.open("rb") as data:
                requests.post(
                    ticket["url"], data=ticket["fields"], files={"file": data}, timeout=60
                ).raise_for_status()
            before_fanout = counter.snapshot()
            started = time.perf_counter()
            stack.drain("on_upload")
            fanout_s = time.perf_counter() - started
            after_fanout = counter.snapshot()
            stack.drain()
            elapsed_s = time.perf_counter() - started
            summary = json.loads(
                client.http.get(f"/sessions/{created['session_id']}", headers=headers).body
            )
    units = int(summary["total"])
    fanout_calls = after_fanout[0] - before_fanout[0]
    worker_calls = counter.calls - after_fanout[0]

    def per_unit(calls: Counter[str], service: str) -> float:
        total = sum(n for name, n in calls.items() if name.startswith(service + "."))
        return round(total / units, 3)

    return {
        "bench": "pipeline_requests",
        "units": units,
        "status": summary["status"],
        "zip_bytes": zip_bytes,
        "fanout": {
            "s3_get_requests": fanout_calls["s3.GetObject"],
            "s3_bytes_read": after_fanout[1] - before_fanout[1],
            "seconds": round(fanout_s, 2),
        },
        "per_unit": {
            service: {
                "all": per_unit(counter.calls, service),
                "fanout": per_unit(fanout_calls, service),
                "worker": per_unit(worker_calls, service),
            }
            for service in ("dynamodb", "sqs", "s3", "sns")
        },
        "event_source_sqs_per_unit": round(sum(event_source.calls.values()) / units, 3),
        # The in-process harness polls every queue in turn with no wait; Lambda long-polls.
        "event_source_sqs_per_unit_without_empty_polls": round(
            (sum(event_source.calls.values()) - empty_polls["receives"]) / units, 3
        ),
        "requests": dict(sorted(counter.calls.items())),
        "elapsed_s": round(elapsed_s, 2),
    }


if __name__ == "__main__":
    main()
