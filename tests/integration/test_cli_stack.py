"""The `chute` command end to end against a real local stack (moto, the API, the dispatcher and
the dev model server): what a person typing it sees, and its exit codes.

One stack per test (four in all): the suite's autouse fixture clears the CHUTE_* variables the
stack sets, so a stack shared between tests would lose its settings. The stack runs in this
process, as the command does under CliRunner: what the stack's threads print (its access log,
the email outbox) is kept out of the command's output, which is asserted line by line.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import pytest
from typer.testing import CliRunner, Result

from chute_cli import main
from chute_cli.main import app
from infra.local import LocalStack


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    monkeypatch.setattr(main, "WATCH_INTERVAL_S", 0.2)
    monkeypatch.setenv("CHUTE_DEV_MODEL_LATENCY_MS", "5")
    with LocalStack(tmp_path, api_port=0) as running:
        yield running


@pytest.fixture
def idle_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A stack whose dispatcher does not run: uploaded sessions wait, for steering them."""
    with LocalStack(tmp_path, api_port=0, start_dispatcher=False) as running:
        yield running


class _OneThreadsStream:
    """Takes the writes of one thread (the command's); passes other threads' on, unchanged."""

    def __init__(self, mine: IO[str], others: IO[str]) -> None:
        self._mine = mine
        self._others = others
        self._thread = threading.get_ident()

    def _target(self) -> IO[str]:
        return self._mine if threading.get_ident() == self._thread else self._others

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


class CommandOnlyRunner(CliRunner):
    """CliRunner capturing only the command's own output, not the in-process stack's."""

    @contextlib.contextmanager
    def isolation(
        self,
        input: str | bytes | None = None,
        env: Mapping[str, str | None] | None = None,
        color: bool = False,
    ) -> Iterator[tuple[io.BytesIO, io.BytesIO, io.BytesIO]]:
        outer_out, outer_err = sys.stdout, sys.stderr
        with super().isolation(input, env, color) as streams:
            captured_out, captured_err = sys.stdout, sys.stderr
            sys.stdout = _OneThreadsStream(captured_out, outer_out)
            sys.stderr = _OneThreadsStream(captured_err, outer_err)
            try:
                yield streams
            finally:
                sys.stdout, sys.stderr = captured_out, captured_err


def chute(stack: LocalStack, *args: str) -> Result:
    """The command as typed, with the stack's directory as --root (its .chute/local.json)."""
    return CommandOnlyRunner().invoke(
        app, ["--root", str(stack.root), *args], catch_exceptions=False
    )


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def session_id_of(result: Result) -> str:
    session_id = result.stdout.splitlines()[0]
    assert len(session_id) == 32
    assert session_id.isalnum()
    return session_id


def test_upload_watch_files_results_and_sessions_of_two_documents(
    stack: LocalStack, tmp_path: Path
) -> None:
    first = write(tmp_path / "a.txt", b"alpha beta gamma\n")
    second = write(tmp_path / "b.txt", b"one two\nthree\n")

    uploaded = chute(stack, "upload", first, second, "--watch")

    assert uploaded.exit_code == 0, uploaded.output
    sid = session_id_of(uploaded)
    assert uploaded.stdout == f"{sid}\n"
    assert uploaded.stderr.splitlines()[-1] == "2 of 2 done"

    listed = chute(stack, "files", sid, "--json")
    assert listed.exit_code == 0, listed.output
    units = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(u["name"], u["status"], u["attempt"]) for u in units] == [
        ("a.txt", "completed", 1),
        ("b.txt", "completed", 1),
    ]

    table = chute(stack, "files", sid)
    assert table.exit_code == 0, table.output
    rows = [line.split()[:3] for line in table.stdout.splitlines() if "-000000" in line]
    assert rows == [
        ["00000-000000", "a.txt", "completed"],
        ["00001-000000", "b.txt", "completed"],
    ]

    target = tmp_path / "results.csv"
    results = chute(stack, "results", sid, "-o", str(target))
    assert results.exit_code == 0, results.output
    records = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert [(r["name"], r["status"], r["words"]) for r in records] == [
        ("a.txt", "completed", "3"),
        ("b.txt", "completed", "3"),
    ]
    assert results.stderr.startswith(f"Wrote the csv results of session {sid} (")

    sessions = chute(stack, "sessions", "--json")
    assert sessions.exit_code == 0, sessions.output
    [mine] = [json.loads(line) for line in sessions.stdout.splitlines()]
    assert (mine["session_id"], mine["name"], mine["status"]) == (sid, "2 files", "completed")

    status = chute(stack, "status", sid)
    assert status.exit_code == 0, status.output
    assert "completed 2/2 (100%)" in status.stdout


