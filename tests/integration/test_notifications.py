"""Notifications people steer (DESIGN §7): preferences, the events a session sends by email and to
the in-app list, a session's own choice, and what an email says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.clock import FakeClock
from chalicelib.jobs import BUILT_IN
from infra.inprocess import InProcessStack
from tests.faults.inject import fail_calls
from tests.integration.conftest import Stack

ALL_EVENTS = [
    "session.started",
    "session.milestone_25",
    "session.milestone_50",
    "session.milestone_75",
    "session.completed",
    "session.completed_with_errors",
    "session.failed",
    "session.cancelled",
    "session.rejected",
    "session.paused",
]
TERMINAL = ALL_EVENTS[4:9]


@pytest.fixture
def stack(clock: FakeClock) -> Iterator[Stack]:
    # Links to a public page; rows answered one at a time, so that which milestones a session
    # passes before it ends does not depend on two rows finishing at once (the last one to
    # finish ends the session, and a milestone is not told after the ending).
    with (
        InProcessStack(
            clock,
            BUILT_IN.tuned(backoff_base_s=0),
            progress_interval_s=0,
            public_url="https://chute.example",
            model_concurrency=1,
        ) as stack,
        Client(stack.app.app) as client,
    ):
        yield Stack(stack, client)


def put_preferences(stack: Stack, body: Any, user: str = "alice") -> tuple[int, Any]:
    response = stack.client.http.put(
        "/me/preferences", headers=stack.auth(user), body=json.dumps(body)
    )
    return response.status_code, json.loads(response.body)


def prompts(stack: Stack, n: int, **extra: Any) -> str:
    body = {"job_type": "prompts", "prompts": [f"prompt {i}" for i in range(n)], **extra}
    # `prompts=` in extra replaces the generated ones.
    response = stack.client.http.post("/sessions", headers=stack.auth(), body=json.dumps(body))
    assert response.status_code == 201, response.body
    return str(json.loads(response.body)["session_id"])


def emails_in_event_order(stack: Stack) -> list[dict[str, Any]]:
    """The outbox, in the order of the events: rows answered side by side may tell two
    milestones in either order."""
    emails = stack.emails()
    return sorted(emails, key=lambda e: ALL_EVENTS.index(e["MessageAttributes"]["event"]["Value"]))


def in_app(stack: Stack, user: str = "alice") -> list[dict[str, Any]]:
    status, page = stack.get("/me/notifications", user)
    assert status == 200
    return list(page["items"])


def test_preferences_default_to_email_when_a_session_ends_and_everything_in_app(
    stack: Stack,
) -> None:
    status, preferences = stack.get("/me/preferences")

    assert (status, preferences) == (200, {"email": TERMINAL, "in_app": ALL_EVENTS})


def test_preferences_are_kept_per_person_and_checked(stack: Stack) -> None:
    status, saved = put_preferences(
        stack, {"email": ["session.failed", "session.started", "session.failed"], "in_app": []}
    )
    bad_status, bad = put_preferences(stack, {"email": ["session.exploded"]})
    not_an_object = put_preferences(stack, ["session.failed"])

    assert (status, saved) == (200, {"email": ["session.started", "session.failed"], "in_app": []})
    assert stack.get("/me/preferences")[1] == saved
    assert stack.get("/me/preferences", "bob")[1] == {"email": TERMINAL, "in_app": ALL_EVENTS}
    assert (bad_status, bad["error"]["code"]) == (400, "invalid_preferences")
    assert bad["error"]["message"].startswith("The preferences is not valid: email.0:")
    assert not_an_object[0] == 400


def test_a_session_sends_each_event_once_to_the_channels_its_owner_chose(stack: Stack) -> None:
    put_preferences(stack, {"email": ALL_EVENTS, "in_app": ALL_EVENTS})
    sid = prompts(stack, 8, name="eight")

    stack.run_until_settled(sid)

    expected = [
        "session.started",
        "session.milestone_25",
        "session.milestone_50",
        "session.milestone_75",
        "session.completed",
    ]
    emails = emails_in_event_order(stack)
    assert [e["MessageAttributes"]["event"]["Value"] for e in emails] == expected
    assert [e["Subject"] for e in emails] == [
        "chute: eight - started",
        "chute: eight - 25% done",
        "chute: eight - 50% done",
        "chute: eight - 75% done",
        "chute: eight - completed",
    ]
    assert {e["MessageAttributes"]["user_id"]["Value"] for e in emails} == {"alice"}
    # Newest first in the page's list.
    assert [n["event"] for n in in_app(stack)] == expected[::-1]
    assert in_app(stack, "bob") == []


def test_by_default_only_the_ending_is_emailed_and_everything_is_listed_in_app(
    stack: Stack,
) -> None:
    sid = prompts(stack, 4)

    stack.run_until_settled(sid)

    assert [e["MessageAttributes"]["event"]["Value"] for e in stack.emails()] == [
        "session.completed"
    ]
    assert [n["event"] for n in in_app(stack)] == [
        "session.completed",
        "session.milestone_75",
        "session.milestone_50",
        "session.milestone_25",
        "session.started",
    ]


def test_a_sessions_own_choice_overrides_the_owners_preferences(stack: Stack) -> None:
    quiet = prompts(stack, 2, notify={"email": [], "in_app": ["session.completed"]})
    silent = prompts(stack, 2, notify={"on_complete": False})

    stack.run_until_settled(quiet)
    stack.run_until_settled(silent)

    assert stack.emails() == []
    listed = [(n["session_id"], n["event"]) for n in in_app(stack)]
    assert (quiet, "session.completed") in listed
    assert [e for s, e in listed if s == quiet] == ["session.completed"]
    # Silent about its ending: its start and milestones are still listed.
    silent_events = [e for s, e in listed if s == silent]
    assert "session.started" in silent_events
    assert not set(silent_events) & set(TERMINAL)


def test_the_ending_email_names_counts_duration_failures_and_the_link(stack: Stack) -> None:
    files = [("good.txt", b"some words"), ("bad.pdf", b"%PDF-1.4 broken"), ("b2.pdf", b"%PDF-")]
    sid = stack.create(files)["session_id"]

    stack.run_until_settled(sid)

    (email,) = stack.emails()
    assert email["Subject"] == f"chute: {sid} - completed with errors"
    assert email["Message"] == "\n".join(
        [
            f"Your upload session {sid} has finished: completed with errors.",
            "",
            "1 of 3 files completed.",
            "Time taken: 0 s.",
            "2 did not (failed: 2, timed out: 0, cancelled: 0); their error codes are listed "
            "with the session's files.",
            "",
            "Failure codes: pdf_unreadable ×2",
            "",
            "The first 2 that did not complete:",
            "  bad.pdf: pdf_unreadable",
            "  b2.pdf: pdf_unreadable",
            "",
            f"https://chute.example/?session={sid}",
        ]
    )


def test_a_session_that_paused_itself_says_so_once(stack: Stack) -> None:
    put_preferences(stack, {"email": ["session.paused"], "in_app": ["session.paused"]})
    failing = [f"chute:fail=400 #{i}" for i in range(20)] + [f"fine #{i}" for i in range(10)]
    prompts(stack, 0, prompts=failing, name="flaky")

    stack.run_until_idle()

    (email,) = stack.emails()
    assert email["Subject"] == "chute: flaky - paused: too many failures"
    assert email["Message"].startswith(
        "Your session flaky paused itself: 20 of the 20 finished so far failed."
    )
    assert [n["event"] for n in in_app(stack)] == ["session.paused"]


def test_a_failed_send_before_the_ending_is_logged_and_the_work_goes_on(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    put_preferences(stack, {"email": ALL_EVENTS, "in_app": []})
    lost = fail_calls(
        stack.stack.services.sns,
        "provide-client-params.sns.Publish",
        when=lambda params: str(params.get("Subject", "")).endswith("25% done"),
    )
    sid = prompts(stack, 8, name="eight")

    summary = stack.run_until_settled(sid)

    assert (lost.count, summary["status"], summary["counts"]["completed"]) == (1, "completed", 8)
    # Logged where it failed, not raised into the worker (whose message would come back).
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "could not send a notification"
    ]
    assert [e["Subject"] for e in emails_in_event_order(stack)] == [
        "chute: eight - started",
        "chute: eight - 50% done",
        "chute: eight - 75% done",
        "chute: eight - completed",
    ]
