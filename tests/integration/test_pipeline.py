"""The whole flow on moto in-process: HTTP API → presigned POST → S3 event → SQS → handlers → SNS.

Nothing of chute is mocked: the test plays the part of API Gateway (Chalice's test client) and of
the Lambda SQS event source (receive a batch, call the handler, delete what succeeded).
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import requests

from chalicelib.processors.pdfgen import make_pdf
from chalicelib.store.table import CONFLICT_ATTEMPTS
from infra.dispatcher import sqs_event
from tests.faults.inject import inject_conflicts
from tests.integration.conftest import Stack


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_fans_out_to_one_unit_per_member_and_completes_with_one_email(stack: Stack) -> None:
    archive = zip_of(
        {
            "docs/a.txt": b"hello world\n" * 50,
            "docs/b.json": b'{"k": [1, 2, 3]}',
            "docs/c.pdf": make_pdf(["A page about chute."]),
            "docs/d.csv": b"a,b\n1,2\n3,4\n",
        }
    )
    created = stack.create([("batch.zip", archive), ("notes.md", b"# Title\n\nSome notes.\n")])
    sid = created["session_id"]

    stack.run_until_idle()

    status, summary = stack.get(f"/sessions/{sid}")
    assert status == 200
    assert summary["status"] == "completed"
    assert summary["total"] == 5
    assert summary["counts"]["completed"] == 5
    assert summary["progress"] == 100.0
    assert summary["notified"] is True
    _, files = stack.get(f"/sessions/{sid}/files")
    names = [row["name"] for row in files["items"]]
    assert names == ["docs/a.txt", "docs/b.json", "docs/c.pdf", "docs/d.csv", "notes.md"]
    pdf = files["items"][2]
    assert pdf["result"]["pages"] == 1
    assert pdf["result_key"] == f"results/{sid}/00000-000002.1.json"
    emails = stack.emails()
    assert len(emails) == 1
    assert emails[0]["MessageAttributes"]["session_id"]["Value"] == sid
    assert "5 of 5 files completed" in emails[0]["Message"]


def test_a_corrupt_member_fails_alone_and_the_session_completes_with_errors(stack: Stack) -> None:
    good = make_pdf(["fine"])
    archive = zip_of({"ok.pdf": good, "broken.pdf": good[: len(good) // 2], "ok.txt": b"x"})
    sid = stack.create([("mixed.zip", archive)])["session_id"]

    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert summary["status"] == "completed_with_errors"
    assert summary["counts"] == {**summary["counts"], "completed": 2, "failed": 1}
    _, failed = stack.get(f"/sessions/{sid}/files?status=failed")
    (row,) = failed["items"]
    assert row["name"] == "broken.pdf"
    assert row["error"]["code"] == "pdf_unreadable"
    assert row["stage"] == "parsing"
    assert row["retryable"] is False
    assert len(stack.emails()) == 1


def test_a_redelivered_upload_event_creates_no_second_set_of_units(stack: Stack) -> None:
    sid = stack.create([("one.txt", b"just one")])["session_id"]
    sqs, uploads = stack.stack.sqs, stack.stack.uploads_queue_url
    (message,) = sqs.receive_message(QueueUrl=uploads, MaxNumberOfMessages=10)["Messages"]
    (record,) = sqs_event([message], uploads, "us-east-1")["Records"]
    event = {"Records": [record, {**record, "messageId": "redelivered"}]}

    stack.stack.app.on_upload(event, None)
    sqs.delete_message(QueueUrl=uploads, ReceiptHandle=message["ReceiptHandle"])
    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert summary["total"] == 1
    assert summary["counts"]["completed"] == 1
    assert len(stack.emails()) == 1


def test_a_redelivered_upload_event_completes_a_session_whose_completion_was_lost(
    stack: Stack,
) -> None:
    """Hole 1 at fan-out: a file failed whole at fan-out has no worker to complete its session;
    when the fan-out's completion claim is lost, the event's redelivery must make it, not return
    early because the units were sent."""
    sid = stack.create([("fake.zip", b"this is not a zip archive at all")])["session_id"]
    sqs, uploads = stack.stack.sqs, stack.stack.uploads_queue_url
    (message,) = sqs.receive_message(QueueUrl=uploads, MaxNumberOfMessages=10)["Messages"]
    event = sqs_event([message], uploads, "us-east-1")
    inject_conflicts(
        stack.stack.services.ddb,
        when=lambda request: any("ConditionCheck" in i for i in request["TransactItems"]),
        limit=CONFLICT_ATTEMPTS,
    )

    first = stack.stack.app.on_upload(event, None)
    _, lost = stack.get(f"/sessions/{sid}")
    again = stack.stack.app.on_upload(event, None)

    assert first["batchItemFailures"] == [{"itemIdentifier": message["MessageId"]}]
    assert (lost["status"], lost["progress"]) == ("processing", 100.0)
    assert again["batchItemFailures"] == []
    assert stack.get(f"/sessions/{sid}")[1]["status"] == "failed"
    assert len(stack.emails()) == 1


def test_an_upload_of_another_size_than_declared_fails_that_file_only(stack: Stack) -> None:
    manifest = {"files": [{"name": "a.txt", "size": 3}, {"name": "b.txt", "size": 2}]}
    response = stack.client.http.post("/sessions", headers=stack.auth(), body=json.dumps(manifest))
    created = json.loads(response.body)
    # moto does not enforce content-length-range (DESIGN §8); AWS would refuse this POST.
    for ticket, data in zip(created["uploads"], [b"much longer than declared", b"ok"], strict=True):
        requests.post(ticket["url"], data=ticket["fields"], files={"file": data}, timeout=10)

    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{created['session_id']}")
    assert summary["status"] == "completed_with_errors"
    _, files = stack.get(f"/sessions/{created['session_id']}/files")
    assert [r["status"] for r in files["items"]] == ["failed", "completed"]
    assert files["items"][0]["error"]["code"] == "upload_mismatch"


def test_a_bad_zip_is_one_failed_unit_with_a_clear_error(stack: Stack) -> None:
    sid = stack.create([("fake.zip", b"this is not a zip archive at all")])["session_id"]

    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert summary["status"] == "failed"
    _, files = stack.get(f"/sessions/{sid}/files")
    assert files["items"][0]["error"]["code"] == "zip_not_a_zip"
    assert len(stack.emails()) == 1


def test_status_answers_304_when_nothing_changed(stack: Stack) -> None:
    sid = stack.create([("one.txt", b"abc")])["session_id"]
    first = stack.client.http.get(f"/sessions/{sid}", headers=stack.auth())
    etag = first.headers["ETag"]

    again = stack.client.http.get(
        f"/sessions/{sid}", headers={**stack.auth(), "If-None-Match": etag}
    )
    stack.run_until_idle()
    changed = stack.client.http.get(
        f"/sessions/{sid}", headers={**stack.auth(), "If-None-Match": etag}
    )

    assert again.status_code == 304
    assert changed.status_code == 200


def test_another_users_session_is_not_found(stack: Stack) -> None:
    sid = stack.create([("one.txt", b"abc")])["session_id"]

    status, body = stack.get(f"/sessions/{sid}", user="mallory")
    files_status, _ = stack.get(f"/sessions/{sid}/files", user="mallory")

    assert status == 404
    assert body["error"]["code"] == "session_not_found"
    assert files_status == 404


def test_the_callers_sessions_are_listed_newest_first(stack: Stack) -> None:
    first = stack.create([("a.txt", b"a")])["session_id"]
    second = stack.create([("b.txt", b"b")])["session_id"]
    stack.create([("c.txt", b"c")], user="bob")

    _, listing = stack.get("/sessions")

    assert [s["session_id"] for s in listing["items"]] == [second, first]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "invalid_json"),
        ("[]", "invalid_manifest"),
        ('{"files": []}', "invalid_manifest"),
        ('{"files": [{"name": "a/b.txt", "size": 1}]}', "invalid_manifest"),
        ('{"files": [{"name": "a.exe", "size": 1}]}', "unsupported_file_type"),
        ('{"files": [{"name": "a.txt", "size": -1}]}', "invalid_manifest"),
        ('{"files": [{"name": "a.txt", "size": 99999999999999}]}', "file_too_large"),
    ],
)
def test_a_bad_manifest_is_a_400_with_a_stable_code(stack: Stack, body: str, code: str) -> None:
    response = stack.client.http.post("/sessions", headers=stack.auth(), body=body)

    assert response.status_code == 400
    error = json.loads(response.body)["error"]
    assert error["code"] == code
    assert error["message"]


def test_a_request_without_a_valid_token_is_a_401(stack: Stack) -> None:
    response = stack.client.http.get("/sessions", headers={"Authorization": "Bearer nope"})

    assert response.status_code == 401
    assert json.loads(response.body)["error"]["code"] == "token_malformed"


def test_a_finder_zip_has_no_junk_units_and_a_picture_is_skipped_not_completed(
    stack: Stack,
) -> None:
    archive = zip_of(
        {
            "report/notes.txt": b"real words here",
            "report/photo.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
            "__MACOSX/report/._notes.txt": b"\x00\x05\x16\x07AppleDouble",
            "report/.DS_Store": b"\x00\x00\x00\x01Bud1",
            "../escape.txt": b"outside",
        }
    )
    sid = stack.create([("finder.zip", archive)])["session_id"]

    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert summary["total"] == 3
    assert (summary["counts"]["completed"], summary["counts"]["skipped"]) == (1, 1)
    assert summary["counts"]["failed"] == 1
    _, files = stack.get(f"/sessions/{sid}/files")
    assert [(r["name"], r["status"], (r["error"] or {}).get("code")) for r in files["items"]] == [
        ("report/notes.txt", "completed", None),
        ("report/photo.png", "skipped", "unsupported_type"),
        ("../escape.txt", "failed", "zip_unsafe_path"),
    ]
    assert summary["status"] == "completed_with_errors"
    assert len(stack.emails()) == 1
