"""A prompts batch is parsed and checked as a whole, by its bytes, before any unit exists."""

from __future__ import annotations

import codecs
import csv
import io
import subprocess
import sys
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.batch import (
    MAX_BATCH_BYTES,
    MAX_PROMPT_CHARS,
    BatchRejected,
    BatchRow,
    parse_batch,
    read_row,
    rows_from_prompts,
    rows_from_text,
    rows_jsonl,
)
from tests import batchfiles as files


def rejected(data: bytes, **options: str) -> BatchRejected:
    with pytest.raises(BatchRejected) as caught:
        parse_batch(data, **options)
    return caught.value


def test_a_csv_keeps_its_other_columns_and_numbers_rows_as_a_spreadsheet_does() -> None:
    data = files.csv_bytes(
        [["id", " Prompt ", "", "id"], ["1", 'say "hi",\nthen go', "x", "a"], ["2", "", "", ""]]
    )
    batch = parse_batch(data)
    assert (batch.kind, batch.encoding, batch.dialect, batch.prompt_column) == (
        "csv",
        "utf_8",
        "comma",
        "Prompt",
    )
    assert batch.columns == ["id", "Prompt", "column 3", "id (2)"]
    assert batch.rows == [
        BatchRow(2, 'say "hi",\nthen go', {"id": "1", "column 3": "x", "id (2)": "a"})
    ]
    assert batch.blank_skipped == 1


@pytest.mark.parametrize(("delimiter", "dialect"), [(";", "semicolon"), ("\t", "tab")])
def test_semicolon_and_tab_tables_are_read(delimiter: str, dialect: str) -> None:
    batch = parse_batch(files.csv_bytes([["n", "prompt"], ["1", "a, b; c"]], delimiter=delimiter))
    assert (batch.dialect, batch.rows) == (dialect, [BatchRow(2, "a, b; c", {"n": "1"})])


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (codecs.BOM_UTF8 + "prompt\ncafé\n".encode(), "utf_8_sig"),
        ("prompt\ncafé\n".encode("utf-16"), "utf_16"),
        ("prompt\ncafé\n".encode("utf-16-be").join([codecs.BOM_UTF16_BE, b""]), "utf_16"),
    ],
)
def test_a_byte_order_mark_decides_the_encoding(data: bytes, encoding: str) -> None:
    batch = parse_batch(data)
    assert (batch.encoding, [r.prompt for r in batch.rows]) == (encoding, ["café"])


def test_windows_1252_is_read_when_the_bytes_are_not_utf8() -> None:
    text = "prompt\nCafé crème — “quoted” for 5 €\nÀ bientôt, naïve façade\n"
    batch = parse_batch(text.encode("cp1252"))
    assert batch.encoding == "cp1252"
    assert [r.prompt for r in batch.rows] == [
        "Café crème — “quoted” for 5 €",
        "À bientôt, naïve façade",
    ]


def test_a_text_file_is_one_prompt_per_line_blank_lines_skipped_and_counted() -> None:
    batch = parse_batch(b"Write a poem, please\r\n\r\n  \nTell a story, briefly\n")
    assert (batch.kind, batch.columns, batch.blank_skipped) == ("txt", [], 2)
    assert batch.rows == [
        BatchRow(1, "Write a poem, please", {}),
        BatchRow(4, "Tell a story, briefly", {}),
    ]


def test_a_first_line_naming_the_prompt_column_is_a_header_not_a_prompt() -> None:
    batch = parse_batch(b"PROMPT\nfirst\n")
    assert (batch.kind, batch.rows) == ("csv", [BatchRow(2, "first", {})])


def test_formula_looking_prompts_are_kept_verbatim() -> None:
    prompts = ["=SUM(A1:A3)", "+1", "-2", "@cmd", "\tindented"]
    batch = parse_batch(files.csv_bytes([["prompt"], *([p] for p in prompts)]))
    assert [r.prompt for r in batch.rows] == prompts


