"""The fan-out of one large zip: what `on_upload` reads of it, and the memory and time it takes.

Run: .venv/bin/python -m bench.fanout_large_zip [--size-mb 400] [--files 300] [--quick]
     [--cache-dir .chute/bench]

The archive (the demo's document generator) is made once and reused from the cache directory. The
bench starts the real local stack (infra.local.LocalStack: moto in a child process, the API on a
free port) without its dispatcher, so nothing handles the upload by itself; creates a session and
streams the zip from disk to its presigned POST through the HTTP API, as `chute upload` does;
takes the resulting S3 event off the uploads queue and hands it, as the Lambda-shaped SQS event
(infra.dispatcher.sqs_event), to `app.on_upload` in a fresh Python process. That process holds
only what the Lambda would (app.py and its imports; the S3 bytes live in moto's process), so its
peak RSS is the handler's own: VmHWM of /proc/self/status, not getrusage's ru_maxrss, which Linux
carries over from the parent across the exec that starts the child (reported as ru_maxrss_mb).
There, botocore hooks count the S3 GetObject requests and the bytes they returned, and the
handler's wall time is taken around the call (its AWS clients are created inside it, as on a
cold Lambda).

Prints one JSON line. Goals: S3 bytes read < 1 MB, GETs <= 2, peak RSS < 128 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Only the standard library at module level: the child process imports this module, and what it
# imports before the handler is what the baseline RSS reports.

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / ".chute" / "bench"
MIB = 1024 * 1024
GOAL_BYTES = 1_000_000
GOAL_GETS = 2
GOAL_RSS_MB = 128
_MESSAGE_WAIT_S = 60.0


# ---- the child: one Lambda invocation ------------------------------------------------------
def _status_mb(field: str) -> float:
    """A /proc/self/status memory figure (VmRSS: now; VmHWM: the peak) in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # reported in kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def _ru_maxrss_mb() -> float:
    # KiB on Linux. Linux carries the parent's high-water mark over the exec that started this
    # process, so here it is at least the bench parent's RSS: reported, but VmHWM is the peak.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_main(event_path: str, result_path: str) -> None:
    """In a fresh interpreter: import the app, then run on_upload on the event, measured.

    chalicelib's Settings come from the CHUTE_* environment the local stack set, as on Lambda; the
    Services are built here only so the counting hooks sit on the session its clients come from.
    """
    started = time.perf_counter()
    import boto3

    import app
    from bench.capacity import RequestCounter, logs_to_stderr
    from chalicelib.config import Settings
    from chalicelib.services import Services, set_services

    settings = Settings()  # the required fields come from the CHUTE_* environment
    session = boto3.Session(region_name=settings.region)
    counter = RequestCounter()
    counter.register(session.events)
    set_services(Services(settings, session=session))
    logs_to_stderr()
    event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    import_s = time.perf_counter() - started
    baseline_current, baseline_peak = _status_mb("VmRSS"), _status_mb("VmHWM")
    started = time.perf_counter()
    answer = app.on_upload(event, None)
    handler_s = time.perf_counter() - started
    result = {
        "import_s": round(import_s, 3),
        "handler_s": round(handler_s, 3),
        "rss_baseline_mb": round(baseline_current, 1),
        "rss_peak_before_handler_mb": round(baseline_peak, 1),
        "rss_peak_mb": round(_status_mb("VmHWM"), 1),
        "ru_maxrss_mb": round(_ru_maxrss_mb(), 1),
        "s3_get_requests": counter.calls["s3.GetObject"],
        "s3_bytes_read": counter.s3_bytes_read,
        "requests": dict(sorted(counter.calls.items())),
        "request_s_by_service": {k: round(v, 3) for k, v in sorted(counter.seconds.items())},
        "batch_item_failures": len(answer.get("batchItemFailures", [])),
    }
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")


# ---- the parent ----------------------------------------------------------------------------
def _upload_event(info: dict[str, Any], sid: str) -> dict[str, Any]:
    """The Lambda event for the S3 notification of the session's upload, taken off the uploads
    queue."""
    import boto3

    from infra.dispatcher import sqs_event

    sqs = boto3.Session(region_name=info["region"]).client(
        "sqs", endpoint_url=info["aws_endpoint_url"]
    )
    url = info["uploads_queue_url"]
    deadline = time.monotonic() + _MESSAGE_WAIT_S
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        for message in messages:
            # The bucket's s3:TestEvent is queued too; it is nobody's upload. Keys arrive
            # URL-encoded, but a session id is hex.
            if sid in message["Body"] and '"Records"' in message["Body"]:
                return sqs_event([message], url, info["region"])
    raise RuntimeError(f"no S3 event of session {sid} reached the uploads queue")


def _run_child(event: dict[str, Any], scratch: Path) -> dict[str, Any]:
    event_path, result_path = scratch / "event.json", scratch / "result.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")
    code = "import sys; from bench.fanout_large_zip import child_main; child_main(*sys.argv[1:])"
    # stdout too goes to our stderr: this process's stdout is its one result line.
    subprocess.run(
        [sys.executable, "-c", code, str(event_path), str(result_path)],
        cwd=ROOT,
        env=os.environ.copy(),
        check=True,
        stdout=2,
        timeout=900,
    )
    result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    return result


def run(zip_path: Path, zip_bytes: int, members: int) -> dict[str, Any]:
    from chalicelib.models import FileSpec
    from chute_cli.client import ChuteClient
    from infra.local import LocalStack

    with (
        tempfile.TemporaryDirectory() as scratch,
        LocalStack(Path(scratch), api_port=0, start_dispatcher=False) as stack,
    ):
        info = stack.info
        client = ChuteClient(info["api_url"], info["token"], timeout=600)
        created = client.create_session(
            [FileSpec(name=zip_path.name, size=zip_bytes, content_type="application/zip")]
        )
        started = time.perf_counter()
        client.upload(created.uploads[0], zip_path, "application/zip")
        upload_s = time.perf_counter() - started
        event = _upload_event(info, created.session_id)
        child = _run_child(event, Path(scratch))
        summary, _etag = client.get_session(created.session_id)
    assert summary is not None
    return {
        "bench": "fanout_large_zip",
        "zip_bytes": zip_bytes,
        "members": members,
        "units": summary["total"],
        "session_status": summary["status"],
        "upload_s": round(upload_s, 2),
        "fanout": child,
        "goals": {
            "s3_bytes_read_lt_1mb": child["s3_bytes_read"] < GOAL_BYTES,
            "s3_gets_le_2": child["s3_get_requests"] <= GOAL_GETS,
            "rss_peak_lt_128mb": child["rss_peak_mb"] < GOAL_RSS_MB,
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    from chute_cli.samples import ensure_documents_zip

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=float, default=400.0, help="size of the zip in MiB")
    parser.add_argument("--files", type=int, default=300, help="documents in the zip")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    parser.add_argument("--quick", action="store_true", help="20 MiB, 30 files")
    args = parser.parse_args(argv)
    if args.quick:
        args.size_mb, args.files = 20.0, 30
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sample, reused = ensure_documents_zip(
        args.cache_dir, files=args.files, size_mb=args.size_mb, corrupt=0
    )
    print(
        f"{'reused' if reused else 'generated'} {sample.path} "
        f"({sample.bytes / MIB:.1f} MiB) in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    print(json.dumps(run(sample.path, sample.bytes, len(sample.members))))


if __name__ == "__main__":
    main()
