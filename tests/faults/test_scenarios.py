"""The fault suite (issue 14): the promise, proved on the in-process stack with faults injected at
the wire (botocore event hooks) or by delivering messages as SQS may — never by patching chute.

No accepted unit is lost; every unit is counted exactly once; a session always reaches a terminal
status; at most one completion notification per completion.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import botocore.endpoint
import botocore.exceptions
import pytest
from botocore.exceptions import ClientError
from chalice.test import Client

from chalicelib.budget import NOTIFY_CLAIM_S
from chalicelib.clock import FakeClock
from chalicelib.completion import complete_if_done
from chalicelib.jobs import BUILT_IN
from chalicelib.models import UnitStatus as S
from chalicelib.services import Services
from chalicelib.store import Outcome
from chalicelib.store.items import UnitPatch
from chalicelib.store.keys import UnitRef
from chalicelib.sweeper import sweep
from chalicelib.worker import process_message
from infra.inprocess import InProcessStack
from infra.model_server import DevModelServer
from infra.resources import LOCAL
from tests.faults.inject import fail_calls, throttle
from tests.integration.conftest import Stack
from tests.integration.test_prompts import post_session

pytestmark = pytest.mark.faults

TERMINAL = {"completed", "completed_with_errors", "failed", "cancelled"}


def prompts_session(stack: Stack, prompts: list[str]) -> str:
    status, created = post_session(stack, {"job_type": "prompts", "prompts": prompts})
    assert status == 201, created
    return str(created["session_id"])


def assert_promise(stack: Stack, sid: str, *, total: int, emails: int = 1) -> dict[str, Any]:
    """Counts add up to the total, nothing is pending or running, the session is terminal, and
    it notified `emails` times."""
    _, summary = stack.get(f"/sessions/{sid}")
    counts = summary["counts"]
    assert summary["total"] == total
    assert sum(counts.values()) == total, counts
    assert (counts["pending"], counts["running"], counts["paused"]) == (0, 0, 0), counts
    assert summary["status"] in TERMINAL, summary
    _, page = stack.get(f"/sessions/{sid}/files?limit=1000")
    statuses = [u["status"] for u in page["items"]]
    assert len(statuses) == total
    assert {s: statuses.count(s) for s in set(statuses)} == {k: v for k, v in counts.items() if v}
    sent = [e for e in stack.emails() if e["MessageAttributes"]["session_id"]["Value"] == sid]
    assert len(sent) == emails, sent
    return dict(summary)


def deliver_each(stack: Stack, function: str, times: int) -> int:
    """Receive every message of the function's queues and hand each batch to its handler `times`
    times before deleting it, as SQS's at-least-once delivery may; until the queues are idle."""
    st = stack.stack
    (route,) = [r for r in st.routes if r.function == function]
    delivered = 0
    while True:
        got = 0
        for url in route.queue_urls:
            messages = st.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                continue
            got += len(messages)
            event = {
                "Records": [
                    {
                        "messageId": m["MessageId"],
                        "receiptHandle": m["ReceiptHandle"],
                        "body": m["Body"],
                        "attributes": m.get("Attributes", {}),
                        "messageAttributes": {},
                        "eventSource": "aws:sqs",
                    }
                    for m in messages
                ]
            }
            failed: set[str] = set()
            for _ in range(times):
                answer = route.handler(event, None)
                failed |= {f["itemIdentifier"] for f in answer["batchItemFailures"]}
            # As ReportBatchItemFailures: a record reported failed stays for a redelivery.
            for m in messages:
                if m["MessageId"] in failed:
                    st.sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    st.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        delivered += got
        if not got:
            return delivered


def test_every_message_delivered_three_times_counts_each_unit_once(stack: Stack) -> None:
    sid = prompts_session(stack, [f"prompt {i}" for i in range(25)] + ["chute:fail=400 no"])

    deliver_each(stack, "on_upload", 3)
    deliver_each(stack, "worker", 3)

    summary = assert_promise(stack, sid, total=26)
    assert (summary["counts"]["completed"], summary["counts"]["failed"]) == (25, 1)
    # Duplicates never reach the model: a unit is claimed once.
    assert stack.stack.model.stats()["requests"] == 26


