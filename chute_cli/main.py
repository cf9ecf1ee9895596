"""`chute`: run the local stack, issue tokens, upload and watch sessions, and run the demo.

Human-readable output goes to stderr; stdout carries only what scripts read (a token, a session
id, a summary), so commands compose in shell pipelines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import requests
import typer
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
)
from rich.text import Text

from chalicelib.auth import issue_token
from chalicelib.clock import SystemClock
from chalicelib.models import CreateSessionRequest, FileSpec
from chute_cli import sessioncmds
from chute_cli.cli import (
    EXIT_USAGE,
    ApiUrlOption,
    TimeoutOption,
    TokenOption,
    api_errors,
    app,
    console,
    fail,
    make_client,
    root_of,
    say,
)
from chute_cli.client import ChuteClient
from chute_cli.promptsamples import write_prompts_csv
from chute_cli.promptsdemo import check_results, results_fields, start_prompts_session
from chute_cli.report import (
    EXIT_ERROR,
    demo_summary_line,
    emails_for,
    exit_code,
    failed_units,
    failure_line,
    format_bytes,
    format_email,
    is_terminal,
    outcome_line,
    paused_itself,
    progress_fields,
    progress_text,
    read_outbox,
)
from chute_cli.stack import StackError, StackProcess, running_stack, start_stack
from chute_cli.transfer import BadInput, check_paths, session_request, upload_files

__all__ = ["app", "run_demo_session", "upload_zip", "watch_session"]

TOKEN_KEY_PATH = Path(".chute") / "token_key"
DEMO_DIR = Path(".chute") / "demo"
_NOTIFICATION_WAIT_S = 10.0
_NOTIFICATION_POLL_S = 0.25
# How often `upload --watch` asks for the session's summary.
WATCH_INTERVAL_S = 2.0


@app.command()
def token(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    admin: Annotated[
        bool, typer.Option("--admin", help="An operator's token (the /admin routes).")
    ] = False,
    days: Annotated[int, typer.Option("--days", min=1, help="Days until it expires.")] = 30,
) -> None:
    """Print a local bearer token for NAME, signed with the local stack's key."""
    key_path = root_of(ctx) / TOKEN_KEY_PATH
    try:
        key = key_path.read_text().strip()
    except FileNotFoundError:
        fail(f"No token key at {key_path}: run `make run` first.")
    try:
        typer.echo(
            issue_token(key, name, SystemClock().now(), admin=admin, lifetime_s=days * 86400)
        )
    except ValueError as error:
        fail(str(error), code=2)


@app.command()
def up(ctx: typer.Context) -> None:
    """Run the local stack in the foreground until Ctrl-C."""
    from infra.local import main as run_stack

    raise typer.Exit(run_stack(["--root", str(root_of(ctx))]))


@dataclass(frozen=True)
class WatchResult:
    summary: dict[str, Any] | None
    # time.monotonic() when a terminal status (or `until`) was first seen; None if it timed out.
    finished_at: float | None


def watch_session(
    client: ChuteClient,
    session_id: str,
    *,
    timeout_s: float,
    interval_s: float = 2.0,
    until: Callable[[dict[str, Any]], bool] = is_terminal,
) -> WatchResult:
    """Poll the summary (conditionally, by ETag) with a progress bar until it is terminal (or
    `until` says the watch is over)."""
    deadline = time.monotonic() + timeout_s
    summary: dict[str, Any] | None = None
    etag: str | None = None
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("ETA {task.fields[eta]}"),
        TextColumn("[red]{task.fields[failed]} failed"),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("waiting", total=None, eta="—", failed=0)
        while True:
            try:
                fresh, etag = client.get_session(session_id, etag)
            except (requests.ConnectionError, requests.Timeout) as error:
                progress.console.print(f"(retrying: {error.__class__.__name__})", style="yellow")
                fresh = None
            if fresh is not None:
                summary = fresh
                progress.update(task, **progress_fields(summary))
            if summary is not None and until(summary):
                return WatchResult(summary, time.monotonic())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return WatchResult(summary, None)
            time.sleep(min(interval_s, remaining))


