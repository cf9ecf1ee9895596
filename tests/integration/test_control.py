"""Steering a session through the API (DESIGN §4): pause, resume, cancel — every move counted,
nothing run while paused, one notification per ending."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from chalicelib.clock import FakeClock
from chalicelib.completion import complete_if_done
from chalicelib.models import SessionState
from chalicelib.models import UnitStatus as S
from chalicelib.store import Outcome
from chalicelib.store.items import UnitPatch
from chalicelib.store.keys import UnitRef
from chalicelib.sweeper import sweep
from tests.faults.inject import Injected, fail_calls
from tests.integration.conftest import Stack
from tests.integration.test_prompts import post_session


def control(stack: Stack, sid: str, action: str, user: str = "alice") -> tuple[int, Any]:
    response = stack.client.http.post(f"/sessions/{sid}/{action}", headers=stack.auth(user))
    return response.status_code, json.loads(response.body)


def prompts_session(stack: Stack, n: int) -> str:
    status, created = post_session(
        stack, {"job_type": "prompts", "prompts": [f"prompt {i}" for i in range(n)]}
    )
    assert status == 201, created
    stack.stack.drain("on_upload")  # fanned out: every unit pending, its message queued
    return str(created["session_id"])


def counts(stack: Stack, sid: str) -> dict[str, int]:
    _, summary = stack.get(f"/sessions/{sid}")
    return {k: v for k, v in summary["counts"].items() if v}


def test_a_paused_session_runs_nothing_parks_its_units_and_resumes_them_all(stack: Stack) -> None:
    sid = prompts_session(stack, 5)

    status, paused = control(stack, sid, "pause")
    assert (status, paused["status"], paused["pause_reason"], paused["can_resume"]) == (
        200,
        "paused",
        "requested",
        True,
    )
    stack.run_until_idle()  # every message arrives while paused

    assert counts(stack, sid) == {"paused": 5}
    assert stack.stack.model.stats()["requests"] == 0
    assert stack.emails() == []  # a paused session never completes

    status, resumed = control(stack, sid, "resume")
    assert (status, resumed["status"], resumed["pause_reason"]) == (200, "processing", None)
    assert counts(stack, sid) == {"pending": 5}
    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], summary["counts"]["completed"]) == ("completed", 5)
    # Parked and resumed units are still on their first attempt: parking is not a try.
    _, page = stack.get(f"/sessions/{sid}/files")
    assert [u["attempt"] for u in page["items"]] == [1, 1, 1, 1, 1]
    assert stack.stack.model.stats()["requests"] == 5
    assert len(stack.emails()) == 1


def test_controls_are_idempotent_and_a_finished_session_refuses_them(stack: Stack) -> None:
    sid = prompts_session(stack, 2)
    assert control(stack, sid, "resume")[0] == 200  # active already: nothing to do
    assert control(stack, sid, "pause")[0] == 200
    assert control(stack, sid, "pause")[0] == 200
    assert control(stack, sid, "resume")[0] == 200
    stack.run_until_idle()

    for action in ("pause", "resume", "cancel"):
        status, error = control(stack, sid, action)
        assert (status, error["error"]["code"], error["error"]["details"]) == (
            409,
            "invalid_state",
            {"status": "completed"},
        )


def test_cancel_ends_a_session_with_nothing_running_at_once_with_one_event(stack: Stack) -> None:
    sid = prompts_session(stack, 4)

    status, cancelled = control(stack, sid, "cancel")

    assert (status, cancelled["status"], cancelled["progress"]) == (200, "cancelled", 100.0)
    assert counts(stack, sid) == {"cancelled": 4}
    stack.run_until_idle()  # the queued messages find their units cancelled
    assert counts(stack, sid) == {"cancelled": 4}
    assert stack.stack.model.stats()["requests"] == 0
    (email,) = stack.emails()
    assert email["MessageAttributes"]["event"]["Value"] == "session.cancelled"
    assert "was cancelled" in email["Message"]
    assert control(stack, sid, "cancel")[0] == 200
    assert control(stack, sid, "resume")[1]["error"]["details"] == {"status": "cancelled"}
    assert stack.emails() == []


def test_a_paused_session_can_be_cancelled(stack: Stack) -> None:
    sid = prompts_session(stack, 3)
    control(stack, sid, "pause")
    stack.run_until_idle()

    _, cancelled = control(stack, sid, "cancel")

    assert (cancelled["status"], counts(stack, sid)) == ("cancelled", {"cancelled": 3})


def test_a_cancelled_session_ends_when_its_running_unit_finishes(stack: Stack) -> None:
    sid = prompts_session(stack, 3)
    services = stack.stack.services
    running = UnitRef(sid, 0, 1)
    lease = UnitPatch(lease_until=services.clock.now() + 90)
    assert services.store.move(running, S.PENDING, S.RUNNING, attempt=0, now=1.0, patch=lease) is (
        Outcome.MOVED
    )

    _, cancelling = control(stack, sid, "cancel")
    assert (cancelling["status"], counts(stack, sid)) == (
        "cancelling",
        {"running": 1, "cancelled": 2},
    )
    assert stack.emails() == []

    finished = services.store.move(running, S.RUNNING, S.COMPLETED, attempt=1, now=2.0)
    assert finished is Outcome.LAST_IN_SHARD
    assert complete_if_done(services, sid)  # what the finisher of the last running unit does
    stack.run_until_idle()  # the other units' messages find them cancelled

    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], counts(stack, sid)) == (
        "cancelled",
        {"completed": 1, "cancelled": 2},
    )
    assert [e["MessageAttributes"]["event"]["Value"] for e in stack.emails()] == [
        "session.cancelled"
    ]


def test_cancelling_before_the_upload_claims_the_file_and_its_late_upload_is_not_read(
    stack: Stack,
) -> None:
    response = stack.client.http.post(
        "/sessions",
        headers=stack.auth(),
        body=json.dumps({"files": [{"name": "a.txt", "size": 5, "content_type": "text/plain"}]}),
    )
    created = json.loads(response.body)
    sid = created["session_id"]

    _, cancelled = control(stack, sid, "cancel")
    assert (cancelled["status"], cancelled["total"], cancelled["files_received"]) == (
        "cancelled",
        0,
        1,
    )

    (ticket,) = created["uploads"]
    posted = requests.post(
        ticket["url"], data=ticket["fields"], files={"file": b"hello"}, timeout=10
    )
    assert posted.status_code == 204
    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], summary["total"]) == ("cancelled", 0)
    assert len(stack.emails()) == 1


def test_a_unit_parked_as_the_session_resumes_is_put_back_by_its_worker(stack: Stack) -> None:
    """The race: a resume lists the parked units, and a worker parks one more just after. The
    worker looks at the session again after parking, and sends it back to work itself."""
    sid = prompts_session(stack, 1)
    control(stack, sid, "pause")
    store = stack.stack.services.store
    resumed: list[bool] = []

    def resume_before_the_park(params: dict[str, Any], **_: Any) -> None:
        if not resumed and b'"paused"' in params["body"]:
            # The resume happens here: state active, and no unit parked yet to list.
            resumed.append(store.set_state(sid, {SessionState.PAUSED}, SessionState.ACTIVE, now=5))

    store._table.ddb.meta.events.register(
        "before-call.dynamodb.TransactWriteItems", resume_before_the_park
    )
    stack.run_until_idle()

    assert resumed == [True]
    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], counts(stack, sid)) == ("completed", {"completed": 1})


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
def test_someone_elses_session_is_not_found(stack: Stack, action: str) -> None:
    sid = prompts_session(stack, 1)
    status, error = control(stack, sid, action, user="mallory")
    assert (status, error["error"]["code"]) == (404, "session_not_found")


def test_retry_puts_back_only_what_failed_keeps_positions_and_completes_again(
    stack: Stack,
) -> None:
    prompts = ["fine", "chute:fail=400 refused", "also fine", "chute:flaky=3 then fine"]
    status, created = post_session(stack, {"job_type": "prompts", "prompts": prompts})
    assert status == 201
    sid = created["session_id"]
    stack.run_until_settled(sid)
    _, first = stack.get(f"/sessions/{sid}")
    # The flaky row ran out of its 3 attempts (503 each time): retryable; the 400 is not.
    assert (first["status"], counts(stack, sid)) == (
        "completed_with_errors",
        {"completed": 2, "failed": 2},
    )
    assert len(stack.emails()) == 1

    status, reopened = control(stack, sid, "retry")
    assert (status, reopened["status"], reopened["done_at"], reopened["notified"]) == (
        200,
        "processing",
        None,
        False,
    )
    assert counts(stack, sid) == {"completed": 2, "failed": 1, "pending": 1}
    stack.run_until_idle()

    _, again = stack.get(f"/sessions/{sid}")
    assert (again["status"], counts(stack, sid)) == (
        "completed_with_errors",
        {"completed": 3, "failed": 1},
    )
    _, page = stack.get(f"/sessions/{sid}/files")
    assert [(u["name"], u["status"], u["attempt"]) for u in page["items"]] == [
        ("row 1: fine", "completed", 1),
        ("row 2: chute:fail=400 refused", "failed", 1),
        ("row 3: also fine", "completed", 1),
        ("row 4: chute:flaky=3 then fine", "completed", 1),  # attempts start again at 1
    ]
    (email,) = stack.emails()  # the second completion's own notification
    assert "3 of 4 rows completed" in email["Message"]

    # ?all=true retries the permanent failure too; it fails the same way, and notifies again.
    assert control(stack, sid, "retry?all=true")[0] == 200
    stack.run_until_idle()
    assert counts(stack, sid) == {"completed": 3, "failed": 1}
    assert len(stack.emails()) == 1


def test_retry_of_a_session_with_nothing_failed_changes_nothing(stack: Stack) -> None:
    sid = prompts_session(stack, 2)
    stack.run_until_idle()
    stack.emails()

    status, summary = control(stack, sid, "retry")

    assert (status, summary["status"], summary["notified"]) == (200, "completed", True)
    assert stack.emails() == []


def test_a_cancelled_session_cannot_be_retried(stack: Stack) -> None:
    sid = prompts_session(stack, 1)
    control(stack, sid, "cancel")
    status, error = control(stack, sid, "retry")
    assert (status, error["error"]["details"]) == (409, {"status": "cancelled"})


def test_retried_units_that_finish_before_the_session_reopens_still_complete_it(
    stack: Stack,
) -> None:
    """The race: the retried units' messages are sent before META reopens, and a fast worker can
    finish them all while the session still looks done (so no finisher claims completion). The
    retry checks completion itself after reopening."""
    _, created = post_session(stack, {"job_type": "prompts", "prompts": ["ok", "chute:flaky=3 x"]})
    sid = created["session_id"]
    stack.run_until_settled(sid)
    stack.emails()
    drained: list[int] = []

    def work_before_the_reopening(params: dict[str, Any], **_: Any) -> None:
        if not drained and b"completions" in params["body"]:
            drained.append(stack.stack.drain("worker"))

    ddb = stack.stack.services.ddb  # the store's client: a fault injected at the wire
    ddb.meta.events.register("before-call.dynamodb.UpdateItem", work_before_the_reopening)
    _, summary = control(stack, sid, "retry")

    assert drained == [1]
    assert (summary["status"], counts(stack, sid)) == ("completed", {"completed": 2})
    assert len(stack.emails()) == 1


def test_a_session_that_keeps_failing_pauses_itself_and_a_resume_goes_on(stack: Stack) -> None:
    # 20 refusals first: once 20 units have finished, half or more of them failed.
    prompts = [f"chute:fail=400 #{i}" for i in range(20)] + [f"fine #{i}" for i in range(10)]
    _, created = post_session(stack, {"job_type": "prompts", "prompts": prompts})
    sid = created["session_id"]

    stack.run_until_idle()

    _, paused = stack.get(f"/sessions/{sid}")
    assert (paused["status"], paused["pause_reason"], paused["can_resume"]) == (
        "paused",
        "failure_rate",
        True,
    )
    assert counts(stack, sid) == {"failed": 20, "paused": 10}
    assert stack.stack.model.stats()["requests"] == 20
    assert stack.emails() == []

    _, resumed = control(stack, sid, "resume")
    assert resumed["pause_reason"] is None
    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], counts(stack, sid)) == (
        "completed_with_errors",
        {"completed": 10, "failed": 20},
    )
    assert len(stack.emails()) == 1


def test_a_session_whose_last_unit_finished_while_paused_completes_on_resume(
    stack: Stack,
) -> None:
    sid = prompts_session(stack, 1)
    services = stack.stack.services
    only = UnitRef(sid, 0, 0)
    lease = UnitPatch(lease_until=services.clock.now() + 90)
    services.store.move(only, S.PENDING, S.RUNNING, attempt=0, now=1.0, patch=lease)
    control(stack, sid, "pause")
    services.store.move(only, S.RUNNING, S.COMPLETED, attempt=1, now=2.0)
    assert not complete_if_done(services, sid)  # paused: the finisher cannot complete it

    _, summary = control(stack, sid, "resume")

    assert summary["status"] == "completed"
    assert len(stack.emails()) == 1


def fail_the_third_transaction(stack: Stack) -> Injected:
    """The control's request dies half-way (on AWS: API Gateway's 29 s on a large session)."""
    seen = iter(range(1_000))
    return fail_calls(
        stack.stack.services.ddb,
        "before-call.dynamodb.TransactWriteItems",
        when=lambda _params: next(seen) == 2,
    )


def test_a_cancel_whose_request_died_half_way_is_finished_by_the_sweeper(
    stack: Stack, clock: FakeClock
) -> None:
    sid = prompts_session(stack, 6)
    control(stack, sid, "pause")
    stack.run_until_idle()
    died = fail_the_third_transaction(stack)

    status, body = control(stack, sid, "cancel")

    assert (died.count, status, body["error"]["code"]) == (1, 500, "internal_error")
    _, summary = stack.get(f"/sessions/{sid}")
    # One unit per counter shard here: a unit's cancel is two transactions (see
    # Transitions.move), so the third fails the second unit.
    assert (summary["status"], counts(stack, sid)) == ("cancelling", {"cancelled": 1, "paused": 5})

    clock.advance(3600)
    report = sweep(stack.stack.services)

    assert report.controls_finished == 1
    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], counts(stack, sid)) == ("cancelled", {"cancelled": 6})
    assert [e["MessageAttributes"]["event"]["Value"] for e in stack.emails()] == [
        "session.cancelled"
    ]


def test_a_resume_whose_request_died_half_way_is_finished_by_the_sweeper(
    stack: Stack, clock: FakeClock
) -> None:
    sid = prompts_session(stack, 6)
    control(stack, sid, "pause")
    stack.run_until_idle()
    fail_the_third_transaction(stack)

    status, _ = control(stack, sid, "resume")
    stack.run_until_idle()

    # Two units were put back before the request died, their messages not yet sent: they are
    # listed for the sweeper, which sends them once overdue.
    assert status == 500
    assert counts(stack, sid) == {"pending": 2, "paused": 4}

    clock.advance(3600)
    report = sweep(stack.stack.services)
    stack.run_until_idle()

    assert (report.controls_finished, report.retries_resent) == (1, 2)
    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], counts(stack, sid)) == ("completed", {"completed": 6})
    assert len(stack.emails()) == 1
