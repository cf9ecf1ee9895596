"""Results export of a large session: time and peak memory, at 1,000 and 10,000 units.

Run: .venv/bin/python -m bench.export_large [--units 1000 10000] [--formats csv jsonl json xlsx zip]
moto's server runs in a child process; a finished prompts session of N rows is written straight
into its table and bucket (each unit completed, with a 600-character answer and its result
document, the rows file in inputs/). Each export then runs in a fresh interpreter, as the API
function would, and reports its seconds, its bytes, and its peak RSS over the interpreter's own
after imports: the same at 1,000 and 10,000 units means memory is constant in the number of units.
Prints one JSON line. Goal (issue 13): 10,000 units export, memory constant in N.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

from chalicelib.config import CoreSettings, Settings
from chalicelib.models import UnitStatus
from chalicelib.services import Services
from chalicelib.sources import RowSource
from chalicelib.store.items import DeclaredFile, SessionMeta, UnitItem
from infra.local import CREDENTIALS, REGION
from infra.moto_server import MotoServerProcess
from infra.provision import provision
from infra.resources import LOCAL

NOW = 1_790_000_000.0
MEMORY_SLACK_MB = 16  # what "constant" allows between 1,000 and 10,000 units


def answer(i: int) -> str:
    return (f"Answer {i}: " + "a considered, specific reply " * 22)[:600]


def seed(services: Services[Settings], sid: str, n: int) -> None:
    """A finished prompts session of n rows, written as the pipeline leaves one."""
    settings, s3, store = services.settings, services.s3, services.store
    rows, spans, at = [], [], 0
    for i in range(n):
        line = (
            json.dumps(
                {
                    "row": i + 2,
                    "prompt": f"Prompt {i}: write about topic {i % 97} for readers aged {i % 60}",
                    "columns": {"id": f"p{i:05d}", "topic": f"topic {i % 97}", "tone": "warm"},
                }
            ).encode()
            + b"\n"
        )
        rows.append(line)
        spans.append((at, at + len(line)))
        at += len(line)
    key = f"inputs/{sid}/rows.jsonl"
    s3.put_object(Bucket=settings.bucket, Key=key, Body=b"".join(rows))
    declared = DeclaredFile(
        sid=sid,
        file=0,
        name="batch.csv",
        size=at,
        content_type="text/csv",
        owner="bench",
        job_type="prompts",
        priority=5,
        expires_at=int(NOW) + 86400,
        fanned_out_at=NOW,
        units=n,
    )
    meta = SessionMeta(
        sid=sid,
        owner="bench",
        name=f"bench {n}",
        job_type="prompts",
        priority=5,
        files_total=1,
        files_pending=0,
        total=n,
        created_at=NOW,
        upload_deadline=NOW + 900,
        expires_at=int(NOW) + 86400,
        done_at=NOW + 60,
    )
    store.put_session(meta, [declared], first_check=NOW + 900)
    units = []
    for i, (start, end) in enumerate(spans):
        result_key = f"results/{sid}/00000-{i:06d}.1.json"
        units.append(
            UnitItem(
                sid=sid,
                file=0,
                index=i,
                name=f"row {i + 2}: Prompt {i}",
                status=UnitStatus.COMPLETED,
                attempt=1,
                max_attempts=3,
                source=RowSource(key=key, start=start, end=end),
                size=end - start,
                created_at=NOW,
                started_at=NOW + 1,
                finished_at=NOW + 2,
                duration_ms=812,
                result_key=result_key,
                result={
                    "response": answer(i),
                    "enhanced_prompt": answer(i)[:200],
                    "technique": "role prompting",
                    "tokens_in": 120,
                    "tokens_out": 180,
                    "latency_ms": 800,
                    "model": "chute-dev",
                },
            )
        )
    store.put_units(units, recovering=False)

    def put_document(unit: UnitItem) -> None:
        body = json.dumps({"metadata": unit.result, "body": {"prompt": f"Prompt {unit.index}"}})
        s3.put_object(Bucket=settings.bucket, Key=str(unit.result_key), Body=body.encode())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put_document, units))


def peak_rss_mb() -> float:
    """This process's peak resident set. VmHWM starts afresh at exec; ru_maxrss would carry the
    parent's peak (Linux keeps it across fork and execve)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(sid: str, fmt: str) -> None:
    """One export in this fresh interpreter: its seconds, bytes and memory."""
    from chalicelib.export import export_results, parse_format

    services = Services(CoreSettings())
    baseline = peak_rss_mb()
    view = services.store.load_session(sid)
    assert view is not None
    started = time.perf_counter()
    made = export_results(services, view, parse_format(fmt))
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    head = services.s3.head_object(Bucket=services.settings.bucket, Key=made.key)
    print(
        json.dumps(
            {
                "format": fmt,
                "rows": made.rows,
                "seconds": round(seconds, 2),
                "bytes": head["ContentLength"],
                "peak_rss_mb": round(peak, 1),
                "rss_over_imports_mb": round(peak - baseline, 1),
            }
        )
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--formats", nargs="+", default=["csv", "jsonl", "json", "xlsx", "zip"])
    parser.add_argument("--child", nargs=2, metavar=("SID", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    os.environ.update(CREDENTIALS)
    server = MotoServerProcess()
    endpoint = server.start()
    try:
        session = boto3.Session(region_name=REGION)
        provisioned = provision(session, endpoint, LOCAL)
        fields = {**provisioned.settings(LOCAL, REGION), "aws_endpoint_url": endpoint}
        services = Services(Settings.model_validate(fields), session=session)
        env = {**os.environ, **{f"CHUTE_{k.upper()}": str(v) for k, v in fields.items()}}
        runs: dict[str, Any] = {}
        for n in args.units:
            sid = f"bench{n}"
            started = time.perf_counter()
            seed(services, sid, n)
            exports = []
            for fmt in args.formats:
                out = subprocess.run(
                    [sys.executable, "-m", "bench.export_large", "--child", sid, fmt],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                exports.append(json.loads(out.stdout.strip().splitlines()[-1]))
            runs[str(n)] = {"seed_s": round(time.perf_counter() - started, 1), "exports": exports}
    finally:
        server.stop()
    result: dict[str, Any] = {"bench": "export_large", "runs": runs}
    sizes = sorted(args.units)
    if len(sizes) > 1:
        small, large = runs[str(sizes[0])]["exports"], runs[str(sizes[-1])]["exports"]
        growth = {
            a["format"]: round(b["rss_over_imports_mb"] - a["rss_over_imports_mb"], 1)
            for a, b in zip(small, large, strict=True)
        }
        result["rss_growth_mb"] = growth
        result["goals"] = {
            f"{sizes[-1]}_units_exported": all(e["rows"] == sizes[-1] for e in large),
            "memory_constant_in_units": all(g <= MEMORY_SLACK_MB for g in growth.values()),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