def test_another_prompt_column_can_be_chosen() -> None:
    batch = parse_batch(files.csv_bytes([["q", "text"], ["1", "hi"]]), prompt_column="TEXT")
    assert batch.rows == [BatchRow(2, "hi", {"q": "1"})]


@pytest.mark.parametrize(
    ("data", "code", "details"),
    [
        (b"", "empty_file", {}),
        (b" \n\n", "empty_file", {}),
        (files.PNG, "not_a_batch_file", {"looks_like": "a PNG image"}),
        (b"%PDF-1.7\n", "not_a_batch_file", {"looks_like": "a PDF document"}),
        (files.docx_like(), "not_a_batch_file", {"looks_like": "a Word document"}),
        (b"ab\x00\x01\x02cd" * 10, "not_a_batch_file", {"looks_like": "binary data"}),
        (b"prompt,extra\n", "header_only", {"columns": ["prompt", "extra"]}),
        (b"prompt\n\n \n", "header_only", {"columns": ["prompt"]}),
        (b"prompt,b\n,x\n ,y\n", "no_prompts", {}),
        (b"Topic\tTone\nCats\twarm\nDogs\tdry\n", "no_prompt_column", None),
        (
            b"a,b\n1,2\n3,4\n",
            "no_prompt_column",
            {"prompt_column": "prompt", "columns": ["a", "b"]},
        ),
        (b"prompt,b\nx,y\nx,y,z\n", "csv_malformed", {"row": 3, "cells": 3, "columns": 2}),
        (
            b"prompt,note\nok," + b"n" * (MAX_PROMPT_CHARS + 1) + b"\n",
            "prompt_too_long",
            {"row": 2, "column": "note", "chars": MAX_PROMPT_CHARS + 1, "max_chars": 32_000},
        ),
        (files.numbered(1001), "too_many_prompts", {"max_prompts": 1000}),
        (
            files.just_over(MAX_BATCH_BYTES),
            "file_too_large",
            {"max_file_bytes": MAX_BATCH_BYTES, "bytes": MAX_BATCH_BYTES + 1},
        ),
        (
            b"prompt\nok\n" + b"y" * 2_000_000 + b"\n",
            "prompt_too_long",
            {"row": 3, "column": "prompt", "chars": 2_000_000, "max_chars": MAX_PROMPT_CHARS},
        ),
        (
            b"y" * 2_000_000,
            "prompt_too_long",
            {"row": 1, "chars": 2_000_000, "max_chars": MAX_PROMPT_CHARS},
        ),
        (codecs.BOM_UTF16_LE + b"p\x00r\x00\x00\xd8", "undecodable_text", None),
    ],
)
def test_a_bad_batch_is_refused_with_a_stable_code_and_where(
    data: bytes, code: str, details: dict[str, object] | None
) -> None:
    error = rejected(data)
    assert error.code == code
    if details is not None:
        assert error.details == details
    assert error.http_status == 400


def test_rows_file_cells_past_the_header_are_tolerated_only_when_empty() -> None:
    batch = parse_batch(b"prompt,b,,\nx,y,,\nz\n")
    assert (batch.columns, batch.rows) == (
        ["prompt", "b"],
        [BatchRow(2, "x", {"b": "y"}), BatchRow(3, "z", {"b": ""})],
    )


def test_header_names_that_collide_with_a_suffix_stay_distinct() -> None:
    batch = parse_batch(b"prompt,id (2),id,ID\nx,a,b,c\n")
    assert batch.columns == ["prompt", "id (2)", "id", "ID (3)"]
    assert batch.rows == [BatchRow(2, "x", {"id (2)": "a", "id": "b", "ID (3)": "c"})]


def test_windows_1252_table_with_the_euro_sign_and_smart_quotes() -> None:
    batch = parse_batch(files.cp1252_csv())
    assert (batch.kind, batch.encoding, batch.dialect) == ("csv", "cp1252", "comma")
    assert batch.rows == [
        BatchRow(2, "Café crème — “quoted”", {"note": "5 €"}),
        BatchRow(3, "À bientôt", {"note": "naïve"}),
    ]


