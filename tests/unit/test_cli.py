"""The chute CLI and its HTTP client, against canned HTTP answers (no network)."""

from __future__ import annotations

import io
import json
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import HTTP
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from typer.testing import CliRunner
from urllib3 import HTTPResponse

from chalicelib.auth import Principal, verify_principal, verify_token
from chalicelib.models import FileSpec, UploadTicket
from chute_cli.client import ApiError, ChuteClient, MultipartUpload, load_local_config
from chute_cli.main import app, run_demo_session, upload_zip, watch_session
from chute_cli.report import (
    demo_summary_line,
    emails_for,
    format_eta,
    progress_fields,
    progress_text,
    read_outbox,
)

API = "http://api.test"
KEY = "k" * 32


class CannedAdapter(HTTPAdapter):
    """Answers each request with the next canned (status, headers, body) and keeps the requests."""

    def __init__(self, *answers: tuple[int, dict[str, str], bytes]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.requests: list[requests.PreparedRequest] = []
        self.bodies: list[bytes] = []

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        self.requests.append(request)
        self.bodies.append(drain(request.body))
        status, headers, content = self.answers.pop(0)
        raw = HTTPResponse(
            body=io.BytesIO(content), status=status, headers=headers, preload_content=False
        )
        return self.build_response(request, raw)


def drain(body: object) -> bytes:
    if isinstance(body, MultipartUpload):
        return b"".join(iter(lambda: body.read(1000), b""))
    if isinstance(body, str):
        return body.encode()
    assert isinstance(body, bytes | None)
    return body or b""


def canned_client(*answers: tuple[int, dict[str, str], bytes]) -> tuple[ChuteClient, CannedAdapter]:
    adapter = CannedAdapter(*answers)
    session = requests.Session()
    session.mount("http://", adapter)
    return ChuteClient(API, "tok", session=session), adapter


def json_answer(
    status: int, body: object, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(body).encode(),
    )


def ticket(name: str = "a.zip") -> UploadTicket:
    return UploadTicket(
        ordinal=0,
        name=name,
        key=f"uploads/s1/00000/{name}",
        url="http://s3.test/bucket",
        fields={"key": f"uploads/s1/00000/{name}", "policy": "cG9saWN5", "x-amz-signature": "sig"},
        expires_at=2e9,
    )


def summary(status: str, total: int = 10, **counts: int) -> dict[str, Any]:
    return {
        "session_id": "s1",
        "status": status,
        "total": total,
        "counts": {"pending": 0, "running": 0, "completed": 0, "failed": 0, "timeout": 0} | counts,
        "progress": 100.0 * sum(counts.values()) / total if total else 0.0,
        "eta_seconds": None,
        "done_at": None,
    }


def parse_multipart(content_type: str, body: bytes) -> list[EmailMessage]:
    message = message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=HTTP
    )
    assert isinstance(message, EmailMessage)
    return [part for part in message.iter_parts() if isinstance(part, EmailMessage)]


# chute token


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / ".chute").mkdir()
    (tmp_path / ".chute" / "token_key").write_text(KEY + "\n")
    return tmp_path


def test_token_prints_a_token_signed_with_the_local_key(root: Path) -> None:
    result = CliRunner().invoke(app, ["--root", str(root), "token", "alice"])
    assert result.exit_code == 0, result.output
    assert verify_token(KEY, result.stdout.strip()) == "alice"


def test_token_admin_prints_an_operators_token(root: Path) -> None:
    result = CliRunner().invoke(app, ["--root", str(root), "token", "ops", "--admin"])
    assert result.exit_code == 0, result.output
    assert verify_principal(KEY, result.stdout.strip()) == Principal("ops", admin=True)


def test_token_root_can_come_from_the_environment(root: Path) -> None:
    result = CliRunner().invoke(app, ["token", "bob"], env={"CHUTE_ROOT": str(root)})
    assert result.exit_code == 0, result.output
    assert verify_token(KEY, result.stdout.strip()) == "bob"


