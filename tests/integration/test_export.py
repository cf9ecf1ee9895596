"""Results exports through the API: every unit in input order, at any moment, in every format,
written once per session version and handed out as a presigned GET (DESIGN §6)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
from openpyxl import load_workbook

from chute_cli.promptsdemo import unescaped
from tests.integration.conftest import Stack
from tests.integration.test_prompts import csv_of, post_session, upload_batch

PROMPT_FIELDS = [
    "response",
    "enhanced_prompt",
    "technique",
    "tokens_in",
    "tokens_out",
    "latency_ms",
    "model",
]
UNIT_COLUMNS = [
    "status",
    "attempt",
    "max_attempts",
    "error_code",
    "error_message",
    "duration_ms",
    "finished_at",
]


def results(stack: Stack, sid: str, fmt: str, user: str = "alice") -> tuple[str, bytes]:
    """(the export's S3 key, its bytes), following the API's redirect."""
    response = stack.client.http.get(
        f"/sessions/{sid}/results?format={fmt}", headers=stack.auth(user)
    )
    assert response.status_code == 302, response.body
    location = response.headers["Location"]
    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200, fetched.text
    return unquote(urlsplit(location).path).split("/", 2)[2], fetched.content


def table(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "a BOM, so Excel reads UTF-8"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def batch(stack: Stack) -> str:
    data = csv_of(
        ["id", "prompt", "status", "tone"],
        [
            ["a1", "=SUM(A1)", "draft", "dry"],
            ["a2", "plain, with a comma\nand a second line", "final", "+warm"],
            ["a3", "chute:fail=400", "draft", "-cold"],
        ],
    )
    return upload_batch(stack, "batch.csv", data)


def test_a_prompts_csv_is_in_input_order_with_its_columns_and_answers(stack: Stack) -> None:
    sid = batch(stack)
    stack.run_until_idle()

    key, data = results(stack, sid, "csv")
    rows = table(data)

    _, summary = stack.get(f"/sessions/{sid}")
    assert key == f"results/{sid}/exports/v{summary['version']}.csv"
    # The input's own `status` column would clash with the unit's: it is renamed, not dropped.
    assert list(rows[0]) == [
        "ordinal",
        "name",
        "row",
        "prompt",
        "id",
        "input_status",
        "tone",
        *UNIT_COLUMNS,
        *PROMPT_FIELDS,
    ]
    assert [(r["ordinal"], r["row"], r["id"]) for r in rows] == [
        ("00000-000000", "2", "a1"),
        ("00000-000001", "3", "a2"),
        ("00000-000002", "4", "a3"),
    ]
    # Formula-looking cells are escaped in the table (stored verbatim, see the JSON test).
    assert [r["prompt"] for r in rows] == [
        "'=SUM(A1)",
        "plain, with a comma\nand a second line",
        "chute:fail=400",
    ]
    assert [r["tone"] for r in rows] == ["dry", "'+warm", "'-cold"]
    assert [r["input_status"] for r in rows] == ["draft", "final", "draft"]
    assert [r["status"] for r in rows] == ["completed", "completed", "failed"]
    assert [r["error_code"] for r in rows] == ["", "", "model_rejected"]
    assert rows[2]["error_message"].endswith("asked to fail this prompt with 400.")
    assert rows[2]["response"] == ""
    for row in rows[:2]:
        answer = json.loads(row["response"])
        assert (unescaped(row["enhanced_prompt"]), row["technique"]) == (
            answer["enhanced_prompt"],
            answer["technique"],
        )
        assert row["model"] == "chute-dev"
    assert summary["usage"]["tokens_in"] == sum(int(r["tokens_in"] or 0) for r in rows)


def test_results_are_there_before_anything_ran_and_say_so(stack: Stack) -> None:
    sid = batch(stack)
    stack.stack.drain("on_upload")  # fanned out; no unit has run

    _, data = results(stack, sid, "csv")

    rows = table(data)
    assert [(r["row"], r["status"], r["attempt"], r["response"]) for r in rows] == [
        ("2", "pending", "0", ""),
        ("3", "pending", "0", ""),
        ("4", "pending", "0", ""),
    ]


def test_an_unchanged_session_reuses_its_export_and_a_moved_one_gets_a_new_one(
    stack: Stack,
) -> None:
    sid = batch(stack)
    stack.stack.drain("on_upload")
    before, _ = results(stack, sid, "jsonl")
    s3, bucket = stack.stack.services.s3, stack.stack.settings.bucket
    made = s3.head_object(Bucket=bucket, Key=before)["LastModified"]

    again, _ = results(stack, sid, "jsonl")
    assert again == before
    assert s3.head_object(Bucket=bucket, Key=before)["LastModified"] == made

    stack.run_until_idle()
    after, data = results(stack, sid, "jsonl")
    assert after != before
    assert [json.loads(line)["status"] for line in data.splitlines()] == [
        "completed",
        "completed",
        "failed",
    ]


def test_json_keeps_every_value_verbatim_and_nested(stack: Stack) -> None:
    sid = batch(stack)
    stack.run_until_idle()

    _, data = results(stack, sid, "json")
    document = json.loads(data)

    assert (document["session_id"], document["job_type"]) == (sid, "prompts")
    first, _, failed = document["results"]
    assert (first["prompt"], first["columns"]) == (
        "=SUM(A1)",
        {"id": "a1", "status": "draft", "tone": "dry"},
    )
    assert first["result"]["tokens_out"] > 0
    assert failed["error"]["code"] == "model_rejected"
    assert failed["result"] is None


def test_xlsx_has_the_same_table_with_numbers_as_numbers(stack: Stack) -> None:
    sid = batch(stack)
    stack.run_until_idle()
    _, csv_data = results(stack, sid, "csv")

    _, data = results(stack, sid, "xlsx")
    sheet = load_workbook(io.BytesIO(data))["results"]
    cells = [list(row) for row in sheet.iter_rows(values_only=True)]

    expected = table(csv_data)
    assert cells[0] == list(expected[0])
    assert [row[3] for row in cells[1:]] == [
        "'=SUM(A1)",
        "plain, with a comma\nand a second line",
        "chute:fail=400",
    ]
    assert [row[2] for row in cells[1:]] == [2, 3, 4]
    tokens_in = cells[0].index("tokens_in")
    assert [row[tokens_in] for row in cells[1:]] == [
        int(r["tokens_in"]) if r["tokens_in"] else None for r in expected
    ]


def test_a_documents_zip_holds_the_table_and_each_result_document(stack: Stack) -> None:
    created = stack.create(
        [
            ("notes.txt", b"hello world\n"),
            ("broken.pdf", b"%PDF-1.7 not really"),
            ("b.md", b"# Title\n"),
        ]
    )
    sid = created["session_id"]
    stack.run_until_idle()

    _, data = results(stack, sid, "zip")
    archive = zipfile.ZipFile(io.BytesIO(data))

    rows = table(archive.read("results.csv"))
    assert [(r["ordinal"], r["name"], r["status"]) for r in rows] == [
        ("00000-000000", "notes.txt", "completed"),
        ("00001-000000", "broken.pdf", "failed"),
        ("00002-000000", "b.md", "completed"),
    ]
    assert (rows[0]["type"], rows[0]["words"], rows[0]["bytes"]) == ("txt", "2", "12")
    assert sorted(archive.namelist()) == [
        "results.csv",
        "results/00000-000000.json",
        "results/00002-000000.json",
    ]
    assert json.loads(archive.read("results/00000-000000.json"))["text"] == "hello world\n"


def test_the_link_downloads_as_a_file_named_after_the_session(stack: Stack) -> None:
    status, created = post_session(
        stack, {"job_type": "prompts", "prompts": ["x"], "name": "Spring ideas — ünïcode"}
    )
    assert status == 201
    response = stack.client.http.get(
        f"/sessions/{created['session_id']}/results?format=xlsx", headers=stack.auth()
    )
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["response-content-disposition"] == [
        'attachment; filename="Spring ideas  unicode results.xlsx"; '
        "filename*=UTF-8''Spring%20ideas%20%E2%80%94%20%C3%BCn%C3%AFcode%20results.xlsx"
    ]


@pytest.mark.parametrize(
    ("path", "user", "status", "code"),
    [
        ("/results?format=pdf", "alice", 400, "invalid_format"),
        ("/results", "mallory", 404, "session_not_found"),
    ],
)
def test_a_bad_format_or_someone_elses_session_is_refused(
    stack: Stack, path: str, user: str, status: int, code: str
) -> None:
    _, created = post_session(stack, {"job_type": "prompts", "prompts": ["x"]})
    response = stack.client.http.get(
        f"/sessions/{created['session_id']}{path}", headers=stack.auth(user)
    )
    body: dict[str, Any] = json.loads(response.body)
    assert (response.status_code, body["error"]["code"]) == (status, code)