def test_a_worker_that_dies_after_finishing_leaves_completion_to_the_redelivery(
    stack: Stack,
) -> None:
    sid = prompts_session(stack, ["a", "b", "c"])
    stack.stack.drain("on_upload")
    # Two workers die right after their finish transaction is written: before checking
    # completion and before their message is deleted (the record fails; SQS redelivers it).
    died: list[str] = []
    finishing = threading.local()

    def note_a_finish(params: dict[str, Any], **_: Any) -> None:
        finishing.now = b'"completed"' in params["body"]

    def die_after_finishing(http_response: Any, **_: Any) -> None:
        committed = http_response.status_code == 200
        if len(died) < 2 and committed and getattr(finishing, "now", False):
            died.append("dead")
            raise RuntimeError("the worker died")

    events = stack.stack.services.ddb.meta.events
    events.register("before-call.dynamodb.TransactWriteItems", note_a_finish)
    events.register("after-call.dynamodb.TransactWriteItems", die_after_finishing)

    deliver_each(stack, "worker", 1)  # the failed records are delivered again until done

    assert died == ["dead", "dead"]
    assert_promise(stack, sid, total=3)
    assert stack.stack.model.stats()["requests"] == 3


def test_a_fan_out_that_dies_between_claiming_and_sending_is_finished_by_its_redelivery(
    stack: Stack,
) -> None:
    sid = prompts_session(stack, [f"p{i}" for i in range(12)])
    died = fail_calls(stack.stack.services.sqs, "before-call.sqs.SendMessageBatch", times=1)

    deliver_each(stack, "on_upload", 1)  # the record fails; its redelivery finishes the job
    stack.run_until_idle()

    assert died.count == 1
    assert_promise(stack, sid, total=12)


def status_of(stack: Stack, sid: str) -> str | None:
    code, summary = stack.get(f"/sessions/{sid}")
    return str(summary["status"]) if code == 200 else None  # a read the throttling refused