def test_token_without_a_key_says_to_start_the_stack(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--root", str(tmp_path), "token", "alice"])
    assert result.exit_code == 1
    assert "run `make run` first" in result.stderr
    assert result.stdout == ""


def test_token_for_an_invalid_user_name_is_a_usage_error(root: Path) -> None:
    result = CliRunner().invoke(app, ["--root", str(root), "token", "no spaces"])
    assert result.exit_code == 2
    assert "user names" in result.stderr


def test_status_without_a_local_stack_explains_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--root", str(tmp_path), "status", "s1"])
    assert result.exit_code == 1
    assert "make run" in result.stderr


# The HTTP client


def test_error_bodies_become_api_errors_with_code_message_and_status() -> None:
    body = {"error": {"code": "session_not_found", "message": "No such session.", "details": {}}}
    client, _ = canned_client(json_answer(404, body))
    with pytest.raises(ApiError) as caught:
        client.get_session("s1")
    assert (caught.value.code, caught.value.message, caught.value.status) == (
        "session_not_found",
        "No such session.",
        404,
    )


def test_error_details_are_kept() -> None:
    details = {"field": "files.0.size"}
    body = {"error": {"code": "invalid_input", "message": "Bad size.", "details": details}}
    client, _ = canned_client(json_answer(400, body))
    with pytest.raises(ApiError) as caught:
        client.list_files("s1")
    assert caught.value.details == details


def test_a_non_json_error_is_reported_by_its_status() -> None:
    client, _ = canned_client((502, {"Content-Type": "text/html"}, b"<h1>Bad   gateway</h1>"))
    with pytest.raises(ApiError) as caught:
        client.get_session("s1")
    assert caught.value.code == "http_502"
    assert caught.value.message == "<h1>Bad gateway</h1>"


def test_create_session_sends_the_manifest_with_the_bearer_token() -> None:
    created = {
        "session_id": "s1",
        "status": "uploading",
        "uploads": [ticket().model_dump()],
        "expires_at": 2e9,
    }
    client, adapter = canned_client(json_answer(201, created))
    response = client.create_session(
        [FileSpec(name="a.zip", size=3, content_type="application/zip")]
    )
    assert response.session_id == "s1"
    assert response.uploads[0].fields["x-amz-signature"] == "sig"
    request = adapter.requests[0]
    assert (request.method, request.url) == ("POST", f"{API}/sessions")
    assert request.headers["Authorization"] == "Bearer tok"
    sent = json.loads(adapter.bodies[0])
    assert sent["files"] == [{"name": "a.zip", "size": 3, "content_type": "application/zip"}]


def test_get_session_is_conditional_and_an_unchanged_summary_is_none() -> None:
    client, adapter = canned_client(
        json_answer(200, summary("processing"), {"ETag": '"7"'}), (304, {"ETag": '"7"'}, b"")
    )
    first, etag = client.get_session("s1")
    assert first is not None
    assert first["status"] == "processing"
    assert etag == '"7"'
    again, etag_again = client.get_session("s1", etag)
    assert (again, etag_again) == (None, '"7"')
    assert "If-None-Match" not in adapter.requests[0].headers
    assert adapter.requests[1].headers["If-None-Match"] == '"7"'


def test_list_files_passes_only_the_filters_given() -> None:
    client, adapter = canned_client(json_answer(200, {"items": [], "next_cursor": None}))
    page = client.list_files("s1", status="failed", limit=50)
    assert page == {"items": [], "next_cursor": None}
    assert adapter.requests[0].url == f"{API}/sessions/s1/files?status=failed&limit=50"


def test_upload_posts_the_fields_then_the_file_like_a_browser(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 50)
    client, adapter = canned_client((204, {}, b""))
    client.upload(ticket(), path, "application/zip")
    request = adapter.requests[0]
    assert "Authorization" not in request.headers
    assert request.headers["Content-Length"] == str(len(adapter.bodies[0]))
    content_type = request.headers["Content-Type"]
    assert isinstance(content_type, str)
    parts = parse_multipart(content_type, adapter.bodies[0])
    names = [part.get_param("name", header="content-disposition") for part in parts]
    assert names == ["key", "policy", "x-amz-signature", "file"]
    assert parts[0].get_content() == "uploads/s1/00000/a.zip"
    file_part = parts[-1]
    assert file_part.get_filename() == "a.zip"
    assert file_part.get_content_type() == "application/zip"
    assert file_part.get_payload(decode=True) == path.read_bytes()


def test_a_refused_upload_reports_the_storage_error_code() -> None:
    xml = b"<Error><Code>EntityTooLarge</Code><Message>Too big.</Message></Error>"
    client, _ = canned_client((400, {"Content-Type": "application/xml"}, xml))
    with pytest.raises(ApiError) as caught:
        client.upload(ticket(), b"data")
    assert (caught.value.code, caught.value.message, caught.value.status) == (
        "EntityTooLarge",
        "Too big.",
        400,
    )


def test_multipart_body_reads_in_small_blocks_to_the_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 100)
    whole = MultipartUpload({"key": "k"}, "f.bin", path.read_bytes(), "x/y", boundary="B").read(-1)
    streamed = MultipartUpload({"key": "k"}, "f.bin", path, "x/y", boundary="B")
    blocks = b"".join(iter(lambda: streamed.read(100), b""))
    assert blocks.startswith(whole)
    assert len(blocks) == len(streamed)
    assert blocks.endswith(b"\r\n--B--\r\n")


def test_quotes_and_newlines_in_file_names_are_percent_encoded() -> None:
    body = MultipartUpload({}, 'a"b\nc.txt', b"x", "text/plain", boundary="B")
    assert b'filename="a%22b%0Ac.txt"' in body.read(-1)


def test_local_config_paths_are_relative_to_the_root(tmp_path: Path) -> None:
    (tmp_path / ".chute").mkdir()
    config = {
        "api_url": "http://127.0.0.1:8000",
        "aws_endpoint_url": "http://127.0.0.1:5000",
        "region": "us-east-1",
        "bucket": "b",
        "table": "chute",
        "uploads_queue_url": "q1",
        "work_queue_url": "q2",
        "work_high_queue_url": "q3",
        "outbox_queue_url": "q4",
        "topic_arn": "arn:aws:sns:us-east-1:123456789012:events",
        "token": "tok",
        "token_key_path": ".chute/token_key",
        "outbox_path": "/abs/outbox.jsonl",
        "something_new": 1,
    }
    (tmp_path / ".chute" / "local.json").write_text(json.dumps(config))
    loaded = load_local_config(tmp_path)
    assert loaded.token_key_path == tmp_path / ".chute" / "token_key"
    assert loaded.outbox_path == Path("/abs/outbox.jsonl")


