"""The sweep finishes what crashes, lost messages and missing uploads would leave hanging."""

from __future__ import annotations

import json

import pytest
import requests

from chalicelib.budget import FANOUT_GRACE_S, NOTIFY_CLAIM_S, RECHECK_S, STUCK_GRACE_S
from chalicelib.clock import FakeClock
from chalicelib.models import UnitStatus
from chalicelib.store import Outcome
from chalicelib.store.items import NotificationItem, UnitPatch
from chalicelib.store.keys import DUE_SHARDS, DueList, UnitRef, due_shard
from chalicelib.store.table import CONFLICT_ATTEMPTS
from chalicelib.sweeper import sweep
from tests.factories import declared, meta
from tests.faults.inject import fail_calls, inject_conflicts
from tests.integration.conftest import Stack
from tests.integration.test_pipeline import zip_of

HOUR = 3600.0
S = UnitStatus
ZERO = {s.value: 0 for s in UnitStatus}


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


def test_an_upload_arriving_after_the_sweeper_failed_it_adds_no_uncounted_units(
    stack: Stack, clock: FakeClock
) -> None:
    """Hole 3: the fan-out's recovery path used to write and send its own plan for a file the
    sweeper had claimed as missing: units never counted, counters below zero, completed > total."""
    archive = zip_of({"a.txt": b"alpha", "b.txt": b"beta", "c.txt": b"gamma"})
    manifest = {"files": [{"name": "late.zip", "size": len(archive)}]}
    response = stack.client.http.post("/sessions", headers=stack.auth(), body=json.dumps(manifest))
    created = json.loads(response.body)
    sid, ticket = created["session_id"], created["uploads"][0]
    clock.advance(HOUR)
    assert sweep(stack.stack.services).uploads_expired == 1

    posted = requests.post(
        ticket["url"], data=ticket["fields"], files={"file": archive}, timeout=10
    )
    stack.run_until_idle()

    assert posted.status_code == 204
    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], summary["total"], summary["progress"]) == ("failed", 1, 100.0)
    assert summary["counts"] == {**ZERO, "failed": 1}
    _, files = stack.get(f"/sessions/{sid}/files")
    assert [(r["name"], r["error"]["code"]) for r in files["items"]] == [
        ("late.zip", "upload_missing")
    ]
    assert len(stack.emails()) == 1


def test_a_claimed_file_whose_units_were_never_sent_is_finished_by_the_sweep(
    stack: Stack, clock: FakeClock
) -> None:
    """Hole 6: the fan-out claimed the file and crashed before sending, and its event was lost
    (the uploads DLQ was read by nobody): the units waited forever."""
    fail_calls(stack.stack.services.sqs, "before-call.sqs.SendMessageBatch")
    sid = stack.create([("a.txt", b"some text")])["session_id"]
    stack.stack.drain("on_upload")
    # The event's redelivery waits out the uploads queue's visibility timeout (1.5 h): as if gone.

    early = sweep(stack.stack.services)
    clock.advance(FANOUT_GRACE_S + 1)
    late = sweep(stack.stack.services)
    stack.run_until_idle()

    assert (early.fanouts_finished, late.fanouts_finished) == (0, 1)
    _, summary = stack.get(f"/sessions/{sid}")
    assert summary["status"] == "completed"
    assert len(stack.emails()) == 1


def test_an_upload_event_that_was_dead_lettered_is_tried_once_more_then_fails_its_file(
    stack: Stack,
) -> None:
    settings, sqs = stack.stack.settings, stack.stack.sqs
    assert settings.uploads_dlq_url is not None
    ok = stack.create([("a.txt", b"some text")])["session_id"]
    gone = stack.create([("b.zip", zip_of({"x.txt": b"x"}))])["session_id"]
    events = sqs.receive_message(QueueUrl=stack.stack.uploads_queue_url, MaxNumberOfMessages=10)
    for message in events["Messages"]:
        # What SQS's redrive does after maxReceiveCount failed fan-outs.
        sqs.send_message(QueueUrl=settings.uploads_dlq_url, MessageBody=message["Body"])
        sqs.delete_message(
            QueueUrl=stack.stack.uploads_queue_url, ReceiptHandle=message["ReceiptHandle"]
        )
    services = stack.stack.services
    services.s3.delete_object(Bucket=settings.bucket, Key=f"uploads/{gone}/00000/b.zip")

    report = sweep(services)
    stack.run_until_idle()

    assert report.upload_dead_letters == 2
    assert stack.get(f"/sessions/{ok}")[1]["status"] == "completed"
    _, files = stack.get(f"/sessions/{gone}/files")
    assert [(r["name"], r["status"], r["error"]["code"]) for r in files["items"]] == [
        ("b.zip", "failed", "fanout_failed")
    ]
    assert stack.get(f"/sessions/{gone}")[1]["status"] == "failed"


def test_a_session_whose_completion_nobody_claimed_is_completed_by_the_sweep(
    stack: Stack, clock: FakeClock
) -> None:
    """Hole 6: every shard empty, done_at never set (the finisher died and its message is gone)."""
    sid = stack.create([("a.txt", b"some text")])["session_id"]
    inject_conflicts(
        stack.stack.services.ddb,
        when=lambda request: any("ConditionCheck" in i for i in request["TransactItems"]),
        limit=CONFLICT_ATTEMPTS,
    )
    stack.run_until_idle()
    work = stack.stack.settings.work_queue_url
    stack.stack.sqs.purge_queue(QueueUrl=work)  # the redelivery is lost too
    _, stuck = stack.get(f"/sessions/{sid}")

    clock.advance(HOUR)
    report = sweep(stack.stack.services)

    assert (stuck["status"], stuck["progress"]) == ("processing", 100.0)
    assert report.sessions_completed == 1
    assert stack.get(f"/sessions/{sid}")[1]["status"] == "completed"
    assert len(stack.emails()) == 1