def test_quoted_fields_span_lines_and_keep_commas_and_quotes() -> None:
    batch = parse_batch(files.multiline_csv())
    assert batch.rows == [
        BatchRow(2, 'Say "hi",\nthen, on a new line, "bye"', {"tone": "warm, dry"}),
        BatchRow(3, "ok", {"tone": ""}),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Write a poem, please\nTell a story, briefly\n",
        "Summarise this; keep it short\nList three ideas, then pick one\n",
        "Explain rain.\nWhy is the sky blue, really?\n",
        "Hello,world\n",  # one line: nothing to check a header against
    ],
)
def test_prose_with_commas_is_one_prompt_per_line(text: str) -> None:
    batch = parse_batch(text.encode())
    assert (batch.kind, batch.dialect) == ("txt", None)
    assert [r.prompt for r in batch.rows] == text.splitlines()


def test_a_one_column_table_keeps_the_commas_of_its_prompts() -> None:
    batch = parse_batch(b"Prompt\nWrite a poem, please\nTell a story; briefly\n")
    assert (batch.kind, batch.columns, batch.dialect) == ("csv", ["Prompt"], None)
    assert [r.prompt for r in batch.rows] == ["Write a poem, please", "Tell a story; briefly"]


def test_a_text_file_with_lone_carriage_returns_and_no_final_newline() -> None:
    batch = parse_batch(b"one\rtwo\r\rthree")
    assert (batch.rows, batch.blank_skipped) == (
        [BatchRow(1, "one", {}), BatchRow(2, "two", {}), BatchRow(4, "three", {})],
        1,
    )


def test_a_2_mb_line_is_refused_quickly() -> None:
    import time

    started = time.perf_counter()
    assert rejected(b"prompt\n" + b"z" * 2_000_000).code == "prompt_too_long"
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("maker", "reason"),
    [
        (lambda: files.wide_row_sheet(16_385), "a row holds over 16384 cells"),
        (lambda: files.far_row_sheet(2_000_000), "row numbers past 1048576"),
        (lambda: files.shared_strings_bomb(20), "holds over 100000 strings"),
        (lambda: files.shared_strings_bomb(80), "xl/sharedStrings.xml unpacks to"),
        (files.billion_laughs, "EntitiesForbidden"),
    ],
)
def test_hostile_workbooks_are_refused_before_they_cost_memory_or_time(
    maker: Callable[[], bytes], reason: str
) -> None:
    import time

    data = maker()
    started = time.perf_counter()
    error = rejected(data)
    assert error.code == "xlsx_unreadable"
    assert reason in error.details["reason"]
    assert time.perf_counter() - started < 5.0


def test_a_workbook_value_past_the_header_names_its_row() -> None:
    error = rejected(files.xlsx({"S": [["prompt", "b"], ["x", "y", None, "stray"]]}))
    assert (error.code, error.details) == ("csv_malformed", {"row": 2, "cells": 4, "columns": 2})
    assert "column 4" in error.message


def test_a_workbook_rows_far_apart_count_the_blank_rows_between() -> None:
    batch = parse_batch(files.far_row_sheet(1_000))
    assert (batch.rows, batch.blank_skipped) == ([BatchRow(1000, "x", {})], 998)


def test_exactly_1000_prompts_are_accepted() -> None:
    assert len(parse_batch(files.numbered(1000)).rows) == 1000


def test_an_xlsx_sheet_gives_cached_formula_values_and_cells_as_people_read_them() -> None:
    import datetime

    book = files.xlsx(
        {
            "Notes": [["nothing here"]],
            "Prompts": [
                ["Prompt", "n", "when", "ok"],
                ["hello", 42.0, datetime.datetime(2026, 12, 3), True],
                ["placeholder", 0.1 + 0.2, None, None],
            ],
        }
    )
    book = files.with_cached_formula(book, "A1", 'UPPER("x")', "X")  # first sheet: Notes
    batch = parse_batch(book, sheet="prompts")
    assert (batch.kind, batch.sheet, batch.columns) == (
        "xlsx",
        "Prompts",
        ["Prompt", "n", "when", "ok"],
    )
    assert batch.rows == [
        BatchRow(2, "hello", {"n": "42", "when": "2026-12-03", "ok": "TRUE"}),
        BatchRow(3, "placeholder", {"n": "0.3", "when": "", "ok": ""}),
    ]