# Watching and reporting


def test_summary_line_is_one_json_object_with_the_agreed_keys_in_order() -> None:
    done = summary("completed_with_errors", total=300, completed=296, failed=3, timeout=1)
    line = demo_summary_line("s1", done, notifications_sent=1, elapsed_s=12.3456)
    assert "\n" not in line
    assert json.loads(line) == {
        "session_id": "s1",
        "status": "completed_with_errors",
        "total_files": 300,
        "completed": 296,
        "failed": 4,
        "notifications_sent": 1,
        "elapsed_s": 12.35,
    }
    assert list(json.loads(line)) == [
        "session_id",
        "status",
        "total_files",
        "completed",
        "failed",
        "notifications_sent",
        "elapsed_s",
    ]


def test_summary_line_without_any_summary_says_unknown() -> None:
    parsed = json.loads(demo_summary_line("s1", None, notifications_sent=0, elapsed_s=900))
    assert (parsed["status"], parsed["total_files"], parsed["elapsed_s"]) == ("unknown", 0, 900)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (0.4, "0s"), (59, "59s"), (65, "1m05s"), (3600, "1h00m"), (7322, "2h02m")],
)
def test_eta_is_short_and_human(seconds: float | None, text: str) -> None:
    assert format_eta(seconds) == text


def test_progress_text_counts_every_finished_unit_and_the_failures() -> None:
    running = summary("processing", total=300, completed=110, failed=8, timeout=2) | {
        "eta_seconds": 65.2
    }
    assert progress_text(running) == "processing 120/300 (40%) · ETA 1m05s · 10 failed"


def test_progress_bar_total_is_unknown_until_the_upload_is_fanned_out() -> None:
    fields = progress_fields(summary("uploading", total=0))
    assert fields["total"] is None
    assert fields["completed"] == 0
    assert progress_fields(summary("processing", total=5, completed=2))["total"] == 5


def test_outbox_reader_skips_a_half_written_line_and_filters_by_session(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.jsonl"
    mine = {"subject": "Done", "message": "m", "attributes": {"session_id": "s1"}}
    other = {"subject": "Done", "message": "m", "attributes": {"session_id": "s2"}}
    outbox.write_text(json.dumps(mine) + "\n" + json.dumps(other) + '\n{"subject": "Do')
    assert emails_for(read_outbox(outbox), "s1") == [mine]
    assert read_outbox(tmp_path / "missing.jsonl") == []


def test_watch_polls_until_the_status_is_terminal_and_keeps_the_last_summary() -> None:
    client, adapter = canned_client(
        json_answer(200, summary("processing", completed=3), {"ETag": '"2"'}),
        (304, {"ETag": '"2"'}, b""),
        json_answer(200, summary("completed", completed=10), {"ETag": '"9"'}),
    )
    result = watch_session(client, "s1", timeout_s=60, interval_s=0)
    assert result.finished_at is not None
    assert result.summary is not None
    assert result.summary["status"] == "completed"
    assert [r.headers.get("If-None-Match") for r in adapter.requests] == [None, '"2"', '"2"']


def test_watch_gives_up_at_the_deadline_with_the_last_summary() -> None:
    client, _ = canned_client(json_answer(200, summary("processing"), {"ETag": '"2"'}))
    result = watch_session(client, "s1", timeout_s=0, interval_s=0)
    assert result.finished_at is None
    assert result.summary is not None
    assert result.summary["status"] == "processing"


def test_demo_session_uploads_watches_and_prints_one_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path = tmp_path / "docs.zip"
    zip_path.write_bytes(b"PK\x05\x06" + bytes(18))
    outbox = tmp_path / "outbox.jsonl"
    email = {"subject": "Finished", "message": "2 failed", "attributes": {"session_id": "s1"}}
    outbox.write_text(json.dumps(email) + "\n")
    created = {"session_id": "s1", "status": "uploading", "uploads": [ticket().model_dump()]}
    client, adapter = canned_client(
        json_answer(201, created | {"expires_at": 2e9}),
        (204, {}, b""),
        json_answer(200, summary("completed_with_errors", completed=8, failed=2)),
    )
    size = zip_path.stat().st_size
    finished = run_demo_session(
        client, lambda c: upload_zip(c, zip_path, size), None, outbox_path=outbox, timeout_s=60
    )
    assert finished
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    line = json.loads(out)
    assert line["session_id"] == "s1"
    assert (line["status"], line["completed"], line["failed"]) == ("completed_with_errors", 8, 2)
    assert line["notifications_sent"] == 1
    assert [r.method for r in adapter.requests] == ["POST", "POST", "GET"]