def test_a_corrupt_pdf_exits_1_with_its_unit_listed_and_bad_input_is_one_line(
    stack: LocalStack, tmp_path: Path
) -> None:
    broken = write(tmp_path / "broken.pdf", b"%PDF-1.4 broken")
    good = write(tmp_path / "good.txt", b"fine text\n")

    uploaded = chute(stack, "upload", broken, good, "--watch")

    assert uploaded.exit_code == 1, uploaded.output
    sid = session_id_of(uploaded)
    lines = uploaded.stderr.splitlines()
    assert lines[-2] == "1 of 2 done, 1 failed"
    assert lines[-1].startswith("00000-000000  broken.pdf  failed  pdf_unreadable: ")
    failed = chute(stack, "files", sid, "--status", "failed", "--json")
    assert [json.loads(line)["error"]["code"] for line in failed.stdout.splitlines()] == [
        "pdf_unreadable"
    ]

    # An id with a slash stays one path segment: the API's 404, no gateway error, no token.
    unknown = chute(stack, "status", "a/b")
    assert unknown.exit_code == 1
    assert unknown.stderr == "error: No session 'a%2Fb'. (session_not_found, HTTP 404)\n"
    assert stack.info["token"] not in unknown.output

    exe = chute(stack, "upload", write(tmp_path / "x.exe", b"MZ"))
    assert exe.exit_code == 2
    assert exe.stderr.startswith("error: 'x.exe' is not a supported file type.")
    assert exe.stderr.endswith("(unsupported_file_type, HTTP 400)\n")
    assert exe.stderr.count("\n") == 1

    bad_token = chute(stack, "sessions", "--token", "not-a-token")
    assert bad_token.exit_code == 1
    assert bad_token.stderr.endswith("(token_malformed, HTTP 401); check --token or CHUTE_TOKEN\n")

    finished = chute(stack, "pause", sid)
    assert finished.exit_code == 1
    assert finished.stderr == (
        "error: A completed with errors session cannot be paused. (invalid_state, HTTP 409)\n"
    )


def test_a_prompts_batch_runs_every_row_through_the_dev_model(
    stack: LocalStack, tmp_path: Path
) -> None:
    batch = write(tmp_path / "batch.csv", b"prompt\nhello\nworld\nagain\n")

    uploaded = chute(stack, "upload", "--prompts", batch, "--watch")

    assert uploaded.exit_code == 0, uploaded.output
    sid = session_id_of(uploaded)
    assert uploaded.stderr.splitlines()[-1] == "3 of 3 done"
    results = chute(stack, "results", sid, "--format", "jsonl", "-o", "-")
    assert results.exit_code == 0, results.output
    records = [json.loads(line) for line in results.stdout_bytes.splitlines()]
    assert [(r["prompt"], r["status"]) for r in records] == [
        ("hello", "completed"),
        ("world", "completed"),
        ("again", "completed"),
    ]


def test_pause_resume_and_cancel_steer_a_waiting_session(
    idle_stack: LocalStack, tmp_path: Path
) -> None:
    uploaded = chute(idle_stack, "upload", write(tmp_path / "a.txt", b"text"))
    assert uploaded.exit_code == 0, uploaded.output
    sid = session_id_of(uploaded)

    paused = chute(idle_stack, "pause", sid)
    assert paused.exit_code == 0, paused.output
    assert paused.stdout.startswith(f"{sid}: paused ")

    resumed = chute(idle_stack, "resume", sid)
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout.startswith(f"{sid}: uploading ")

    cancelled = chute(idle_stack, "cancel", sid)
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.stdout.startswith(f"{sid}: cancelled ")

    again = chute(idle_stack, "pause", sid)
    assert again.exit_code == 1
    assert again.stderr == (
        "error: A cancelled session cannot be paused. (invalid_state, HTTP 409)\n"
    )