def test_an_xlsx_formula_cell_gives_its_cached_value_not_its_formula() -> None:
    book = files.xlsx({"Sheet1": [["prompt"], ["placeholder"]]})
    batch = parse_batch(files.with_cached_formula(book, "A2", 'CONCAT("a","b")', "ab"))
    assert [r.prompt for r in batch.rows] == ["ab"]


def test_an_xlsx_without_the_named_sheet_lists_its_sheets() -> None:
    error = rejected(files.xlsx({"A": [["prompt"]], "B": [["prompt"]]}), sheet="C")
    assert (error.code, error.details) == ("sheet_not_found", {"sheet": "C", "sheets": ["A", "B"]})


def test_an_xlsx_declaring_a_billion_laughs_entity_is_refused_at_once() -> None:
    error = rejected(files.billion_laughs())
    assert error.code == "xlsx_unreadable"


def test_a_png_named_csv_is_refused_whatever_its_name() -> None:
    assert rejected(files.PNG).code == "not_a_batch_file"


def test_inline_prompts_and_pasted_text_follow_the_same_rules() -> None:
    batch = rows_from_prompts(["a", " ", "b\nc"])
    assert (batch.kind, batch.rows, batch.blank_skipped) == (
        "inline",
        [BatchRow(1, "a", {}), BatchRow(3, "b\nc", {})],
        1,
    )
    assert rows_from_text("x\r\n\ny").rows == [BatchRow(1, "x", {}), BatchRow(3, "y", {})]
    with pytest.raises(BatchRejected) as caught:
        rows_from_prompts(["p"] * 1001)
    assert caught.value.code == "too_many_prompts"


def test_the_rows_file_gives_each_row_its_own_byte_range() -> None:
    body, spans = rows_jsonl(rows_from_prompts(["é", "two\nlines"]))
    assert (
        body
        == (
            '{"row":1,"prompt":"é","columns":{}}\n{"row":2,"prompt":"two\\nlines","columns":{}}\n'
        ).encode()
    )
    assert spans == [(0, 37), (37, 82)]
    assert [read_row(body[s:e]) for s, e in spans] == [
        BatchRow(1, "é", {}),
        BatchRow(2, "two\nlines", {}),
    ]


prompt_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1
).filter(lambda s: s.strip() != "" and "\r" not in s)


@settings(max_examples=60, deadline=None)
@given(st.lists(prompt_text, min_size=1, max_size=20))
def test_any_prompts_written_by_a_csv_writer_come_back_exactly_through_the_rows_file(
    prompts: list[str],
) -> None:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["prompt", "n"])
    writer.writerows([p, str(i)] for i, p in enumerate(prompts))
    batch = parse_batch(out.getvalue().encode())
    assert [r.prompt for r in batch.rows] == prompts
    body, spans = rows_jsonl(batch)
    assert [read_row(body[s:e]) for s, e in spans] == batch.rows


@pytest.mark.parametrize(
    "maker",
    [
        "just_over(MAX_BATCH_BYTES - 2)",
        "billion_laughs()",
        "numbered(200_000)",
        "('prompt\\n' + 'ab\\n' * 3_000_000).encode()",
        "b'\\n' * (MAX_BATCH_BYTES - 1)",
        "('a,' * 5_000_000).encode()",
        "wide_row_sheet(16_384)",
        "shared_strings_bomb(1)",
        "far_row_sheet(1_048_576)",
    ],
)
def test_hostile_batches_stay_well_under_256_mb(maker: str) -> None:
    script = (
        "from chalicelib.batch import *\n"
        "from tests.batchfiles import *\n"
        f"data = {maker}\n"
        "try:\n    parse_batch(data)\nexcept BatchRejected:\n    pass\n"
        "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert int(done.stdout) < 256 * 1024
