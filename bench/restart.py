"""A restart of the embedded stack with a large session: how long saving and starting take.

Run: .venv/bin/python -m bench.restart [--units 10000]

Starts the local stack (infra.local.LocalStack, persisting under a scratch directory) without its
dispatcher, uploads a zip of `--units` small documents and fans it out in this process, so the
state holds that many pending units and as many queued work messages. Stops the stack (a clean
snapshot of moto's state, infra.snapshot), starts it again and reads the session back. Reports the
snapshot's size and save time, the start time of an empty stack and of the restored one, and
whether the restored session answers as before.

Prints one JSON line. Goal: a restart with 10,000 units starts in under 10 s.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GOAL_START_S = 10.0


def run(units: int) -> dict[str, Any]:
    from bench.capacity import logs_to_stderr
    from chalicelib.config import WorkSettings
    from chalicelib.fanout import fan_out_object
    from chalicelib.models import FileSpec
    from chalicelib.presign import upload_key
    from chalicelib.services import get_services
    from chute_cli.client import ChuteClient
    from chute_cli.samples import tiny_text_zip
    from infra.local import LocalStack

    logs_to_stderr()
    data = tiny_text_zip(units)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        stack = LocalStack(root, api_port=0, persist=True, start_dispatcher=False)
        stack.start()
        empty_start_s = time.perf_counter() - started
        try:
            client = ChuteClient(stack.info["api_url"], stack.info["token"], timeout=600)
            created = client.create_session(
                [FileSpec(name="notes.zip", size=len(data), content_type="application/zip")]
            )
            with tempfile.NamedTemporaryFile(suffix=".zip") as upload:
                upload.write(data)
                upload.flush()
                client.upload(created.uploads[0], Path(upload.name), "application/zip")
            sid = created.session_id
            fan_out_object(get_services(WorkSettings), upload_key(sid, 0, "notes.zip"), len(data))
            before, _ = client.get_session(sid)
        finally:
            started = time.perf_counter()
            stack.stop()
            stop_s = time.perf_counter() - started
        snapshot = root / ".chute" / "state" / "aws.pickle"
        snapshot_bytes = snapshot.stat().st_size
        started = time.perf_counter()
        with LocalStack(root, api_port=0, persist=True, start_dispatcher=False) as again:
            restart_s = time.perf_counter() - started
            restored = again.info["restored"]
            client = ChuteClient(again.info["api_url"], again.info["token"], timeout=600)
            after, _ = client.get_session(sid)
            files = client.list_files(sid, limit=5)
    assert before is not None
    assert after is not None
    return {
        "bench": "restart",
        "units": before["total"],
        "snapshot_mb": round(snapshot_bytes / 2**20, 2),
        "stop_with_snapshot_s": round(stop_s, 2),
        "empty_start_s": round(empty_start_s, 2),
        "restart_s": round(restart_s, 2),
        "restore_s": restored["seconds"],
        "same_summary": {k: v for k, v in after.items() if k != "eta_seconds"}
        == {k: v for k, v in before.items() if k != "eta_seconds"},
        "units_listed": len(files["items"]),
        "goals": {"restart_lt_10s": restart_s < GOAL_START_S},
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=10_000)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.units)))


if __name__ == "__main__":
    main()
