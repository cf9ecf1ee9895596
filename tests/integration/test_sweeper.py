"""The sweep finishes what crashes, lost messages and missing uploads would leave hanging."""

from __future__ import annotations

import json

import requests

from chalicelib.clock import FakeClock
from chalicelib.models import UnitStatus
from chalicelib.store import Outcome
from chalicelib.store.items import UnitPatch
from chalicelib.store.keys import UnitRef
from chalicelib.sweeper import sweep
from tests.integration.conftest import Stack

HOUR = 3600.0
S = UnitStatus


def claim(stack: Stack, sid: str, attempt: int, *, lease_s: float = 300.0) -> None:
    """What a worker's claim does, for a worker that then dies."""
    now = stack.stack.services.clock.now()
    patch = UnitPatch(started_at=now, lease_until=now + lease_s)
    moved = stack.stack.services.store.move(
        UnitRef(sid, 0, 0), S.PENDING, S.RUNNING, attempt=attempt - 1, now=now, patch=patch
    )
    assert moved is Outcome.MOVED


def requeue(stack: Stack, sid: str, attempt: int) -> None:
    now = stack.stack.services.clock.now()
    moved = stack.stack.services.store.move(
        UnitRef(sid, 0, 0), S.RUNNING, S.PENDING, attempt=attempt, now=now, due=now + 3 * HOUR
    )
    assert moved is Outcome.MOVED


def test_files_never_uploaded_fail_after_the_deadline_and_the_session_finishes(
    stack: Stack, clock: FakeClock
) -> None:
    manifest = {"files": [{"name": "here.txt", "size": 4}, {"name": "never.txt", "size": 5}]}
    response = stack.client.http.post("/sessions", headers=stack.auth(), body=json.dumps(manifest))
    created = json.loads(response.body)
    sid, ticket = created["session_id"], created["uploads"][0]
    requests.post(ticket["url"], data=ticket["fields"], files={"file": b"here"}, timeout=10)
    stack.run_until_idle()

    early = sweep(stack.stack.services)
    clock.advance(HOUR)
    late = sweep(stack.stack.services)

    assert early.uploads_expired == 0
    assert late.uploads_expired == 1
    _, summary = stack.get(f"/sessions/{sid}")
    assert summary["status"] == "completed_with_errors"
    _, files = stack.get(f"/sessions/{sid}/files?status=failed")
    assert [(r["name"], r["error"]["code"]) for r in files["items"]] == [
        ("never.txt", "upload_missing")
    ]
    assert len(stack.emails()) == 1
    assert sweep(stack.stack.services).uploads_expired == 0


def test_a_unit_whose_worker_and_message_were_lost_is_retried(
    stack: Stack, clock: FakeClock
) -> None:
    sid = stack.create([("a.txt", b"some text")])["session_id"]
    stack.stack.drain("on_upload")
    sqs, url = stack.stack.sqs, stack.stack.settings.work_queue_url
    (lost,) = sqs.receive_message(QueueUrl=url)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=lost["ReceiptHandle"])
    # The worker claimed the unit, then died together with its message.
    claim(stack, sid, 1)

    clock.advance(300 + 60)
    assert sweep(stack.stack.services).units_reset == 0
    clock.advance(120)
    assert sweep(stack.stack.services).units_reset == 1
    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert summary["status"] == "completed"
    _, files = stack.get(f"/sessions/{sid}/files")
    assert files["items"][0]["attempt"] == 2


def test_a_unit_stuck_on_its_last_attempt_ends_as_timeout(stack: Stack, clock: FakeClock) -> None:
    sid = stack.create([("a.txt", b"some text")])["session_id"]
    stack.stack.drain("on_upload")
    sqs, url = stack.stack.sqs, stack.stack.settings.work_queue_url
    (lost,) = sqs.receive_message(QueueUrl=url)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=lost["ReceiptHandle"])
    for attempt in (1, 2):
        claim(stack, sid, attempt)
        requeue(stack, sid, attempt)
    claim(stack, sid, 3)

    clock.advance(HOUR)
    sweep(stack.stack.services)

    _, summary = stack.get(f"/sessions/{sid}")
    assert summary["status"] == "failed"
    assert summary["counts"]["timeout"] == 1
    _, files = stack.get(f"/sessions/{sid}/files")
    assert files["items"][0]["error"]["code"] == "unit_stuck"
    assert len(stack.emails()) == 1


def test_a_notification_that_could_not_be_sent_is_sent_by_the_sweep(
    stack: Stack, clock: FakeClock
) -> None:
    settings = stack.stack.services.settings
    topic = settings.topic_arn
    settings.topic_arn = topic.replace("chute-events", "chute-missing")
    sid = stack.create([("a.txt", b"some text")])["session_id"]
    stack.run_until_idle()
    _, before = stack.get(f"/sessions/{sid}")
    settings.topic_arn = topic

    # The claim of the failed publish is left alone while its publisher might still be retrying.
    clock.advance(60)
    too_early = sweep(stack.stack.services)
    clock.advance(70)
    report = sweep(stack.stack.services)

    assert before["status"] == "completed"
    assert before["notified"] is False
    assert too_early.notifications_sent == 0
    assert report.notifications_sent == 1
    assert len(stack.emails()) == 1
    _, after = stack.get(f"/sessions/{sid}")
    assert after["notified"] is True
    assert sweep(stack.stack.services).notifications_sent == 0


def test_a_dead_lettered_message_fails_its_pending_unit_and_the_session_finishes(
    stack: Stack,
) -> None:
    sid = stack.create([("a.txt", b"some text"), ("b.txt", b"more text")])["session_id"]
    stack.stack.drain("on_upload")
    settings, sqs = stack.stack.settings, stack.stack.sqs
    assert settings.work_dlq_url is not None
    messages = sqs.receive_message(QueueUrl=settings.work_queue_url, MaxNumberOfMessages=10)
    dead, alive = sorted(messages["Messages"], key=lambda m: json.loads(m["Body"])["file"])
    # What SQS's redrive does after maxReceiveCount failed deliveries.
    sqs.send_message(QueueUrl=settings.work_dlq_url, MessageBody=dead["Body"])
    sqs.delete_message(QueueUrl=settings.work_queue_url, ReceiptHandle=dead["ReceiptHandle"])
    sqs.change_message_visibility(
        QueueUrl=settings.work_queue_url, ReceiptHandle=alive["ReceiptHandle"], VisibilityTimeout=0
    )

    report = sweep(stack.stack.services)
    stack.run_until_idle()

    assert report.dead_letters == 1
    _, summary = stack.get(f"/sessions/{sid}")
    assert summary["status"] == "completed_with_errors"
    _, files = stack.get(f"/sessions/{sid}/files")
    assert [(r["status"], (r["error"] or {}).get("code")) for r in files["items"]] == [
        ("failed", "dead_lettered"),
        ("completed", None),
    ]
    assert files["items"][0]["retryable"] is True
    assert len(stack.emails()) == 1
    assert sweep(stack.stack.services).dead_letters == 0
