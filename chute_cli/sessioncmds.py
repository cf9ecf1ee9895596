"""The commands about sessions that exist: status, files, pause/resume/cancel/retry, results and
the list of sessions. chute_cli.main registers them on the app.

What they answer goes to stdout (a table, JSON with --json, the results' bytes with `-o -`);
what they say about it goes to stderr.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from chalicelib.models import UnitStatus
from chute_cli.cli import (
    EXIT_FAILED,
    ApiUrlOption,
    AsJsonOption,
    TokenOption,
    api_errors,
    fail,
    make_client,
    root_of,
    say,
)
from chute_cli.report import progress_text, session_cells, unit_cells

SessionId = Annotated[str, typer.Argument(metavar="SESSION_ID", show_default=False)]

_FILES_COLUMNS = ("ordinal", "name", "status", "stage", "progress", "attempt", "error", "duration")
_SESSIONS_COLUMNS = ("id", "name", "status", "progress", "created")
_PIPED_WIDTH = 400
_SUMMARY_ROWS = ("name", "job_type", "files_received", "files_total", "timed_out", "can_resume")


class ResultsFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    JSONL = "jsonl"
    XLSX = "xlsx"
    ZIP = "zip"


def _stdout() -> Console:
    """A terminal's width in one; piped, as wide as a table needs, so no id is ever cut. Made per
    call: it writes to the sys.stdout of the moment (a test runner swaps it)."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=_PIPED_WIDTH)


def _table(headers: tuple[str, ...], rows: list[list[str]], *, key: str) -> Table:
    """A table of plain text (no markup read in names). The `key` column (what other commands
    take) is never cut nor wrapped; in too narrow a terminal the others wrap or are shortened."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in headers:
        table.add_column(header, no_wrap=header == key, overflow="fold")
    for row in rows:
        table.add_row(*map(Text, row))
    return table


def _echo_json_lines(records: list[dict[str, Any]]) -> None:
    for record in records:
        typer.echo(json.dumps(record, ensure_ascii=False))


def status(
    ctx: typer.Context,
    session_id: SessionId,
    as_json: AsJsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Print a session's summary (--json: the API's summary as it is)."""
    client = make_client(root_of(ctx), api_url, token)
    with api_errors(client):
        summary, _ = client.get_session(session_id)
    assert summary is not None  # only a conditional request can answer 304
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    table = Table(show_header=False, box=None)
    rows = [("session", session_id), ("progress", progress_text(summary))]
    rows += [(key.replace("_", " "), str(summary.get(key))) for key in _SUMMARY_ROWS]
    rows.append(("counts", json.dumps(summary.get("counts", {}))))
    if summary.get("pause_reason"):
        rows.append(("paused", str(summary["pause_reason"])))
    if summary.get("error"):
        rows.append(("error", json.dumps(summary["error"], ensure_ascii=False)))
    for key, value in rows:
        table.add_row(key, Text(value))
    _stdout().print(table)


def files(
    ctx: typer.Context,
    session_id: SessionId,
    status: Annotated[
        UnitStatus | None, typer.Option("--status", help="Only the units of this status.")
    ] = None,
    as_json: AsJsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Every unit of a session in input order: a table, or one JSON object a line with --json."""
    client = make_client(root_of(ctx), api_url, token)
    with api_errors(client):
        units = list(client.iter_files(session_id, status=status.value if status else None))
    if as_json:
        _echo_json_lines(units)
        return
    if not units:
        say(f"No {status.value + ' ' if status else ''}units in session {session_id}.")
        return
    rows = [unit_cells(unit) for unit in units]
    _stdout().print(_table(_FILES_COLUMNS, rows, key="ordinal"))


def _control(
    ctx: typer.Context,
    session_id: str,
    action: str,
    api_url: str | None,
    token: str | None,
    *,
    everything: bool = False,
) -> None:
    """POST the action; the session's status line afterwards. A 409 (the session's status
    forbids it) is the API's message and exit 1."""
    client = make_client(root_of(ctx), api_url, token)
    with api_errors(client, EXIT_FAILED):
        summary = client.control(session_id, action, everything=everything)
    typer.echo(f"{session_id}: {progress_text(summary)}")


def pause(
    ctx: typer.Context,
    session_id: SessionId,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Pause a session: nothing new starts; running units finish."""
    _control(ctx, session_id, "pause", api_url, token)


def resume(
    ctx: typer.Context,
    session_id: SessionId,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Resume a paused session."""
    _control(ctx, session_id, "resume", api_url, token)


def cancel(
    ctx: typer.Context,
    session_id: SessionId,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel a session: waiting units end cancelled; a running one finishes."""
    _control(ctx, session_id, "cancel", api_url, token)


def retry(
    ctx: typer.Context,
    session_id: SessionId,
    everything: Annotated[
        bool,
        typer.Option("--all", help="Every failed unit, not only those whose error may go away."),
    ] = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Retry the failed and timed-out units whose error may go away (--all: every one)."""
    _control(ctx, session_id, "retry", api_url, token, everything=everything)


def results(
    ctx: typer.Context,
    session_id: SessionId,
    fmt: Annotated[
        ResultsFormat, typer.Option("--format", "-f", help="The export's format.")
    ] = ResultsFormat.CSV,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Where to write them ('-': stdout); default: SESSION_ID.FORMAT here.",
        ),
    ] = None,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Download every unit's result, in input order, as they are now."""
    client = make_client(root_of(ctx), api_url, token)
    with api_errors(client):
        data = client.results(session_id, fmt.value)
    if output == "-":
        stream = typer.get_binary_stream("stdout")
        stream.write(data)
        stream.flush()
        return
    path = Path(output or f"{session_id}.{fmt.value}")
    try:
        path.write_bytes(data)
    except OSError as error:
        fail(f"Cannot write {path}: {error.strerror or error}.")
    say(f"Wrote the {fmt.value} results of session {session_id} ({len(data):,} bytes) to {path}.")


def sessions(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, help="How many sessions, newest first.")
    ] = 20,
    as_json: AsJsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Your sessions, newest first: id, name, status, progress and when each was created."""
    client = make_client(root_of(ctx), api_url, token)
    with api_errors(client):
        found = client.recent_sessions(limit)
    if as_json:
        _echo_json_lines(found)
        return
    if not found:
        say("No sessions yet: `chute upload PATH...` starts one.")
        return
    rows = [session_cells(summary) for summary in found]
    _stdout().print(_table(_SESSIONS_COLUMNS, rows, key="id"))
