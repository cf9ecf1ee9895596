"""An operator's redrive: units failed as dead letters go back to work — only those, only by an
operator — and their sessions complete, and notify, again."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.sweeper import sweep
from tests.integration.conftest import Stack


def dead_letter_first_file(stack: Stack, files: list[tuple[str, bytes]]) -> str:
    """A session whose first file's message is dead-lettered (as SQS does after maxReceiveCount
    failed deliveries) and failed by the sweeper; the rest complete."""
    sid = str(stack.create(files)["session_id"])
    stack.stack.drain("on_upload")
    settings, sqs = stack.stack.settings, stack.stack.sqs
    assert settings.work_dlq_url is not None
    received = sqs.receive_message(QueueUrl=settings.work_queue_url, MaxNumberOfMessages=10)
    messages = sorted(received["Messages"], key=lambda m: json.loads(m["Body"])["file"])
    dead, alive = messages[0], messages[1:]
    sqs.send_message(QueueUrl=settings.work_dlq_url, MessageBody=dead["Body"])
    sqs.delete_message(QueueUrl=settings.work_queue_url, ReceiptHandle=dead["ReceiptHandle"])
    for message in alive:
        sqs.change_message_visibility(
            QueueUrl=settings.work_queue_url,
            ReceiptHandle=message["ReceiptHandle"],
            VisibilityTimeout=0,
        )
    assert sweep(stack.stack.services).dead_letters == 1
    stack.run_until_idle()
    return sid


def redrive(stack: Stack, *, admin: bool = True) -> tuple[int, Any]:
    token = stack.token("ops", admin=admin)
    response = stack.client.http.post(
        "/admin/dlq/redrive", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code, json.loads(response.body)


def test_a_redrive_sends_dead_lettered_units_back_and_their_session_completes_again(
    stack: Stack,
) -> None:
    sid = dead_letter_first_file(stack, [("a.txt", b"alpha"), ("b.txt", b"beta")])
    _, before = stack.get(f"/sessions/{sid}")
    assert before["status"] == "completed_with_errors"
    first_email = stack.emails()

    status, report = redrive(stack)
    stack.run_until_idle()

    assert (status, report) == (200, {"units": 1, "sessions": [sid], "more_left": False})
    _, after = stack.get(f"/sessions/{sid}")
    _, files = stack.get(f"/sessions/{sid}/files")
    assert (after["status"], after["counts"]["completed"]) == ("completed", 2)
    assert [(f["name"], f["status"], f["attempt"]) for f in files["items"]] == [
        ("a.txt", "completed", 1),
        ("b.txt", "completed", 1),
    ]
    assert len(first_email) == 1
    # The reopened session completed again, and said so once more.
    assert [e["Subject"] for e in stack.emails()] == [f"chute: {sid} - completed"]
    # Nothing is left listed: a second redrive finds nothing.
    assert redrive(stack) == (200, {"units": 0, "sessions": [], "more_left": False})


def test_only_dead_letters_are_re_driven_and_a_unit_retried_since_is_left_alone(
    stack: Stack,
) -> None:
    sid = dead_letter_first_file(
        stack, [("a.txt", b"alpha"), ("b.txt", b"beta"), ("broken.pdf", b"%PDF-1.4 broken")]
    )
    _, files = stack.get(f"/sessions/{sid}/files?status=failed")
    assert [(f["name"], f["error"]["code"]) for f in files["items"]] == [
        ("a.txt", "dead_lettered"),
        ("broken.pdf", "pdf_unreadable"),
    ]
    # The person retried everything first; then an operator re-drives.
    response = stack.client.http.post(f"/sessions/{sid}/retry?all=true", headers=stack.auth())
    assert response.status_code == 200
    stack.run_until_idle()

    assert redrive(stack) == (200, {"units": 0, "sessions": [], "more_left": False})
    _, files = stack.get(f"/sessions/{sid}/files")
    assert [(f["name"], f["status"]) for f in files["items"]] == [
        ("a.txt", "completed"),
        ("b.txt", "completed"),
        ("broken.pdf", "failed"),
    ]


def test_a_redrive_is_for_operators_only(stack: Stack) -> None:
    sid = dead_letter_first_file(stack, [("a.txt", b"alpha"), ("b.txt", b"beta")])

    status, body = redrive(stack, admin=False)
    anonymous = stack.client.http.post("/admin/dlq/redrive")

    assert (status, body["error"]["code"]) == (403, "admin_only")
    assert anonymous.status_code == 401
    _, files = stack.get(f"/sessions/{sid}/files?status=failed")
    assert [f["name"] for f in files["items"]] == ["a.txt"]
