"""The chute CLI and its HTTP client, against canned HTTP answers (no network)."""

from __future__ import annotations

import base64
import io
import json
import socket
import time
from collections.abc import Callable
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import HTTP
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from typer.testing import CliRunner, Result
from urllib3 import HTTPResponse

from chalicelib.auth import Principal, verify_principal, verify_token
from chalicelib.models import FileSpec, UploadTicket
from chute_cli import cli, main
from chute_cli.client import ApiError, ChuteClient, MultipartUpload, load_local_config
from chute_cli.main import app, run_demo_session, upload_zip, watch_session
from chute_cli.report import (
    demo_summary_line,
    emails_for,
    exit_code,
    format_bytes,
    format_duration,
    format_eta,
    outcome_line,
    paused_itself,
    progress_fields,
    progress_text,
    read_outbox,
)

API = "http://api.test"
STORAGE = "http://s3.test/bucket"
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


def ticket(name: str = "a.zip", ordinal: int = 0) -> UploadTicket:
    key = f"uploads/s1/{ordinal:05d}/{name}"
    return UploadTicket(
        ordinal=ordinal,
        name=name,
        key=key,
        url=STORAGE,
        fields={"key": key, "policy": "cG9saWN5", "x-amz-signature": "sig"},
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
    assert verify_token(KEY, result.stdout.strip(), now=time.time()) == "alice"


def test_token_admin_prints_an_operators_token(root: Path) -> None:
    result = CliRunner().invoke(app, ["--root", str(root), "token", "ops", "--admin"])
    assert result.exit_code == 0, result.output
    assert verify_principal(KEY, result.stdout.strip(), now=time.time()) == Principal(
        "ops", admin=True
    )


def test_token_expires_after_30_days_unless_days_says_otherwise(root: Path) -> None:
    lifetimes = []
    for extra in ([], ["--days", "2"]):
        result = CliRunner().invoke(app, ["--root", str(root), "token", "alice", *extra])
        assert result.exit_code == 0, result.output
        payload = result.stdout.strip().split(".")[0]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        lifetimes.append(claims["exp"] - claims["iat"])
    assert lifetimes == [30 * 86400, 2 * 86400]


def test_token_root_can_come_from_the_environment(root: Path) -> None:
    result = CliRunner().invoke(app, ["token", "bob"], env={"CHUTE_ROOT": str(root)})
    assert result.exit_code == 0, result.output
    assert verify_token(KEY, result.stdout.strip(), now=time.time()) == "bob"


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


# The commands against a fake API: the real client and CLI, requests answered by route


Answer = tuple[int, dict[str, str], bytes]


class FakeApi(HTTPAdapter):
    """The API and storage by route: a request for (method, path?query) gets that route's
    answers in turn, the last one again and again; any other request gets the API's 404."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.requests: list[requests.PreparedRequest] = []
        self.bodies: list[bytes] = []

    def on(self, method: str, target: str, *answers: Answer) -> None:
        self.routes[(method, target)] = list(answers)

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        self.requests.append(request)
        self.bodies.append(drain(request.body))
        answers = self.routes.get((str(request.method), target_of(request)))
        if not answers:
            error = {"code": "route_not_found", "message": "No such route.", "details": {}}
            status, headers, content = json_answer(404, {"error": error})
        else:
            status, headers, content = answers.pop(0) if len(answers) > 1 else answers[0]
        raw = HTTPResponse(
            body=io.BytesIO(content), status=status, headers=headers, preload_content=False
        )
        return self.build_response(request, raw)

    def targets(self) -> list[tuple[str, str]]:
        return [(str(r.method), target_of(r)) for r in self.requests]


def target_of(request: requests.PreparedRequest) -> str:
    return str(request.url).removeprefix(API)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    """The CLI's clients talk to a FakeApi; `upload --watch` polls without waiting."""
    fake = FakeApi()

    def client(api_url: str, token: str) -> ChuteClient:
        session = requests.Session()
        session.mount("http://", fake)
        return ChuteClient(api_url, token, session=session)

    monkeypatch.setattr(cli, "ChuteClient", client)
    monkeypatch.setattr(main, "WATCH_INTERVAL_S", 0.0)
    return fake


def chute(*args: str) -> Result:
    return CliRunner().invoke(
        app, list(args), env={"CHUTE_API_URL": API, "CHUTE_TOKEN": "tok"}, catch_exceptions=False
    )


def api_error(status: int, code: str, message: str) -> Answer:
    return json_answer(status, {"error": {"code": code, "message": message, "details": {}}})


def one_error_line(result: Result) -> str:
    """The only line on stderr, which must be an error."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


def created(*names: str) -> Answer:
    uploads = [ticket(name, ordinal).model_dump() for ordinal, name in enumerate(names)]
    return json_answer(
        201, {"session_id": "s1", "status": "uploading", "uploads": uploads, "expires_at": 2e9}
    )


def unit(ordinal: int, name: str, status: str, code: str = "", message: str = "") -> dict[str, Any]:
    return {
        "ordinal": f"{ordinal:05d}-000000",
        "name": name,
        "status": status,
        "stage": "parsing",
        "progress": 100.0 if status == "completed" else 0.0,
        "attempt": 1,
        "max_attempts": 3,
        "error": {"code": code, "message": message, "details": {}} if code else None,
        "duration_ms": 1234,
    }


def page(items: list[dict[str, Any]], next_cursor: str | None = None) -> Answer:
    return json_answer(200, {"items": items, "next_cursor": next_cursor})


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def sent_manifest(api: FakeApi) -> dict[str, Any]:
    index = api.targets().index(("POST", "/sessions"))
    manifest: dict[str, Any] = json.loads(api.bodies[index])
    return manifest


def uploaded_files(api: FakeApi) -> list[tuple[str | None, bytes]]:
    """(file name, bytes) of each presigned POST, in the order sent."""
    files = []
    for request, body in zip(api.requests, api.bodies, strict=True):
        if request.url == STORAGE:
            content_type = request.headers["Content-Type"]
            assert isinstance(content_type, str)
            part = parse_multipart(content_type, body)[-1]
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            files.append((part.get_filename(), payload))
    return files


# Usage errors: one line, exit 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["upload"], "Missing argument 'PATH...'. (see `chute upload --help`)"),
        (
            ["upload", "a.txt", "--priority", "11"],
            "Invalid value for '--priority': Input should be less than or equal to 10 "
            "(see `chute upload --help`)",
        ),
        (
            ["results", "s1", "--format", "docx"],
            "Invalid value for '--format' / '-f': 'docx' is not one of 'csv', 'json', 'jsonl', "
            "'xlsx', 'zip'. (see `chute results --help`)",
        ),
        (["status"], "Missing argument 'SESSION_ID'. (see `chute status --help`)"),
        (["nope"], "No such command 'nope'. (see `chute --help`)"),
        (["upload", "--bogus", "a.txt"], "No such option: --bogus (see `chute upload --help`)"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(api: FakeApi, args: list[str], message: str) -> None:
    result = chute(*args)
    assert result.exit_code == 2
    assert one_error_line(result) == message
    assert result.stdout == ""
    assert api.requests == []


def test_a_bad_status_filter_is_a_usage_error(api: FakeApi) -> None:
    result = chute("files", "s1", "--status", "bogus")
    assert result.exit_code == 2
    assert one_error_line(result).startswith("Invalid value for '--status': 'bogus' is not one of")


def test_upload_of_a_missing_file_is_one_line_and_calls_no_api(
    api: FakeApi, tmp_path: Path
) -> None:
    result = chute("upload", str(tmp_path / "nope.txt"))
    assert result.exit_code == 2
    assert one_error_line(result) == f"{tmp_path / 'nope.txt'}: no such file."
    assert api.requests == []


def test_upload_of_a_directory_is_refused(api: FakeApi, tmp_path: Path) -> None:
    result = chute("upload", str(tmp_path))
    assert result.exit_code == 2
    assert one_error_line(result) == f"{tmp_path} is a directory: give its files, or a zip of it."
    assert api.requests == []


def test_upload_of_an_empty_file_is_refused_before_calling_the_api(
    api: FakeApi, tmp_path: Path
) -> None:
    good = write(tmp_path / "good.txt", b"text")
    empty = write(tmp_path / "empty.txt", b"")
    result = chute("upload", str(good), str(empty))
    assert result.exit_code == 2
    assert one_error_line(result) == f"{empty} is empty (0 bytes): there is nothing to process."
    assert api.requests == []


def test_prompts_takes_exactly_one_batch_file(api: FakeApi, tmp_path: Path) -> None:
    one, two = write(tmp_path / "a.csv", b"prompt\nx\n"), write(tmp_path / "b.csv", b"prompt\n")
    result = chute("upload", "--prompts", str(one), str(two))
    assert result.exit_code == 2
    assert one_error_line(result) == (
        "--prompts takes exactly one batch file (CSV, XLSX or TXT); got 2."
    )
    assert api.requests == []


def test_a_file_name_the_api_would_refuse_is_refused_here(api: FakeApi, tmp_path: Path) -> None:
    path = write(tmp_path / "we\x01ird.txt", b"text")
    result = chute("upload", str(path))
    assert result.exit_code == 2
    assert one_error_line(result) == (
        "'we\\x01ird.txt' cannot be uploaded: name: must be a plain file name without slashes "
        "or control characters"
    )


def test_a_session_name_too_long_is_refused_here(api: FakeApi, tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", b"text")
    result = chute("upload", str(path), "--name", "n" * 201)
    assert result.exit_code == 2
    assert one_error_line(result) == (
        "the session cannot be created: name: String should have at most 200 characters"
    )


# API errors, the stack not running, no local config: one line


def test_an_unsupported_file_type_is_the_apis_message(api: FakeApi, tmp_path: Path) -> None:
    message = "'x.exe' is not a supported file type. Supported: .csv, .pdf, .txt, .zip."
    api.on("POST", "/sessions", api_error(400, "unsupported_file_type", message))
    result = chute("upload", str(write(tmp_path / "x.exe", b"MZ")))
    assert result.exit_code == 2
    assert one_error_line(result) == f"{message} (unsupported_file_type, HTTP 400)"
    assert result.stdout == ""


def test_an_unknown_session_is_the_apis_404(api: FakeApi) -> None:
    api.on("GET", "/sessions/nope", api_error(404, "session_not_found", "No session 'nope'."))
    result = chute("status", "nope")
    assert result.exit_code == 1
    assert one_error_line(result) == "No session 'nope'. (session_not_found, HTTP 404)"


def test_a_bad_token_is_the_apis_401_with_a_hint(api: FakeApi) -> None:
    api.on("GET", "/sessions?limit=20", api_error(401, "token_malformed", "Bad token."))
    result = chute("sessions")
    assert result.exit_code == 1
    assert one_error_line(result) == (
        "Bad token. (token_malformed, HTTP 401); check --token or CHUTE_TOKEN"
    )


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(("args", "code"), [(["status", "s1"], 1), (["upload", "FILE"], 2)])
def test_a_stack_that_is_not_running_is_one_line(
    tmp_path: Path, args: list[str], code: int
) -> None:
    url = closed_port_url()
    path = write(tmp_path / "a.txt", b"text")
    argv = [str(path) if arg == "FILE" else arg for arg in args]
    result = CliRunner().invoke(app, [*argv, "--api-url", url, "--token", "tok"])
    assert result.exit_code == code
    assert one_error_line(result) == (
        f"Could not connect to the API at {url}: is it running? Locally, start it with `make run`."
    )


@pytest.mark.parametrize(("args", "code"), [(["sessions"], 1), (["upload", "FILE"], 2)])
def test_without_a_local_config_says_to_start_the_stack(
    tmp_path: Path, args: list[str], code: int
) -> None:
    path = write(tmp_path / "a.txt", b"text")
    argv = [str(path) if arg == "FILE" else arg for arg in args]
    result = CliRunner().invoke(app, ["--root", str(tmp_path), *argv])
    assert result.exit_code == code
    assert one_error_line(result) == (
        f"No local stack config at {tmp_path / '.chute' / 'local.json'}: run `make run` first, "
        "or pass --api-url and --token."
    )


def test_an_unreadable_local_config_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".chute").mkdir()
    (tmp_path / ".chute" / "local.json").write_text("{not json")
    result = CliRunner().invoke(app, ["--root", str(tmp_path), "status", "s1"])
    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"{tmp_path / '.chute' / 'local.json'} cannot be read (ValidationError): restart the stack."
    )


# Ids in URLs


@pytest.mark.parametrize(
    ("call", "target"),
    [
        (lambda c: c.get_session("a/b"), "/sessions/a%2Fb"),
        (lambda c: c.list_files("a/b?x#y"), "/sessions/a%2Fb%3Fx%23y/files"),
        (lambda c: c.control("../admin", "pause"), "/sessions/..%2Fadmin/pause"),
        (lambda c: c.results("a b", "csv"), "/sessions/a%20b/results?format=csv"),
    ],
)
def test_every_id_is_one_percent_encoded_path_segment(
    call: Callable[[ChuteClient], object], target: str
) -> None:
    client, adapter = canned_client(api_error(404, "session_not_found", "No session."))
    with pytest.raises(ApiError):
        call(client)
    assert target_of(adapter.requests[0]) == target


def test_status_of_an_id_with_a_slash_reaches_the_apis_404(api: FakeApi) -> None:
    message = "No session 'a%2Fb'."
    api.on("GET", "/sessions/a%2Fb", api_error(404, "session_not_found", message))
    result = chute("status", "a/b")
    assert result.exit_code == 1
    assert one_error_line(result) == f"{message} (session_not_found, HTTP 404)"
    assert "tok" not in result.output


# upload


def test_upload_of_several_files_is_one_session_with_one_entry_each(
    api: FakeApi, tmp_path: Path
) -> None:
    first = write(tmp_path / "a.txt", b"first file")
    second = write(tmp_path / "b.pdf", b"%PDF-1.4 second")
    api.on("POST", "/sessions", created("a.txt", "b.pdf"))
    api.on("POST", STORAGE, (204, {}, b""))
    result = chute("upload", str(first), str(second))
    assert result.exit_code == 0, result.output
    assert result.stdout == "s1\n"
    assert sent_manifest(api) == {
        "files": [
            {"name": "a.txt", "size": 10, "content_type": "text/plain"},
            {"name": "b.pdf", "size": 15, "content_type": "application/pdf"},
        ],
        "name": "2 files",
        "priority": 5,
        "job_type": "documents",
        "notify": {"on_complete": True},
    }
    assert uploaded_files(api) == [("a.txt", b"first file"), ("b.pdf", b"%PDF-1.4 second")]
    assert "Uploaded 2 files (25 B) to session s1." in result.stderr
    assert "Follow it with `chute status s1`." in result.stderr


def test_upload_of_one_file_names_the_session_after_it(api: FakeApi, tmp_path: Path) -> None:
    path = write(tmp_path / "report.md", b"# title")
    api.on("POST", "/sessions", created("report.md"))
    api.on("POST", STORAGE, (204, {}, b""))
    result = chute("upload", str(path), "--priority", "8")
    assert result.exit_code == 0, result.output
    manifest = sent_manifest(api)
    assert (manifest["name"], manifest["priority"]) == ("report.md", 8)


def test_upload_name_option_names_the_session(api: FakeApi, tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", b"text")
    api.on("POST", "/sessions", created("a.txt"))
    api.on("POST", STORAGE, (204, {}, b""))
    result = chute("upload", str(path), "--name", "Q3 reports")
    assert result.exit_code == 0, result.output
    assert sent_manifest(api)["name"] == "Q3 reports"


def test_upload_prompts_is_a_prompts_session_of_the_batch_file(
    api: FakeApi, tmp_path: Path
) -> None:
    path = write(tmp_path / "batch.csv", b"prompt\nhello\n")
    api.on("POST", "/sessions", created("batch.csv"))
    api.on("POST", STORAGE, (204, {}, b""))
    result = chute("upload", "--prompts", str(path))
    assert result.exit_code == 0, result.output
    manifest = sent_manifest(api)
    assert manifest["job_type"] == "prompts"
    assert manifest["files"] == [{"name": "batch.csv", "size": 13, "content_type": "text/csv"}]
    assert uploaded_files(api) == [("batch.csv", b"prompt\nhello\n")]


def test_a_refused_upload_is_one_line_after_the_session_id(api: FakeApi, tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", b"text")
    xml = b"<Error><Code>AccessDenied</Code><Message>Policy expired.</Message></Error>"
    api.on("POST", "/sessions", created("a.txt"))
    api.on("POST", STORAGE, (403, {"Content-Type": "application/xml"}, xml))
    result = chute("upload", str(path))
    assert result.exit_code == 2
    assert result.stdout == "s1\n"
    assert result.stderr.splitlines()[-1] == "error: Policy expired. (AccessDenied, HTTP 403)"


def test_an_upload_streams_the_file_and_reports_every_block_it_sends(tmp_path: Path) -> None:
    path = write(tmp_path / "big.bin", bytes(range(256)) * 4096)  # 1 MiB
    reads: list[int] = []
    body = MultipartUpload({"key": "k"}, "big.bin", path, "x/y", on_read=reads.append)
    sent = b"".join(iter(lambda: body.read(16384), b""))
    assert len(sent) == len(body)
    assert sum(reads) == path.stat().st_size
    assert len(reads) == 64
    assert max(reads) == 16384


def test_the_client_upload_passes_on_read_through(tmp_path: Path) -> None:
    path = write(tmp_path / "a.zip", b"PK" * 5000)
    client, _ = canned_client((204, {}, b""))
    reads: list[int] = []
    client.upload(ticket(), path, "application/zip", on_read=reads.append)
    assert sum(reads) == 10000


# upload --watch: the outcome, the failed units, the exit code


def watched(api: FakeApi, tmp_path: Path, *summaries: dict[str, Any]) -> Result:
    """`upload a.txt --watch`, the session's summary answering each of `summaries` in turn."""
    return watched_answers(api, tmp_path, *(json_answer(200, s) for s in summaries))


def watched_answers(api: FakeApi, tmp_path: Path, *answers: Answer) -> Result:
    path = write(tmp_path / "a.txt", b"text")
    api.on("POST", "/sessions", created("a.txt"))
    api.on("POST", STORAGE, (204, {}, b""))
    api.on("GET", "/sessions/s1", *answers)
    return chute("upload", str(path), "--watch")


def test_watch_of_a_completed_session_exits_0(api: FakeApi, tmp_path: Path) -> None:
    result = watched(
        api,
        tmp_path,
        summary("processing", total=2, completed=1),
        summary("completed", total=2, completed=2),
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "s1\n"
    assert result.stderr.splitlines()[-1] == "2 of 2 done"
    assert not any("/files" in target for _, target in api.targets())


def test_watch_lists_every_failed_and_timed_out_unit_and_exits_1(
    api: FakeApi, tmp_path: Path
) -> None:
    base = "/sessions/s1/files?status="
    api.on(
        "GET",
        f"{base}failed&limit=100",
        page([unit(4, "d.pdf", "failed", "pdf_unreadable", "Damaged.")], next_cursor="c1"),
    )
    api.on(
        "GET",
        f"{base}failed&cursor=c1&limit=100",
        page([unit(7, "g.pdf", "failed", "pdf_encrypted", "Encrypted.")]),
    )
    api.on("GET", f"{base}timeout&limit=100", page([unit(1, "b.txt", "timeout", "timeout", "")]))
    done = summary("completed_with_errors", total=300, completed=297, failed=2, timeout=1)
    result = watched(api, tmp_path, done)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-4:] == [
        "297 of 300 done, 2 failed, 1 timed out",
        "00001-000000  b.txt  timeout  timeout",
        "00004-000000  d.pdf  failed  pdf_unreadable: Damaged.",
        "00007-000000  g.pdf  failed  pdf_encrypted: Encrypted.",
    ]


def test_watch_of_a_session_where_nothing_completed_exits_1(api: FakeApi, tmp_path: Path) -> None:
    api.on("GET", "/sessions/s1/files?status=failed&limit=100", page([unit(0, "a.txt", "failed")]))
    api.on("GET", "/sessions/s1/files?status=timeout&limit=100", page([]))
    result = watched(api, tmp_path, summary("failed", total=1, failed=1))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        "0 of 1 done, 1 failed",
        "00000-000000  a.txt  failed  no error recorded",
    ]


