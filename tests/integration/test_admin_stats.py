"""The operator's view, `GET /admin/stats`: operators only; queues, the sessions under way and
their units, throughput, failures by code and stuck work, read from the lists — exact values."""

from __future__ import annotations

import json
from typing import Any

import requests

from chalicelib.budget import STUCK_GRACE_S
from chalicelib.clock import FakeClock
from chalicelib.store.keys import DUE_SHARDS, due_shard
from tests.integration.conftest import Stack
from tests.integration.test_control import control, prompts_session
from tests.integration.test_sweeper import claim, lost_leases


def stats(stack: Stack, *, admin: bool = True) -> tuple[int, Any]:
    token = stack.token("ops", admin=admin)
    response = stack.client.http.get("/admin/stats", headers={"Authorization": f"Bearer {token}"})
    return response.status_code, json.loads(response.body)


def half_uploaded(stack: Stack) -> str:
    """A documents session of two files of which only a broken PDF arrived: under way."""
    manifest = {"files": [{"name": "bad.pdf", "size": 15}, {"name": "later.txt", "size": 5}]}
    response = stack.client.http.post("/sessions", headers=stack.auth(), body=json.dumps(manifest))
    created = json.loads(response.body)
    ticket = created["uploads"][0]
    posted = requests.post(
        ticket["url"], data=ticket["fields"], files={"file": b"%PDF-1.4 broken"}, timeout=10
    )
    assert posted.status_code == 204
    return str(created["session_id"])


def test_the_operators_view_is_for_operators_only(stack: Stack) -> None:
    status, body = stats(stack, admin=False)

    assert (status, body["error"]["code"]) == (403, "admin_only")


def test_the_operators_view_counts_what_is_under_way(stack: Stack) -> None:
    paused = prompts_session(stack, 4)
    control(stack, paused, "pause")
    half_uploaded(stack)
    finished = stack.create([("done.txt", b"all good")])["session_id"]
    stack.run_until_idle()
    assert stack.get(f"/sessions/{finished}")[1]["status"] == "completed"

    status, body = stats(stack)

    assert status == 200
    assert [
        (q["name"], q["visible"], q["in_flight"], q["oldest_age_s"]) for q in body["queues"]
    ] == [
        ("chute-uploads", 0, 0, None),
        ("chute-work", 0, 0, None),
        ("chute-work-high", 0, 0, None),
        ("chute-uploads-dlq", 0, 0, None),
        ("chute-work-dlq", 0, 0, None),
        ("chute-work-high-dlq", 0, 0, None),
    ]
    assert body["sessions"] == {
        "active": 2,
        "by_status": {"paused": 1, "processing": 1},
        "truncated": False,
    }
    assert body["units"] == {"by_status": {"failed": 1, "paused": 4}}
    assert body["throughput"] == {"window_s": 300.0, "units_finished": 1}
    assert body["failures_by_code"] == {"pdf_unreadable": 1}
    assert body["stuck"] == {"leases_expired": 0, "retries_overdue": 0, "fanouts_unsent": 0}


def test_the_operators_view_shows_a_lease_nobody_gave_back(stack: Stack, clock: FakeClock) -> None:
    sid = stack.create([("a.txt", b"some text")])["session_id"]
    stack.stack.drain("on_upload")
    sqs, url = stack.stack.sqs, stack.stack.settings.work_queue_url
    (lost,) = sqs.receive_message(QueueUrl=url)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=lost["ReceiptHandle"])
    claim(stack, sid, 1, lease_s=60)  # the worker claimed it and died with its message

    clock.advance(60 + STUCK_GRACE_S + 1)
    _, body = stats(stack)

    assert body["stuck"] == {"leases_expired": 1, "retries_overdue": 0, "fanouts_unsent": 0}
    assert body["units"] == {"by_status": {"running": 1}}
    assert body["throughput"]["units_finished"] == 0


def test_the_operators_view_counts_stuck_leases_on_every_shard(
    stack: Stack, clock: FakeClock
) -> None:
    _sid, refs = lost_leases(stack, 30, lease_s=60)
    assert {due_shard(r.key) for r in refs} == set(range(DUE_SHARDS))

    clock.advance(60 + STUCK_GRACE_S + 1)
    _, body = stats(stack)

    assert body["stuck"] == {"leases_expired": 30, "retries_overdue": 0, "fanouts_unsent": 0}
    assert body["units"] == {"by_status": {"running": 30}}
    assert body["sessions"]["active"] == 1