def wait_for_emails(outbox_path: Path, session_id: str, timeout_s: float) -> list[dict[str, Any]]:
    """The outbox emails about the session, waiting up to timeout_s for the first one."""
    deadline = time.monotonic() + timeout_s
    while True:
        emails = emails_for(read_outbox(outbox_path), session_id)
        if emails or time.monotonic() >= deadline:
            return emails
        time.sleep(_NOTIFICATION_POLL_S)


@app.command()
def upload(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...", show_default=False, help="Documents or zips (one session)."
        ),
    ],
    prompts: Annotated[
        bool,
        typer.Option("--prompts", help="A prompts session from one CSV, XLSX or TXT batch file."),
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="The session's name (default: the file's, or 'N files').")
    ] = None,
    priority: Annotated[int, typer.Option(min=1, max=10, help="1 to 10; 7 and up go first.")] = 5,
    watch: Annotated[
        bool, typer.Option("--watch", help="Follow the session to its end; exit 0, 1 or 2.")
    ] = False,
    timeout: TimeoutOption = 900.0,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Upload files (documents, zips) as one session and print its id.

    --prompts: a prompts session of one CSV, XLSX or TXT batch file. --watch: follow the session
    to its end and list the units that did not complete; exit 0 if every unit completed, 1 if
    some failed or timed out, 2 if the session was rejected or cancelled, or on any error.
    """
    try:
        files = check_paths(paths, prompts=prompts)
        request = session_request(files, prompts=prompts, name=name, priority=priority)
    except BadInput as error:
        fail(str(error), EXIT_USAGE)
    client = make_client(root_of(ctx), api_url, token, EXIT_ERROR)
    with api_errors(client, EXIT_ERROR):
        session_id = _create_and_upload(client, request, files)
        if not watch:
            say(f"Follow it with `chute status {session_id}`.")
            return
        code = _watch_to_the_end(client, session_id, timeout)
    raise typer.Exit(code)


def _create_and_upload(
    client: ChuteClient, request: CreateSessionRequest, files: list[Path]
) -> str:
    created = client.create(request)
    typer.echo(created.session_id)
    upload_files(client, created, files, console)
    size = format_bytes(sum(path.stat().st_size for path in files))
    what = files[0].name if len(files) == 1 else f"{len(files)} files"
    say(f"Uploaded {what} ({size}) to session {created.session_id}.")
    return created.session_id


def _watch_ends(summary: dict[str, Any]) -> bool:
    # A session that paused itself (too many failures) waits for a person: the watch is over.
    return is_terminal(summary) or paused_itself(summary)


def _watch_to_the_end(client: ChuteClient, session_id: str, timeout: float) -> int:
    """Watch the session, then say how it ended and which units failed; the exit code."""
    result = watch_session(
        client, session_id, timeout_s=timeout, interval_s=WATCH_INTERVAL_S, until=_watch_ends
    )
    summary = result.summary
    if result.finished_at is None or summary is None:
        if summary is not None:
            say(progress_text(summary))
        fail(
            f"Session {session_id} did not finish within {timeout:.0f} s; it goes on: "
            f"`chute status {session_id}`.",
            EXIT_ERROR,
        )
    say(outcome_line(summary))
    if failed_units(summary):
        for unit in failed_unit_rows(client, session_id):
            say(failure_line(unit))
    if paused_itself(summary):
        say(
            "The session paused itself: too many of its units failed. "
            f"`chute resume {session_id}` goes on, `chute cancel {session_id}` stops it."
        )
    return exit_code(summary)


def failed_unit_rows(client: ChuteClient, session_id: str) -> list[dict[str, Any]]:
    """The units that failed or timed out, every page of them, in input order."""
    rows = [
        *client.iter_files(session_id, status="failed"),
        *client.iter_files(session_id, status="timeout"),
    ]
    return sorted(rows, key=lambda unit: str(unit.get("ordinal", "")))


dlq = typer.Typer(help="Dead letters: units whose processing kept failing outside their input.")
app.add_typer(dlq, name="dlq")


@dlq.command("redrive")
def dlq_redrive(
    ctx: typer.Context, api_url: ApiUrlOption = None, token: TokenOption = None
) -> None:
    """Send every unit that failed as a dead letter back to work (operators only: a token from
    `chute token NAME --admin`)."""
    client = make_client(root_of(ctx), api_url, token)
    with api_errors(client):
        report = client.redrive_dead_letters()
    sessions = report["sessions"]
    typer.echo(
        f"{report['units']} unit{'s' if report['units'] != 1 else ''} back to work in "
        f"{len(sessions)} session{'s' if len(sessions) != 1 else ''}"
        + ("; more are left: run it again." if report["more_left"] else "."),
        err=True,
    )
    typer.echo(json.dumps(report))


for command in (
    sessioncmds.status,
    sessioncmds.files,
    sessioncmds.pause,
    sessioncmds.resume,
    sessioncmds.cancel,
    sessioncmds.retry,
    sessioncmds.results,
    sessioncmds.sessions,
):
    app.command()(command)


def _elapsed_s(
    summary: dict[str, Any] | None, *, upload_wall: float, upload_mono: float, end_mono: float
) -> float:
    """Upload start to terminal status, from the server's done_at when the clocks agree."""
    done_at = (summary or {}).get("done_at")
    # The local stack shares this machine's clock, so done_at is exact where polling is only
    # accurate to its interval; a done_at before the upload means another clock, so it is not used.
    if isinstance(done_at, int | float) and upload_wall <= done_at <= time.time():
        return float(done_at) - upload_wall
    return end_mono - upload_mono


