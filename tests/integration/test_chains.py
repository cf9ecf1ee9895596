"""Chains: a `document_summaries` session starts a `summaries` follow-up over its completed
results when it completes — linked both ways, once per completion, even across a crash."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
import requests

from chalicelib.budget import NOTIFY_CLAIM_S
from chalicelib.chains import follow_up_id
from chalicelib.clock import FakeClock
from chalicelib.completion import after_completion
from chalicelib.errors import PermanentError
from chalicelib.filetypes import FOLLOW_UP_FILE
from chalicelib.sources import ObjectSource, open_source
from chalicelib.sweeper import sweep
from tests.faults.inject import fail_calls
from tests.integration.conftest import Stack

DOCS = {
    "b/first.txt": b"Quarterly revenue rose by nine percent on strong exports.",
    "a/second.md": b"# Minutes\n\nThe board approved the budget for next year.",
    "broken.pdf": b"%PDF-1.4 this is not a PDF at all",
    "third.txt": "Les ventes ont augmenté au troisième trimestre.".encode(),
}


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def start(stack: Stack, job_type: str = "document_summaries", members: Any = None) -> str:
    data = zip_of(DOCS if members is None else members)
    manifest = {
        "job_type": job_type,
        "name": "reports",
        "files": [{"name": "reports.zip", "size": len(data), "content_type": "application/zip"}],
    }
    response = stack.client.http.post("/sessions", headers=stack.auth(), body=json.dumps(manifest))
    assert response.status_code == 201, response.body
    created = json.loads(response.body)
    (ticket,) = created["uploads"]
    posted = requests.post(
        ticket["url"], data=ticket["fields"], files={"file": ("reports.zip", data)}, timeout=10
    )
    assert posted.status_code == 204, posted.text
    return str(created["session_id"])


def rows(stack: Stack, sid: str) -> list[dict[str, Any]]:
    status, page = stack.get(f"/sessions/{sid}/files?limit=100")
    assert status == 200
    return list(page["items"])


def test_a_completed_session_starts_its_follow_up_over_its_completed_results_in_order(
    stack: Stack,
) -> None:
    sid = start(stack)

    parent = stack.run_until_settled(sid)
    (child_id,) = parent["children"]
    child = stack.run_until_settled(child_id)

    assert (parent["status"], parent["counts"]["completed"], parent["counts"]["failed"]) == (
        "completed_with_errors",
        3,
        1,
    )
    assert child_id == follow_up_id(sid, 0)
    assert (child["status"], child["job_type"], child["parent_id"], child["total"]) == (
        "completed",
        "summaries",
        sid,
        3,
    )
    assert child["name"] == "reports - summaries"
    parent_names = [r["name"] for r in rows(stack, sid) if r["status"] == "completed"]
    summaries = rows(stack, child_id)
    assert (
        [r["name"] for r in summaries]
        == parent_names
        == [
            "b/first.txt",
            "a/second.md",
            "third.txt",
        ]
    )
    assert [r["result"]["summary"] for r in summaries] == [
        "A summary of Document: b/first.txt Quarterly: revenue rose by nine percent on strong "
        "exports.",
        "A summary of Document: a/second.md #: Minutes The board approved the budget for next "
        "year.",
        "A summary of Document: third.txt Les: ventes ont augmenté au troisième trimestre.",
    ]
    assert child["usage"]["tokens_out"] == sum(r["result"]["tokens_out"] for r in summaries)
    # One email per completion: the parent's, then the follow-up's.
    emails = stack.emails()
    assert [email["Subject"] for email in emails] == [
        "chute: reports - completed with errors",
        "chute: reports - summaries - completed",
    ]
    assert "3 of 3 summaries completed." in emails[1]["Message"]


def test_the_follow_up_starts_once_however_often_the_completion_is_handled(
    stack: Stack,
) -> None:
    sid = start(stack)
    parent = stack.run_until_settled(sid)
    (child_id,) = parent["children"]
    stack.run_until_settled(child_id)

    # The sweeper's re-send of a notification, or a redelivered message, handles it again.
    assert after_completion(stack.stack.services, sid) is False
    stack.run_until_idle()

    _, again = stack.get(f"/sessions/{sid}")
    _, child = stack.get(f"/sessions/{child_id}")
    assert again["children"] == [child_id]
    assert (child["status"], child["total"], child["files_received"]) == ("completed", 3, 1)
    assert len(rows(stack, child_id)) == 3
    assert len(stack.emails()) == 2


def test_a_crash_before_the_follow_ups_input_is_written_is_finished_by_the_sweeper(
    stack: Stack, clock: FakeClock
) -> None:
    services = stack.stack.services
    lost = fail_calls(
        services.s3,
        "provide-client-params.s3.PutObject",
        when=lambda params: str(params.get("Key", "")).endswith(FOLLOW_UP_FILE),
    )
    sid = start(stack)

    stack.run_until_idle()
    _, parent = stack.get(f"/sessions/{sid}")
    child_id = follow_up_id(sid, 0)
    _, child = stack.get(f"/sessions/{child_id}")

    assert lost.count == 1
    assert parent["status"] == "completed_with_errors"
    assert parent["notified"] is False  # the crash came before the notification
    assert parent["children"] == [child_id]
    assert (child["status"], child["files_received"]) == ("uploading", 0)

    clock.advance(NOTIFY_CLAIM_S + 1)
    report = sweep(services)
    done = stack.run_until_settled(child_id)

    assert report.notifications_sent == 1
    assert (done["status"], done["total"]) == ("completed", 3)
    _, parent = stack.get(f"/sessions/{sid}")
    assert (parent["notified"], parent["children"]) == (True, [child_id])
    assert len(stack.emails()) == 2


def test_a_job_type_without_a_follow_up_and_a_session_with_nothing_completed_start_none(
    stack: Stack,
) -> None:
    plain = start(stack, job_type="documents")
    nothing = start(stack, members={"broken.pdf": b"%PDF-1.4 broken", "x.png": b"\x89PNG"})

    assert stack.run_until_settled(plain)["children"] == []
    failed = stack.run_until_settled(nothing)
    assert (failed["status"], failed["children"]) == ("failed", [])
    _, listing = stack.get("/sessions")
    assert len(listing["items"]) == 2


def test_a_retried_parent_that_completes_again_starts_a_second_follow_up(stack: Stack) -> None:
    sid = start(stack)
    first = stack.run_until_settled(sid)
    stack.run_until_settled(first["children"][0])

    response = stack.client.http.post(f"/sessions/{sid}/retry?all=true", headers=stack.auth())
    assert response.status_code == 200, response.body
    again = stack.run_until_settled(sid)

    assert again["children"] == [follow_up_id(sid, 0), follow_up_id(sid, 1)]
    second = stack.run_until_settled(again["children"][1])
    assert (second["status"], second["total"]) == ("completed", 3)


def test_a_unit_whose_input_is_gone_fails_for_good_with_a_clear_code(stack: Stack) -> None:
    services = stack.stack.services

    with pytest.raises(PermanentError) as gone:
        open_source(ObjectSource(key="results/expired/00000-000000.1.json"), services.s3,
                    services.settings.bucket)  # fmt: skip

    assert gone.value.code == "source_missing"
