"""`chute upload`'s side of a session: the files checked, declared and sent with a transfer bar.

The files are checked before the API is called (a missing, unreadable or empty file, a folder),
so a mistake costs no session. Each file is streamed from disk to its presigned POST: memory
does not grow with its size, and the bar moves as its blocks are sent.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from chalicelib.models import CreateSessionRequest, CreateSessionResponse, FileSpec
from chute_cli.client import ApiError, ChuteClient

MAX_FILES = 1000  # the API's limit of files in one session
MAX_NAME = 200  # the API's limit of a session's name
_KEPT_BARS = 10  # with more files, only the file being sent has its own bar


class BadInput(Exception):
    """A file given on the command line cannot be uploaded; the message says which and why."""


def check_paths(paths: Sequence[Path], *, prompts: bool) -> list[Path]:
    """The files to upload, each an existing, readable, non-empty regular file."""
    if not paths:
        raise BadInput("give at least one file to upload.")
    if prompts and len(paths) != 1:
        raise BadInput(
            f"--prompts takes exactly one batch file (CSV, XLSX or TXT); got {len(paths)}."
        )
    if len(paths) > MAX_FILES:
        raise BadInput(f"a session takes at most {MAX_FILES} files; got {len(paths)}.")
    for path in paths:
        _check_path(path)
    return list(paths)


def _check_path(path: Path) -> None:
    if path.is_dir():
        raise BadInput(f"{path} is a directory: give its files, or a zip of it.")
    if not path.exists():
        raise BadInput(f"{path}: no such file.")
    if not path.is_file():
        raise BadInput(f"{path} is not a regular file.")
    if not os.access(path, os.R_OK):
        raise BadInput(f"{path}: permission denied.")
    if path.stat().st_size == 0:
        raise BadInput(f"{path} is empty (0 bytes): there is nothing to process.")


def content_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def default_name(paths: Sequence[Path]) -> str:
    """The file's name for one file, else "N files"."""
    return paths[0].name[:MAX_NAME] if len(paths) == 1 else f"{len(paths)} files"


def session_request(
    paths: Sequence[Path], *, prompts: bool, name: str | None, priority: int
) -> CreateSessionRequest:
    """The manifest: one entry per file, in the order given. What the API would refuse anyway
    (a control character in a file name, a name too long) is a BadInput here."""
    files = [_file_spec(path) for path in paths]
    try:
        return CreateSessionRequest(
            job_type="prompts" if prompts else "documents",
            files=files,
            name=name if name is not None else default_name(paths),
            priority=priority,
        )
    except ValidationError as error:
        raise BadInput(f"the session cannot be created: {validation_message(error)}") from error


def _file_spec(path: Path) -> FileSpec:
    try:
        return FileSpec(name=path.name, size=path.stat().st_size, content_type=content_type(path))
    except ValidationError as error:
        raise BadInput(f"{path.name!r} cannot be uploaded: {validation_message(error)}") from error


def validation_message(error: ValidationError) -> str:
    """A pydantic error as one line: ``name: String should have at most 200 characters``."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'input'}: "
        + problem["msg"].removeprefix("Value error, ")
        for problem in error.errors()
    )


def upload_files(
    client: ChuteClient, created: CreateSessionResponse, paths: Sequence[Path], console: Console
) -> None:
    """Send each file to its ticket, one after another: a transfer bar per file as it is sent
    and, for several files, one for them all (past a few files, a finished file's bar goes)."""
    tickets = {ticket.ordinal: ticket for ticket in created.uploads}
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        overall = None
        if len(paths) > 1:
            total = sum(path.stat().st_size for path in paths)
            overall = progress.add_task(f"{len(paths)} files", total=total)
        for ordinal, path in enumerate(paths):
            ticket = tickets.get(ordinal)
            if ticket is None:
                raise ApiError("bad_response", f"The API sent no upload for {path.name}.", 201)
            task = progress.add_task(path.name, total=path.stat().st_size)
            client.upload(
                ticket,
                path,
                content_type(path),
                on_read=_advancing(progress, task, overall),
            )
            if len(paths) > _KEPT_BARS:
                progress.remove_task(task)


def _advancing(progress: Progress, task: TaskID, overall: TaskID | None) -> Callable[[int], None]:
    def advance(size: int) -> None:
        progress.advance(task, size)
        if overall is not None:
            progress.advance(overall, size)

    return advance
