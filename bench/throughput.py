"""End-to-end throughput and completion latency on the embedded stack, for several session sizes.

Run: .venv/bin/python -m bench.throughput [--sizes 100 1000 10000] [--concurrency 4]
For each size N, one zip of N tiny text members goes through the real local stack (moto's server
in a child process, the Chalice API over HTTP, the dispatcher's worker threads): upload → fan-out
→ N units processed → completion → the notification in the email outbox. Reported per size:
units/s from upload start to terminal status, and two completion latencies — from the last unit's
finish (max finished_at) to done_at on the session, and to the email landing in the outbox.
The ratio of time per unit at the largest size to the smallest says how linear the pipeline is.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.capacity import logs_to_stderr
from chute_cli.samples import tiny_text_zip
from infra.local import LocalStack
from infra.testing import wait_for

POLL_S = 0.2


def run_one(info: dict[str, Any], units: int) -> dict[str, Any]:
    api, headers = info["api_url"], {"Authorization": f"Bearer {info['token']}"}
    data = tiny_text_zip(units)
    manifest: dict[str, Any] = {"files": [{"name": f"bench-{units}.zip", "size": len(data)}]}
    created = requests.post(f"{api}/sessions", json=manifest, headers=headers, timeout=30).json()
    sid, ticket = created["session_id"], created["uploads"][0]
    started = time.time()
    requests.post(ticket["url"], data=ticket["fields"], files={"file": data}, timeout=60)

    def terminal() -> dict[str, Any] | None:
        summary: dict[str, Any] = requests.get(
            f"{api}/sessions/{sid}", headers=headers, timeout=30
        ).json()
        return summary if summary.get("done_at") is not None else None

    summary = wait_for(terminal, timeout_s=3600, what=f"session of {units} units to finish")
    seen_done = time.time()
    outbox = Path(info["outbox_path"])

    def email() -> dict[str, Any] | None:
        lines = outbox.read_text().splitlines() if outbox.exists() else []
        mails = [json.loads(line) for line in lines]
        return next((m for m in mails if m["attributes"].get("session_id") == sid), None)

    mail = wait_for(email, timeout_s=60, what="the completion email")
    last_finish = max(
        float(row["finished_at"]) for row in all_files(api, headers, sid) if row["finished_at"]
    )
    elapsed = float(summary["done_at"]) - started
    return {
        "units": units,
        "status": summary["status"],
        "elapsed_s": round(elapsed, 2),
        "units_per_s": round(units / elapsed, 1),
        "last_finish_to_done_s": round(float(summary["done_at"]) - last_finish, 3),
        "last_finish_to_email_s": round(float(mail["received_at"]) - last_finish, 3),
        "done_seen_by_poller_s": round(seen_done - float(summary["done_at"]), 3),
    }


def all_files(api: str, headers: dict[str, str], sid: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        page = requests.get(
            f"{api}/sessions/{sid}/files", params=params, headers=headers, timeout=60
        ).json()
        rows += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    logs_to_stderr()
    with (
        contextlib.redirect_stdout(sys.stderr),  # the stack's console output (outbox, banner)
        tempfile.TemporaryDirectory() as root,
        LocalStack(Path(root), api_port=0, work_concurrency=args.concurrency) as stack,
    ):
        runs = [run_one(stack.info, size) for size in args.sizes]
    smallest, largest = runs[0], runs[-1]
    per_unit_ratio = (largest["elapsed_s"] / largest["units"]) / (
        smallest["elapsed_s"] / smallest["units"]
    )
    print(
        json.dumps(
            {
                "bench": "throughput",
                "work_concurrency": args.concurrency,
                "runs": runs,
                "time_per_unit_ratio_largest_to_smallest": round(per_unit_ratio, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