def test_watch_of_a_rejected_batch_exits_2_with_the_reason(api: FakeApi, tmp_path: Path) -> None:
    rejected = summary("rejected", total=0) | {
        "error": {"code": "header_only", "message": "The batch has a header and no rows."}
    }
    result = watched(api, tmp_path, rejected)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "rejected: The batch has a header and no rows. (header_only)"
    )


def test_watch_of_a_cancelled_session_exits_2(api: FakeApi, tmp_path: Path) -> None:
    result = watched(api, tmp_path, summary("cancelled", total=4, completed=1, cancelled=3))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "cancelled: 1 of 4 done, 3 cancelled"


def test_watch_stops_when_the_session_paused_itself_and_exits_1(
    api: FakeApi, tmp_path: Path
) -> None:
    api.on("GET", "/sessions/s1/files?status=failed&limit=100", page([]))
    api.on("GET", "/sessions/s1/files?status=timeout&limit=100", page([]))
    paused = summary("paused", total=100, completed=5, failed=15, paused=80) | {
        "pause_reason": "failure_rate"
    }
    result = watched(api, tmp_path, paused)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        "paused: 5 of 100 done, 15 failed",
        "The session paused itself: too many of its units failed. `chute resume s1` goes on, "
        "`chute cancel s1` stops it.",
    ]