class _NoSleep:
    """The `time` module as botocore's endpoint sees it, minus the waiting between retries."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(_seconds: float) -> None:
        return None


def test_thirty_percent_of_dynamodb_and_sqs_calls_throttled_lose_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore backs off between retries as it would against AWS (up to seconds each): the
    # same retries, without the wait.
    monkeypatch.setattr(botocore.endpoint, "time", _NoSleep())
    st, services = stack.stack, stack.stack.services
    # SQS time, sped up: a record a throttled handler could not finish comes back at once
    # instead of after the queue's visibility timeout.
    for url in st.provisioned.queue_urls.values():
        st.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
    sid = prompts_session(stack, [f"prompt {i}" for i in range(40)])
    stop_ddb = throttle(services.ddb, rate=0.3, seed=1)
    stop_sqs = throttle(services.sqs, rate=0.3, seed=2)
    stop_source = throttle(st.sqs, rate=0.3, seed=3)  # the event source's receives and deletes
    for _ in range(10):
        try:
            stack.run_until_idle()
        except ClientError:
            continue  # the event source's own receive ran out of retries: it polls again
        if status_of(stack, sid) in TERMINAL:
            break
    throttled_ddb, throttled_sqs = stop_ddb(), stop_sqs() + stop_source()
    # What throttling left behind — a unit whose worker gave up holding its lease, a next
    # attempt whose message was never sent — is the sweeper's: let the leases run out, sweep.
    for _ in range(3):
        services.clock.advance(600)  # type: ignore[attr-defined]
        sweep(services)
        stack.run_until_idle()

    assert throttled_ddb > 50
    assert throttled_sqs > 5
    assert_promise(stack, sid, total=40)


@pytest.mark.slow
def test_pause_then_resume_during_a_300_unit_session_runs_nothing_while_paused(
    stack: Stack,
) -> None:
    sid = prompts_session(stack, [f"prompt {i}" for i in range(300)])
    stack.stack.drain("on_upload")
    model = stack.stack.model
    # Five batches of ten run, then the pause: everything received afterwards is parked.
    assert stack.stack.deliver("worker", batches=5) == 50
    ran_before = model.stats()["requests"]
    stack.client.http.post(f"/sessions/{sid}/pause", headers=stack.auth())

    stack.run_until_idle()
    _, paused = stack.get(f"/sessions/{sid}")
    assert model.stats()["requests"] == ran_before == 50
    assert (paused["counts"]["completed"], paused["counts"]["paused"]) == (50, 250)

    stack.client.http.post(f"/sessions/{sid}/resume", headers=stack.auth())
    stack.run_until_idle()

    assert model.stats()["requests"] == 300
    assert_promise(stack, sid, total=300)


def failed_twice(stack: Stack) -> str:
    """A finished session with two permanent failures, its first email taken."""
    sid = prompts_session(stack, ["ok", "chute:fail=400 a", "chute:fail=400 b"])
    stack.run_until_idle()
    assert len(stack.emails()) == 1
    return sid


def test_cancel_while_retried_units_wait_ends_cancelled(stack: Stack) -> None:
    sid = failed_twice(stack)
    assert stack.client.http.post(f"/sessions/{sid}/retry?all=true", headers=stack.auth())
    # The retried units are pending, their messages queued: the cancel wins them all.
    cancelled = stack.client.http.post(f"/sessions/{sid}/cancel", headers=stack.auth())
    stack.run_until_idle()

    assert cancelled.status_code == 200
    summary = assert_promise(stack, sid, total=3)
    assert (summary["status"], summary["counts"]["cancelled"]) == ("cancelled", 2)


def test_cancel_racing_retry_keeps_the_promise_whichever_wins(stack: Stack) -> None:
    sid = failed_twice(stack)
    raced: list[int] = []

    def cancel_as_the_retry_sends(**_kwargs: Any) -> None:
        if not raced:
            cancel = stack.client.http.post(f"/sessions/{sid}/cancel", headers=stack.auth())
            raced.append(cancel.status_code)

    stack.stack.services.sqs.meta.events.register(
        "before-call.sqs.SendMessageBatch", cancel_as_the_retry_sends
    )
    retry = stack.client.http.post(f"/sessions/{sid}/retry?all=true", headers=stack.auth())
    stack.run_until_idle()

    # The cancel came while the session still looked finished (the retry reopens it after
    # sending): refused, and the retry runs to a second completion with its own email.
    assert (retry.status_code, raced) == (200, [409])
    summary = assert_promise(stack, sid, total=3)
    assert summary["status"] == "completed_with_errors"


@pytest.mark.slow
def test_ten_sessions_of_a_hundred_units_in_parallel(stack: Stack) -> None:
    sids = [prompts_session(stack, [f"s{s} p{i}" for i in range(100)]) for s in range(10)]
    threads = [threading.Thread(target=stack.run_until_idle) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stack.run_until_idle()

    emails = stack.emails()
    for sid in sids:
        _, summary = stack.get(f"/sessions/{sid}")
        assert (summary["status"], summary["counts"]["completed"]) == ("completed", 100)
    assert sorted(e["MessageAttributes"]["session_id"]["Value"] for e in emails) == sorted(sids)


def test_sns_down_for_a_minute_sends_the_email_once_when_it_is_back(stack: Stack) -> None:
    sid = prompts_session(stack, ["a", "b"])
    services = stack.stack.services
    down = {"down": True}

    def unavailable(**_: Any) -> None:
        if down["down"]:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="https://sns")

    services.sns.meta.events.register("before-call.sns.Publish", unavailable)
    stack.run_until_idle()
    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], summary["notified"]) == ("completed", False)
    assert stack.emails() == []
    sweep(services)  # SNS still down: the sweep cannot send either, and says nothing twice
    assert stack.emails() == []

    down["down"] = False
    services.clock.advance(60 + NOTIFY_CLAIM_S)  # type: ignore[attr-defined]
    sweep(services)
    sweep(services)
    stack.run_until_idle()

    assert_promise(stack, sid, total=2, emails=1)
    assert stack.get(f"/sessions/{sid}")[1]["notified"] is True


def test_a_poison_message_is_dead_lettered_and_its_unit_fails_alone(stack: Stack) -> None:
    st, services = stack.stack, stack.stack.services
    for url in st.provisioned.queue_urls.values():  # SQS time, sped up (see the throttling test)
        st.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
    sid = prompts_session(stack, [f"prompt {i}" for i in range(5)])
    poisoned: list[int] = []

    def poison(params: dict[str, Any], **_: Any) -> None:
        # Whenever a worker moves unit 2, its handler crashes before anything is written.
        if b"F#00000#000002" in params["body"]:
            poisoned.append(1)
            raise RuntimeError("poison")

    services.ddb.meta.events.register("before-call.dynamodb.TransactWriteItems", poison)
    for _ in range(10):  # each pass receives the poison message again, up to maxReceiveCount
        stack.run_until_idle()
    services.ddb.meta.events.unregister("before-call.dynamodb.TransactWriteItems", poison)
    dlq = st.provisioned.queue_urls[f"{LOCAL.work_queue.name}-dlq"]
    waiting = st.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
    assert waiting["ApproximateNumberOfMessages"] == "1"

    sweep(services)  # the sweeper reads the dead letters
    stack.run_until_idle()

    assert len(poisoned) == 5  # one per receive, maxReceiveCount of them
    summary = assert_promise(stack, sid, total=5)
    assert (summary["counts"]["completed"], summary["counts"]["failed"]) == (4, 1)
    _, page = stack.get(f"/sessions/{sid}/files?status=failed")
    assert [u["error"]["code"] for u in page["items"]] == ["dead_lettered"]


def test_a_unit_that_runs_past_its_job_types_limit_ends_timeout_in_its_own_count() -> None:
    # A real clock, a one-second limit for every unit, and a model that takes 1.2 s to answer.
    slow = DevModelServer(latency_ms=1200)
    jobs = BUILT_IN.tuned(backoff_base_s=0, unit_timeout_s=1.0)
    with (
        InProcessStack(None, jobs, model=slow, progress_interval_s=0) as st,
        Client(st.app.app) as client,
    ):
        stack = Stack(st, client)
        sid = prompts_session(stack, ["slow one", "slow two"])

        stack.run_until_idle()

        summary = assert_promise(stack, sid, total=2)
        assert (summary["status"], summary["counts"]["timeout"], summary["timed_out"]) == (
            "failed",
            2,
            True,
        )
        _, page = stack.get(f"/sessions/{sid}/files")
        assert {u["error"]["code"] for u in page["items"]} == {"unit_time_limit"}
        assert summary["can_resume"] is True  # a retry may get through


def claimed_by_worker_a(stack: Stack) -> tuple[str, UnitRef, float]:
    """A one-row session whose unit worker A (the stack's clock) has claimed with a 90 s lease
    and is still running; its message is left in the queue, as a duplicate delivery."""
    sid = prompts_session(stack, ["contested"])
    stack.stack.drain("on_upload")
    services = stack.stack.services
    ref, now = UnitRef(sid, 0, 0), services.clock.now()
    lease = UnitPatch(lease_until=now + 90, started_at=now)
    claimed = services.store.move(ref, S.PENDING, S.RUNNING, attempt=0, now=now, patch=lease)
    assert claimed is Outcome.MOVED
    return sid, ref, now


def message_of(stack: Stack) -> str:
    """The one work message waiting."""
    st = stack.stack
    (message,) = st.sqs.receive_message(QueueUrl=st.info()["work_queue_url"])["Messages"]
    return str(message["Body"])


def worker_b(stack: Stack, clock_at: float) -> Services[Any]:
    """Another worker, sharing everything with the stack but its clock."""
    st = stack.stack
    return Services(st.settings, FakeClock(clock_at), st.app_session, st.services.jobs)


def test_a_worker_whose_clock_runs_five_minutes_ahead_takes_over_but_counts_once(
    stack: Stack,
) -> None:
    """Clock skew: worker A claims a unit and is still at it when a duplicate message reaches
    worker B, whose clock is five minutes ahead, so A's 90 s lease looks expired. B takes over
    as attempt 2 and completes; A's late finish, at attempt 1, changes nothing."""
    sid, ref, now = claimed_by_worker_a(stack)
    st, services = stack.stack, stack.stack.services

    process_message(worker_b(stack, now + 300), message_of(stack))  # five minutes ahead

    late = services.store.move(ref, S.RUNNING, S.COMPLETED, attempt=1, now=now + 30)
    assert late is Outcome.STALE  # A's finish: its attempt is no longer the unit's
    summary = assert_promise(stack, sid, total=1)
    (row,) = stack.get(f"/sessions/{sid}/files")[1]["items"]
    assert (summary["counts"]["completed"], row["attempt"]) == (1, 2)
    assert st.model.stats()["requests"] == 1  # only B called the model


def test_a_worker_whose_clock_runs_five_minutes_behind_leaves_a_live_lease_alone(
    stack: Stack,
) -> None:
    sid, ref, now = claimed_by_worker_a(stack)
    st, services = stack.stack, stack.stack.services

    # Five minutes behind: it sees a live lease, a duplicate delivery, and drops it.
    process_message(worker_b(stack, now - 300), message_of(stack))

    assert services.store.move(ref, S.RUNNING, S.COMPLETED, attempt=1, now=now + 30) is not (
        Outcome.STALE
    )
    assert complete_if_done(services, sid)
    summary = assert_promise(stack, sid, total=1)
    assert summary["counts"]["completed"] == 1
    assert st.model.stats()["requests"] == 0  # nobody but A (here, the test) ran it