@app.command()
def demo(
    ctx: typer.Context,
    files: Annotated[int, typer.Option(min=1, help="Documents in the zip.")] = 300,
    size_mb: Annotated[float, typer.Option(min=0.001, help="Size of the zip in MiB.")] = 40.0,
    corrupt: Annotated[int, typer.Option(min=0, help="Documents that must fail.")] = 0,
    prompts: Annotated[
        int | None,
        typer.Option(min=1, max=1000, help="Run a CSV batch of this many prompts instead."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated documents.")] = 0,
    keep_stack: Annotated[
        bool, typer.Option(help="Leave a stack this command started running.")
    ] = False,
    timeout: TimeoutOption = 900.0,
    start_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the local stack to start.")
    ] = 120.0,
) -> None:
    """Run a scripted job on the local stack and report one JSON line.

    A generated zip of documents (or, with --prompts, a CSV batch of prompts), started, watched
    and checked; the local stack is started for it if it is not running."""
    root = root_of(ctx)
    if prompts is None:
        start, after = _documents_demo(root, files, size_mb, corrupt, seed)
    else:
        start, after = _prompts_demo(root, prompts, seed)
    config = running_stack(root)
    stack: StackProcess | None = None
    if config is None:
        with console.status("Starting the local stack…"):
            try:
                config, stack = start_stack(root, timeout_s=start_timeout)
            except StackError as error:
                fail(str(error))
        console.print(f"Local stack up at {config.api_url} (log: {stack.log_path}).", markup=False)
    try:
        finished = run_demo_session(
            ChuteClient(config.api_url, config.token),
            start,
            after,
            outbox_path=config.outbox_path,
            timeout_s=timeout,
        )
    finally:
        if stack is not None and keep_stack:
            console.print(f"The local stack keeps running (pid {stack.pid}, log {stack.log_path}).")
        elif stack is not None:
            with console.status("Stopping the local stack…"):
                stack.stop()
    if not finished:
        raise typer.Exit(1)


StartSession = Callable[[ChuteClient], str]
CheckSession = Callable[[ChuteClient, str], dict[str, Any]]


def _documents_demo(
    root: Path, files: int, size_mb: float, corrupt: int, seed: int
) -> tuple[StartSession, CheckSession | None]:
    # Imported here: making PDFs needs chalicelib's processors, slow to import for any command.
    from chute_cli.samples import ensure_documents_zip

    with console.status("Preparing the sample documents…"):
        try:
            sample, reused = ensure_documents_zip(
                root / DEMO_DIR, files=files, size_mb=size_mb, corrupt=corrupt, seed=seed
            )
        except ValueError as error:
            fail(str(error), code=2)
    console.print(
        f"{'Reusing' if reused else 'Generated'} {sample.path.relative_to(root)}: "
        f"{len(sample.members)} documents, {sample.bytes / 2**20:,.1f} MiB, "
        f"{len(sample.corrupt_names)} corrupt.",
        markup=False,
    )

    return lambda client: upload_zip(client, sample.path, sample.bytes), None


def upload_zip(client: ChuteClient, path: Path, size: int) -> str:
    """Create a documents session for the zip at `path` and upload it; the session id."""
    spec = FileSpec(name=path.name, size=size, content_type="application/zip")
    created = client.create_session([spec], name=f"demo: {path.stem}")
    console.print(f"Session {created.session_id}", markup=False)
    with console.status(f"Uploading {size / 2**20:,.1f} MiB…"):
        client.upload(created.uploads[0], path, "application/zip")
    return created.session_id


def _prompts_demo(root: Path, count: int, seed: int) -> tuple[StartSession, CheckSession]:
    path = root / DEMO_DIR / f"prompts-{count}-{seed}.csv"
    rows = write_prompts_csv(path, count, seed)
    console.print(f"Generated {path.relative_to(root)}: {count} prompts.", markup=False)

    def start(client: ChuteClient) -> str:
        session_id = start_prompts_session(client, path)
        console.print(f"Session {session_id}", markup=False)
        return session_id

    def after(client: ChuteClient, session_id: str) -> dict[str, Any]:
        check = check_results(client.results(session_id, "csv"), rows)
        if check.mismatches:
            console.print(f"results differ from the input: {check.mismatches[:10]}", style="red")
        return results_fields(check)

    return start, after


def run_demo_session(
    client: ChuteClient,
    start: StartSession,
    after: CheckSession | None,
    *,
    outbox_path: Path,
    timeout_s: float,
) -> bool:
    """Create, upload and watch one session; print the JSON line. True if it reached the end."""
    with api_errors(client):
        upload_wall, upload_mono = time.time(), time.monotonic()
        session_id = start(client)
        console.print(f"Uploaded in {time.monotonic() - upload_mono:.1f} s.")
        result = watch_session(client, session_id, timeout_s=timeout_s)
        extra = after(client, session_id) if after and result.finished_at is not None else {}
    elapsed = _elapsed_s(
        result.summary,
        upload_wall=upload_wall,
        upload_mono=upload_mono,
        end_mono=result.finished_at or time.monotonic(),
    )
    if result.finished_at is None:
        last = result.summary.get("status", "unknown") if result.summary else "unknown"
        console.print(
            f"error: session {session_id} did not finish within {timeout_s:.0f} s "
            f"(last status: {last}); raise --timeout or look at .chute/stack.log.",
            style="red",
            markup=False,
        )
        emails = emails_for(read_outbox(outbox_path), session_id)
    else:
        assert result.summary is not None
        console.print(progress_text(result.summary), markup=False)
        emails = wait_for_emails(outbox_path, session_id, _NOTIFICATION_WAIT_S)
        for email in emails:
            console.print(Panel(Text(format_email(email)), title="email (outbox)", expand=False))
        if not emails:
            console.print(f"No email for this session reached {outbox_path}.", style="yellow")
    typer.echo(
        demo_summary_line(
            session_id,
            result.summary,
            notifications_sent=len(emails),
            elapsed_s=elapsed,
            extra=extra,
        )
    )
    return result.finished_at is not None
