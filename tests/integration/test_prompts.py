"""Prompts sessions end to end on the in-process stack, against the real dev model server over HTTP:
a batch file or inline prompts → one unit per row → a model call per row → counted, in order."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
import requests

from chalicelib.processors.prompts import ENHANCER
from infra.model_server import tokens
from tests.batchfiles import billion_laughs, xlsx
from tests.faults.inject import fail_calls
from tests.integration.conftest import Stack


def post_session(stack: Stack, body: dict[str, Any], user: str = "alice") -> tuple[int, Any]:
    response = stack.client.http.post("/sessions", headers=stack.auth(user), body=json.dumps(body))
    return response.status_code, json.loads(response.body)


def upload_batch(stack: Stack, name: str, data: bytes, **options: Any) -> str:
    body: dict[str, Any] = {
        "job_type": "prompts",
        "files": [{"name": name, "size": len(data), "content_type": "text/csv"}],
    }
    if options:
        body["options"] = options
    status, created = post_session(stack, body)
    assert status == 201, created
    (ticket,) = created["uploads"]
    posted = requests.post(
        ticket["url"], data=ticket["fields"], files={"file": (name, data)}, timeout=10
    )
    assert posted.status_code == 204, posted.text
    return str(created["session_id"])


def csv_of(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def units(stack: Stack, sid: str) -> list[dict[str, Any]]:
    status, page = stack.get(f"/sessions/{sid}/files?limit=100")
    assert status == 200
    return list(page["items"])


def test_inline_prompts_need_no_upload_and_complete_in_order_with_tokens_summed(
    stack: Stack,
) -> None:
    prompts = ["a cat on a mat", "Ünïcödé — “quotes”, commas", "line one\nline two"]
    status, created = post_session(stack, {"job_type": "prompts", "prompts": prompts})
    assert status == 201, created
    assert created["uploads"] == []
    sid = created["session_id"]

    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], summary["total"], summary["name"]) == (
        "completed",
        3,
        "3 pasted prompts",
    )
    rows = units(stack, sid)
    assert [r["ordinal"] for r in rows] == ["00000-000000", "00000-000001", "00000-000002"]
    assert [r["name"] for r in rows] == [
        "row 1: a cat on a mat",
        "row 2: Ünïcödé — “quotes”, commas",
        "row 3: line one line two",
    ]
    for row, prompt in zip(rows, prompts, strict=True):
        result = row["result"]
        # The dev model keeps to the enhancer's JSON: both fields parsed out of the answer.
        assert json.loads(result["response"]) == {
            "enhanced_prompt": result["enhanced_prompt"],
            "technique": result["technique"],
        }
        assert result["model"] == "chute-dev"
        # The dev model counts ceil(words x 4/3) tokens per side.
        assert result["tokens_in"] == tokens(ENHANCER) + tokens(prompt)
        assert result["tokens_out"] == tokens(result["response"])
    assert summary["usage"] == {
        "tokens_in": sum(r["result"]["tokens_in"] for r in rows),
        "tokens_out": sum(r["result"]["tokens_out"] for r in rows),
    }
    (email,) = stack.emails()
    assert "3 of 3 rows completed" in email["Message"]


def test_a_csv_batch_is_one_unit_per_row_and_the_template_sees_its_columns(stack: Stack) -> None:
    data = csv_of(
        ["Topic", " Prompt ", "tone"],
        [["cats", "=SUM(A1)", "dry"], ["dogs", "write, please", "warm"], ["", "", ""]],
    )
    sid = upload_batch(stack, "batch.csv", data, template="Be {tone} about {topic}: {prompt}")

    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], summary["total"]) == ("completed", 2)
    rows = units(stack, sid)
    assert [r["name"] for r in rows] == ["row 2: =SUM(A1)", "row 3: write, please"]
    result = stack.stack.services.s3.get_object(
        Bucket=stack.stack.settings.bucket, Key=rows[0]["result_key"]
    )
    document = json.loads(result["Body"].read())
    # Stored verbatim (escaping is the export's job), and the template filled from the row.
    assert document["prompt"] == "=SUM(A1)"
    assert document["columns"] == {"Topic": "cats", "tone": "dry"}
    assert document["messages"] == [{"role": "user", "content": "Be dry about cats: =SUM(A1)"}]
    # With a template the answer is text, not the enhancer's JSON.
    assert rows[0]["result"]["enhanced_prompt"] is None
    rows_file = stack.stack.services.s3.get_object(
        Bucket=stack.stack.settings.bucket, Key=f"inputs/{sid}/rows.jsonl"
    )["Body"].read()
    assert [json.loads(line)["row"] for line in rows_file.splitlines()] == [2, 3]


def test_a_bad_batch_file_rejects_the_session_with_no_unit_and_one_email(stack: Stack) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    sid = upload_batch(stack, "prompts.csv", png)

    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], summary["total"], summary["progress"]) == ("rejected", 0, 0.0)
    assert summary["error"]["code"] == "not_a_batch_file"
    assert units(stack, sid) == []
    (email,) = stack.emails()
    assert email["MessageAttributes"]["event"]["Value"] == "session.rejected"
    assert "was rejected" in email["Message"]


def test_a_template_naming_a_missing_column_rejects_the_batch(stack: Stack) -> None:
    sid = upload_batch(stack, "b.csv", csv_of(["prompt"], [["x"]]), template="{mood}: {prompt}")

    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert summary["status"] == "rejected"
    assert summary["error"]["code"] == "template_unknown_column"
    assert summary["error"]["details"] == {"column": "mood", "columns": ["prompt"]}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"job_type": "prompts"}, "invalid_manifest"),
        ({"job_type": "prompts", "prompts": ["a"], "text": "b"}, "invalid_manifest"),
        ({"job_type": "documents", "prompts": ["a"]}, "invalid_manifest"),
        ({"job_type": "prompts", "prompts": ["x"] * 1001}, "too_many_prompts"),
        ({"job_type": "prompts", "prompts": ["", "  "]}, "no_prompts"),
        (
            {"job_type": "prompts", "text": "a", "options": {"template": "{prompt"}},
            "invalid_template",
        ),
        (
            {"job_type": "prompts", "text": "a", "options": {"template": "{topic}"}},
            "template_unknown_column",
        ),
        (
            {"job_type": "prompts", "files": [{"name": "p.png", "size": 5}]},
            "unsupported_file_type",
        ),
        (
            {"job_type": "prompts", "files": [{"name": "p.csv", "size": 10 * 1024 * 1024 + 1}]},
            "file_too_large",
        ),
        ({"job_type": "prompts", "files": [{"name": "p.csv", "size": 0}]}, "empty_file"),
    ],
)
def test_bad_prompts_requests_are_refused_with_a_stable_code(
    stack: Stack, body: dict[str, Any], code: str
) -> None:
    status, error = post_session(stack, body)
    assert (status, error["error"]["code"]) == (400, code)


def test_model_failures_fail_only_their_row_and_transient_ones_are_retried(stack: Stack) -> None:
    # The dev model server fails on request: a 400 is the row's fault (permanent, the provider's
    # message kept); a 503 once then an answer is retried; a 429 every time runs out of attempts.
    prompts = ["fine", "chute:fail=400 this one", "chute:flaky=1 then fine", "chute:fail=429"]
    status, created = post_session(stack, {"job_type": "prompts", "prompts": prompts})
    assert status == 201, created
    sid = created["session_id"]

    # Each retry waits for the dev model's Retry-After (1 s): SQS holds the message that long.
    summary = stack.run_until_settled(sid)

    assert summary["status"] == "completed_with_errors"
    assert (summary["counts"]["completed"], summary["counts"]["failed"]) == (2, 2)
    fine, refused, flaky, limited = units(stack, sid)
    assert (fine["status"], fine["attempt"]) == ("completed", 1)
    assert (refused["status"], refused["attempt"]) == ("failed", 1)
    assert refused["error"]["code"] == "model_rejected"
    assert refused["error"]["message"] == (
        "The model endpoint (127.0.0.1) refused this row (400): "
        "The dev model was asked to fail this prompt with 400."
    )
    assert (flaky["status"], flaky["attempt"]) == ("completed", 2)
    assert (limited["status"], limited["attempt"]) == ("failed", 3)
    assert limited["error"]["code"] == "model_rate_limited"
    by_status = stack.stack.model.stats()["by_status"]
    assert by_status == {"200": 2, "400": 1, "429": 3, "503": 1}


def test_an_xlsx_batch_reads_the_named_sheet_and_a_txt_batch_one_prompt_per_line(
    stack: Stack,
) -> None:
    workbook = xlsx(
        {
            "Notes": [["nothing", "here"]],
            "Batch": [["Prompt", "owner"], ["first from the sheet", "ana"], [42, "bo"]],
        }
    )
    book_sid = upload_batch(stack, "ideas.xlsx", workbook, sheet="Batch")
    text_sid = upload_batch(stack, "ideas.txt", b"one\n\n  \ntwo\r\nthree")

    stack.run_until_idle()

    assert [r["name"] for r in units(stack, book_sid)] == [
        "row 2: first from the sheet",
        "row 3: 42",
    ]
    assert [r["name"] for r in units(stack, text_sid)] == [
        "row 1: one",
        "row 4: two",
        "row 5: three",
    ]
    for sid in (book_sid, text_sid):
        assert stack.get(f"/sessions/{sid}")[1]["status"] == "completed"


def test_a_workbook_bomb_is_rejected_without_a_unit(stack: Stack) -> None:
    sid = upload_batch(stack, "bomb.xlsx", billion_laughs())

    stack.run_until_idle()

    _, summary = stack.get(f"/sessions/{sid}")
    assert (summary["status"], summary["error"]["code"], summary["total"]) == (
        "rejected",
        "xlsx_unreadable",
        0,
    )


def test_a_retry_after_the_answer_came_uses_the_checkpoint_not_the_model(stack: Stack) -> None:
    status, created = post_session(stack, {"job_type": "prompts", "prompts": ["only once"]})
    assert status == 201
    sid = created["session_id"]
    stack.stack.drain("on_upload")
    # The first attempt gets its answer, then cannot save its result: it is retried.
    failed = fail_calls(stack.stack.services.s3, "before-call.s3.PutObject", times=1)

    summary = stack.run_until_settled(sid)

    assert failed.count == 1
    assert summary["status"] == "completed"
    (row,) = units(stack, sid)
    assert row["attempt"] == 2
    assert stack.stack.model.stats()["requests"] == 1  # the answer came from the checkpoint
    assert row["result"]["tokens_out"] == tokens(row["result"]["response"])
