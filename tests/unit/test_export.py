"""The pieces of a results export: cells, the table's columns, the writers, the ordered prefetch."""

from __future__ import annotations

import io
import json
import random
import threading
import time

import pytest

from chalicelib.export.cells import cell, escaped
from chalicelib.export.records import Layout, ResultRecord
from chalicelib.export.writers import with_documents, write_json, write_jsonl
from chalicelib.models import UnitStatus
from chalicelib.store.items import UnitItem


def unit(index: int, result_key: str | None = None) -> UnitItem:
    return UnitItem(
        sid="s1",
        file=0,
        index=index,
        name=f"u{index}",
        status=UnitStatus.PENDING,
        max_attempts=3,
        result_key=result_key,
        created_at=0.0,
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+31 6 1234", "'+31 6 1234"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("a=1", "a=1"),
        ("'=already", "'=already"),
        ("", ""),
    ],
)
def test_text_a_spreadsheet_would_run_is_escaped(text: str, shown: str) -> None:
    assert escaped(text) == shown
    assert cell(text) == shown


def test_numbers_stay_numbers_and_objects_become_json() -> None:
    assert [cell(-5), cell(2.5), cell(None), cell(True)] == [-5, 2.5, None, "true"]
    assert cell({"b": "=x", "a": 1}) == '{"a": 1, "b": "=x"}'
    assert cell(["=x"]) == '["=x"]'


def test_input_columns_that_clash_are_renamed_in_order() -> None:
    layout = Layout.of(True, ["status", "input_status", "prompt2", "model"], ("model", "tokens_in"))

    assert layout.input_columns == {
        "status": "input_status",
        "input_status": "input_input_status",
        "prompt2": "prompt2",
        "model": "input_model",
    }
    assert len(set(layout.headers)) == len(layout.headers)


def test_result_fields_named_like_unit_fields_are_prefixed() -> None:
    layout = Layout.of(False, [], ("status", "pages"))

    assert layout.headers[-2:] == ["result_status", "result_pages"]


def test_json_is_valid_with_no_records_and_with_some() -> None:
    empty = io.BytesIO()
    write_json([], {"session_id": "s1"}, empty)
    assert json.loads(empty.getvalue()) == {"session_id": "s1", "results": []}

    some = io.BytesIO()
    count = write_json([ResultRecord(unit(0)), ResultRecord(unit(1))], {"v": 1}, some)
    document = json.loads(some.getvalue())
    assert (count, [r["ordinal"] for r in document["results"]]) == (
        2,
        ["00000-000000", "00000-000001"],
    )


def test_jsonl_is_one_record_per_line() -> None:
    out = io.BytesIO()
    assert write_jsonl([ResultRecord(unit(i)) for i in range(3)], out) == 3
    assert [json.loads(line)["name"] for line in out.getvalue().splitlines()] == ["u0", "u1", "u2"]


def test_documents_come_back_in_order_however_the_fetches_finish() -> None:
    rng = random.Random(3)
    lock = threading.Lock()
    running = most = 0

    def fetch(key: str) -> bytes:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(rng.random() * 0.01)
        with lock:
            running -= 1
        return key.encode()

    stream = [ResultRecord(unit(i, None if i % 5 == 0 else f"k{i}")) for i in range(100)]
    out = list(with_documents(stream, fetch))

    assert [r.unit.index for r in out] == list(range(100))
    assert [r.document for r in out] == [
        None if i % 5 == 0 else f"k{i}".encode() for i in range(100)
    ]
    assert 1 < most <= 8