def test_watch_that_times_out_exits_2(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main, "WATCH_INTERVAL_S", 0.25)
    path = write(tmp_path / "a.txt", b"text")
    api.on("POST", "/sessions", created("a.txt"))
    api.on("POST", STORAGE, (204, {}, b""))
    api.on("GET", "/sessions/s1", json_answer(200, summary("processing", total=2, completed=1)))
    result = chute("upload", str(path), "--watch", "--timeout", "1")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-2:] == [
        "processing 1/2 (50%) · ETA — · 0 failed",
        "error: Session s1 did not finish within 1 s; it goes on: `chute status s1`.",
    ]


def test_an_api_error_while_watching_exits_2(api: FakeApi, tmp_path: Path) -> None:
    result = watched_answers(api, tmp_path, api_error(500, "internal", "Something broke."))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "error: Something broke. (internal, HTTP 500)"


def test_without_watch_upload_exits_0_whatever_happens_next(api: FakeApi, tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", b"text")
    api.on("POST", "/sessions", created("a.txt"))
    api.on("POST", STORAGE, (204, {}, b""))
    result = chute("upload", str(path))
    assert result.exit_code == 0
    assert ("GET", "/sessions/s1") not in api.targets()


# status, files, controls, results, sessions


def test_status_prints_the_summary_and_exits_0(api: FakeApi) -> None:
    api.on("GET", "/sessions/s1", json_answer(200, summary("processing", total=4, completed=1)))
    result = chute("status", "s1")
    assert result.exit_code == 0, result.output
    assert "processing 1/4 (25%) · ETA — · 0 failed" in result.stdout


def test_status_json_is_the_apis_summary(api: FakeApi) -> None:
    body = summary("completed", total=1, completed=1)
    api.on("GET", "/sessions/s1", json_answer(200, body))
    result = chute("status", "s1", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == body


def test_files_follows_every_page_into_one_table(api: FakeApi) -> None:
    api.on(
        "GET",
        "/sessions/s1/files?limit=100",
        page([unit(0, "a.txt", "completed")], next_cursor="c1"),
    )
    api.on(
        "GET",
        "/sessions/s1/files?cursor=c1&limit=100",
        page([unit(1, "[b].pdf", "failed", "pdf_unreadable", "Damaged.")]),
    )
    result = chute("files", "s1")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if "-000000" in line]
    assert rows == [
        ["00000-000000", "a.txt", "completed", "parsing", "100%", "1/3", "1.2s"],
        ["00001-000000", "[b].pdf", "failed", "parsing", "0%", "1/3", "pdf_unreadable", "1.2s"],
    ]


def test_files_json_is_one_unit_a_line_of_the_status_asked(api: FakeApi) -> None:
    units = [unit(0, "a.txt", "failed", "x", "y"), unit(3, "d.txt", "failed", "x", "y")]
    api.on("GET", "/sessions/s1/files?status=failed&limit=100", page(units))
    result = chute("files", "s1", "--status", "failed", "--json")
    assert result.exit_code == 0
    assert [json.loads(line) for line in result.stdout.splitlines()] == units


def test_files_of_a_session_without_units_says_so(api: FakeApi) -> None:
    api.on("GET", "/sessions/s1/files?limit=100", page([]))
    result = chute("files", "s1")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "No units in session s1.\n"


@pytest.mark.parametrize(
    ("args", "target"),
    [
        (["pause", "s1"], "/sessions/s1/pause"),
        (["resume", "s1"], "/sessions/s1/resume"),
        (["cancel", "s1"], "/sessions/s1/cancel"),
        (["retry", "s1"], "/sessions/s1/retry"),
        (["retry", "s1", "--all"], "/sessions/s1/retry?all=true"),
    ],
)
def test_a_control_posts_the_action_and_prints_the_status_line(
    api: FakeApi, args: list[str], target: str
) -> None:
    api.on("POST", target, json_answer(200, summary("paused", total=10, completed=3)))
    result = chute(*args)
    assert result.exit_code == 0, result.output
    assert api.targets() == [("POST", target)]
    assert result.stdout == "s1: paused 3/10 (30%) · ETA — · 0 failed\n"


def test_a_control_the_sessions_status_forbids_is_the_apis_409(api: FakeApi) -> None:
    message = "A completed session cannot be paused."
    api.on("POST", "/sessions/s1/pause", api_error(409, "invalid_state", message))
    result = chute("pause", "s1")
    assert result.exit_code == 1
    assert one_error_line(result) == f"{message} (invalid_state, HTTP 409)"


def results_routes(api: FakeApi, fmt: str, data: bytes, *, redirect: bool = False) -> None:
    """The API's answer to a client that accepts JSON: the export's link (or, with `redirect`,
    the 302 it gives everyone else)."""
    export = "http://s3.test/exports/v3." + fmt
    link = json.dumps({"url": export, "format": fmt, "version": 3}).encode()
    answer = (302, {"Location": export}, b"") if redirect else (200, {}, link)
    api.on("GET", f"/sessions/s1/results?format={fmt}", answer)
    api.on("GET", export, (200, {}, data))


def test_results_are_written_to_the_session_id_dot_format_here(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    results_routes(api, "csv", b"ordinal,name\r\n")
    result = chute("results", "s1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s1.csv").read_bytes() == b"ordinal,name\r\n"
    assert result.stderr == "Wrote the csv results of session s1 (14 bytes) to s1.csv.\n"
    assert result.stdout == ""


@pytest.mark.parametrize("redirect", [False, True])
def test_results_output_file_and_format(api: FakeApi, tmp_path: Path, redirect: bool) -> None:
    results_routes(api, "xlsx", b"PK\x03\x04xlsx", redirect=redirect)
    target = tmp_path / "out.xlsx"
    result = chute("results", "s1", "--format", "xlsx", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == b"PK\x03\x04xlsx"


def test_results_to_stdout_are_the_bytes(api: FakeApi) -> None:
    results_routes(api, "jsonl", b'{"ordinal": "00000-000000"}\n')
    result = chute("results", "s1", "-f", "jsonl", "-o", "-")
    assert result.exit_code == 0
    assert result.stdout_bytes == b'{"ordinal": "00000-000000"}\n'


def test_results_that_cannot_be_written_are_one_line(api: FakeApi, tmp_path: Path) -> None:
    results_routes(api, "csv", b"x")
    target = tmp_path / "missing" / "out.csv"
    result = chute("results", "s1", "-o", str(target))
    assert result.exit_code == 1
    assert one_error_line(result) == f"Cannot write {target}: No such file or directory."


def session_summary(sid: str, name: str, status: str) -> dict[str, Any]:
    return summary(status, total=4, completed=2) | {
        "session_id": sid,
        "name": name,
        "created_at": datetime(2026, 3, 1, 9, 30).timestamp(),
    }


def test_sessions_is_a_table_of_the_newest(api: FakeApi) -> None:
    items = [
        session_summary("s2", "2 files", "processing"),
        session_summary("s1", "a.txt", "completed"),
    ]
    api.on("GET", "/sessions?limit=20", page(items))
    result = chute("sessions")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if line.strip().startswith("s")]
    assert rows == [
        ["s2", "2", "files", "processing", "2/4", "(50%)", "2026-03-01", "09:30"],
        ["s1", "a.txt", "completed", "2/4", "(50%)", "2026-03-01", "09:30"],
    ]


def test_sessions_limit_pages_through_up_to_the_limit(api: FakeApi) -> None:
    first = [session_summary(f"a{i}", "x", "completed") for i in range(100)]
    second = [session_summary(f"b{i}", "x", "completed") for i in range(30)]
    api.on("GET", "/sessions?limit=100", page(first, next_cursor="c1"))
    api.on("GET", "/sessions?limit=30&cursor=c1", page(second, next_cursor="c2"))
    result = chute("sessions", "--limit", "130", "--json")
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["session_id"] for line in result.stdout.splitlines()]
    assert ids == [s["session_id"] for s in first + second]
    assert len(api.requests) == 2


def test_sessions_when_there_are_none(api: FakeApi) -> None:
    api.on("GET", "/sessions?limit=20", page([]))
    result = chute("sessions")
    assert result.exit_code == 0
    assert result.stderr == "No sessions yet: `chute upload PATH...` starts one.\n"


# The pure helpers behind the output


@pytest.mark.parametrize(
    ("status", "counts", "line", "code"),
    [
        ("completed", {"completed": 300}, "300 of 300 done", 0),
        ("completed_with_errors", {"completed": 299, "failed": 1}, "299 of 300 done, 1 failed", 1),
        ("failed", {"failed": 299, "timeout": 1}, "0 of 300 done, 299 failed, 1 timed out", 1),
        (
            "cancelled",
            {"completed": 10, "cancelled": 290},
            "cancelled: 10 of 300 done, 290 cancelled",
            2,
        ),
        ("processing", {"completed": 10}, "processing: 10 of 300 done", 2),
    ],
)
def test_outcome_line_and_exit_code(
    status: str, counts: dict[str, int], line: str, code: int
) -> None:
    done = summary(status, total=300, **counts)
    assert outcome_line(done) == line
    assert exit_code(done) == code


@pytest.mark.parametrize(
    ("ms", "text"), [(None, "—"), (0, "0ms"), (999, "999ms"), (1250, "1.2s"), (125_000, "2m05s")]
)
def test_durations_are_short(ms: float | None, text: str) -> None:
    assert format_duration(ms) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (40 * 2**20, "40.0 MiB"),
        (3 * 2**30, "3.0 GiB"),
    ],
)
def test_sizes_are_short(size: int, text: str) -> None:
    assert format_bytes(size) == text


def test_watch_stops_when_until_says_so() -> None:
    paused = summary("paused", total=10, failed=10) | {"pause_reason": "failure_rate"}
    client, adapter = canned_client(json_answer(200, paused))
    result = watch_session(client, "s1", timeout_s=60, interval_s=0, until=paused_itself)
    assert result.finished_at is not None
    assert len(adapter.requests) == 1
