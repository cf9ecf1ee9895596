"""The embedded stack survives a restart: its AWS state is saved under .chute/state/ and restored
on start — after a clean stop as it was, after a kill with what lost messages carried re-sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.config import WorkSettings
from chalicelib.fanout import fan_out_object
from chalicelib.presign import upload_key
from chalicelib.services import get_services
from infra.local import LocalStack
from infra.testing import post_form, wait_for

FILES = {"a.txt": b"alpha beta", "b.md": b"# gamma\n\ndelta", "c.csv": b"x,y\n1,2\n"}


def api(stack: LocalStack, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(
        method,
        stack.info["api_url"] + path,
        headers={"Authorization": f"Bearer {stack.info['token']}"},
        json=body,
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code < 400, response.text
    return response.json() if response.content else None


def create(stack: LocalStack) -> str:
    manifest = {
        "name": "kept",
        "files": [
            {"name": name, "size": len(data), "content_type": "text/plain"}
            for name, data in FILES.items()
        ],
    }
    created = api(stack, "POST", "/sessions", manifest)
    for ticket, (name, data) in zip(created["uploads"], FILES.items(), strict=True):
        assert post_form(ticket["url"], ticket["fields"], name, data, "text/plain") == 204
    return str(created["session_id"])


def settled(stack: LocalStack, sid: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        summary: dict[str, Any] = api(stack, "GET", f"/sessions/{sid}")
        return summary if summary["status"] not in ("uploading", "processing") else None

    return wait_for(done, timeout_s=60, what=f"session {sid} to finish")


def emails_about(stack: LocalStack, sid: str) -> int:
    outbox = Path(stack.info["outbox_path"])
    lines = outbox.read_text().splitlines() if outbox.exists() else []
    return sum(sid in line for line in lines)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path


def test_a_clean_restart_keeps_every_session_as_it_was_and_the_stack_works_on(root: Path) -> None:
    with LocalStack(root, api_port=0, persist=True) as first:
        sid = create(first)
        settled(first, sid)
        wait_for(lambda: emails_about(first, sid) == 1, what="the email")
        # The email can be out a moment before the send is recorded on META.
        wait_for(lambda: api(first, "GET", f"/sessions/{sid}")["notified"], what="notified")
        before = api(first, "GET", f"/sessions/{sid}")
        files_before = api(first, "GET", f"/sessions/{sid}/files")

    assert (root / ".chute" / "state" / "aws.pickle").stat().st_size > 0
    with LocalStack(root, api_port=0, persist=True) as second:
        restored = second.info["restored"]
        after = api(second, "GET", f"/sessions/{sid}")
        files_after = api(second, "GET", f"/sessions/{sid}/files")
        export = api(second, "GET", f"/sessions/{sid}/results?format=json")
        listing = api(second, "GET", "/sessions")
        # Provisioned again over the restored state: the upload notification works, and the
        # email subscription is not doubled.
        other = create(second)
        again = settled(second, other)
        wait_for(lambda: emails_about(second, other) >= 1, what="the new email")

        assert restored["clean"] is True
        assert "recovered" not in restored
        assert (before["status"], before["notified"]) == ("completed", True)
        assert after == before
        assert files_after == files_before
        assert export is None  # a redirect to the file: the restored results are readable
        assert [s["session_id"] for s in listing["items"]] == [sid]
        assert (again["status"], again["total"]) == ("completed", 3)
        assert emails_about(second, other) == 1
        assert emails_about(second, sid) == 1


def test_after_a_kill_the_lost_messages_are_sent_again_and_the_session_completes(
    root: Path,
) -> None:
    with LocalStack(root, api_port=0, persist=True, start_dispatcher=False) as first:
        sid = create(first)
        # Two files were fanned out (units pending, their messages queued), the third not yet;
        # then every queued message was lost and the stack killed with only a snapshot taken
        # while it ran.
        services = get_services(WorkSettings)
        for ordinal, (name, data) in list(enumerate(FILES.items()))[:2]:
            fan_out_object(services, upload_key(sid, ordinal, name), len(data))
        for queue in ("work_queue_url", "work_high_queue_url", "uploads_queue_url"):
            services.sqs.purge_queue(QueueUrl=first.info[queue])
        assert first.moto is not None
        assert first.moto.save(clean=False)["clean"] is False
        first.persist = False  # killed: no clean snapshot at the stop

    with LocalStack(root, api_port=0, persist=True) as second:
        restored = second.info["restored"]
        summary = settled(second, sid)
        files = api(second, "GET", f"/sessions/{sid}/files")
        wait_for(lambda: emails_about(second, sid) == 1, what="the email")

        assert restored["clean"] is False
        assert restored["recovered"] == {
            "sessions": 1,
            "files_fanned_out": 1,
            "units_requeued": 2,
        }
        assert (summary["status"], summary["counts"]["completed"], summary["total"]) == (
            "completed",
            3,
            3,
        )
        assert [(f["name"], f["attempt"]) for f in files["items"]] == [
            ("a.txt", 1),
            ("b.md", 1),
            ("c.csv", 1),
        ]


def test_a_snapshot_that_cannot_be_read_is_set_aside_and_the_stack_starts_empty(
    root: Path,
) -> None:
    state = root / ".chute" / "state" / "aws.pickle"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"not a snapshot")

    with LocalStack(root, api_port=0, persist=True) as stack:
        listing = api(stack, "GET", "/sessions")
        restored = stack.info["restored"]

    assert listing["items"] == []
    assert restored["error"].startswith("UnpicklingError")
    assert Path(restored["kept_at"]).read_bytes() == b"not a snapshot"