def test_one_failing_item_does_not_stop_the_sweep(stack: Stack, clock: FakeClock) -> None:
    manifest = {"files": [{"name": "never.txt", "size": 5}]}
    sids = [
        json.loads(
            stack.client.http.post(
                "/sessions", headers=stack.auth(), body=json.dumps(manifest)
            ).body
        )["session_id"]
        for _ in range(3)
    ]
    clock.advance(HOUR)
    services = stack.stack.services
    fail_calls(services.ddb, "before-call.dynamodb.TransactWriteItems", times=1)

    report = sweep(services)

    assert (report.errors, report.uploads_expired) == (1, 2)
    statuses = [stack.get(f"/sessions/{s}")[1]["status"] for s in sids]
    assert sorted(statuses) == ["failed", "failed", "uploading"]
    clock.advance(RECHECK_S + 1)
    assert sweep(services).uploads_expired == 1


@pytest.mark.slow  # some 1,000 due items through the in-process stack: about 30 s
def test_every_due_item_is_swept_not_only_the_first_page(stack: Stack, clock: FakeClock) -> None:
    services = stack.stack.services
    for n in range(130):
        services.store.put_session(
            meta(f"bulk{n}", now=clock.now()), [declared(f"bulk{n}", 0)], first_check=clock.now()
        )
    clock.advance(HOUR)

    report = sweep(services)

    assert report.uploads_expired == 130


def test_a_notification_still_being_published_is_not_published_again(
    stack: Stack, clock: FakeClock
) -> None:
    """Hole 7: the sweep re-published 60 s after the claim while the worker might still be in
    SNS's retries, and every re-send added another in-app item."""
    services = stack.stack.services
    sid = stack.create([("a.txt", b"some text")])["session_id"]
    fail_calls(services.sns, "before-call.sns.Publish")
    stack.run_until_idle()  # claimed the event, then the publish failed

    clock.advance(60)
    during = sweep(services)
    clock.advance(NOTIFY_CLAIM_S)
    after = sweep(services)
    again = sweep(services)

    assert (during.notifications_sent, after.notifications_sent) == (0, 1)
    assert again.notifications_sent == 0
    assert len(stack.emails()) == 1
    items = services.ddb.query(
        TableName=services.settings.table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :n)",
        ExpressionAttributeValues={":pk": {"S": "U#alice"}, ":n": {"S": "N#"}},
    )["Items"]
    assert [i["event"]["S"] for i in items] == ["session.started", "session.completed"]
    assert all(sid in i["SK"]["S"] for i in items)


def test_the_in_app_notification_of_a_completion_is_one_item_however_often_it_is_sent(
    stack: Stack,
) -> None:
    services = stack.stack.services
    sid = stack.create([("a.txt", b"some text")])["session_id"]
    stack.run_until_idle()
    view = services.store.load_session(sid, consistent=True)
    assert view is not None

    notification = NotificationItem(
        owner="alice", session_id=sid, event="session.completed", subject="s", message="m",
        created_at=view.meta.done_at or 0, expires_at=view.meta.expires_at,
    )  # fmt: skip
    services.store.put_notification(notification)

    items = services.ddb.query(
        TableName=services.settings.table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :n)",
        ExpressionAttributeValues={":pk": {"S": "U#alice"}, ":n": {"S": "N#"}},
    )["Items"]
    assert [i["event"]["S"] for i in items] == ["session.started", "session.completed"]


def lost_leases(stack: Stack, members: int, *, lease_s: float = 300.0) -> tuple[str, list[UnitRef]]:
    """A zip of `members` documents fanned out; every unit claimed by a worker that then died
    with its message. The first unit is listed as before the due lists were sharded."""
    archive = zip_of({f"m{i:02d}.txt": b"some text" for i in range(members)})
    sid = stack.create([("many.zip", archive)])["session_id"]
    stack.stack.drain("on_upload")
    stack.stack.sqs.purge_queue(QueueUrl=stack.stack.settings.work_queue_url)
    services = stack.stack.services
    now = services.clock.now()
    refs = [UnitRef(sid, 0, i) for i in range(members)]
    for ref in refs:
        patch = UnitPatch(started_at=now, lease_until=now + lease_s)
        moved = services.store.move(ref, S.PENDING, S.RUNNING, attempt=0, now=now, patch=patch)
        assert moved is Outcome.MOVED
    services.store._table.update(
        refs[0].key, "SET #GSI2PK = :unsharded", values={":unsharded": DueList.LEASE.value}
    )
    return sid, refs


def test_the_sweep_finds_lost_leases_on_every_shard_and_under_the_unsharded_key(
    stack: Stack, clock: FakeClock
) -> None:
    # Any session's 30 units cover every shard (under crc32 a unit's shard is a constant of the
    # session XOR one of its fixed-length rest of key), the unsharded first one aside.
    sid, refs = lost_leases(stack, 30)
    assert {due_shard(r.key) for r in refs[1:]} == set(range(DUE_SHARDS))

    clock.advance(300 + STUCK_GRACE_S + 1)
    report = sweep(stack.stack.services)
    again = sweep(stack.stack.services)
    stack.run_until_idle()

    assert (report.units_reset, report.errors, again.units_reset) == (30, 0, 0)
    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], summary["counts"]["completed"]) == ("completed", 30)
    _, files = stack.get(f"/sessions/{sid}/files")
    assert [u["attempt"] for u in files["items"]] == [2] * 30
