"""A small typed client of the chute HTTP API, and the local stack's connection file."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict

from chalicelib.models import CreateSessionRequest, CreateSessionResponse, FileSpec, UploadTicket

LOCAL_CONFIG_PATH = Path(".chute") / "local.json"
_READ_BLOCK_BYTES = 1024 * 1024
# The API's largest page (`?limit=`) of sessions and of units.
MAX_PAGE = 100
CONTROL_ACTIONS = ("pause", "resume", "cancel", "retry")

# Told the number of bytes of the file each read took: an upload's progress.
OnRead = Callable[[int], None]


class ApiError(Exception):
    """An error answer from the API (or from S3 for uploads), with its stable code."""

    def __init__(
        self, code: str, message: str, status: int, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{message} ({code}, HTTP {status})")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}


class LocalConfig(BaseModel):
    """What the local stack writes to ``.chute/local.json`` so tools can drive it from outside."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    api_url: str
    aws_endpoint_url: str
    region: str
    bucket: str
    table: str
    uploads_queue_url: str
    work_queue_url: str
    work_high_queue_url: str
    outbox_queue_url: str
    topic_arn: str
    token: str
    token_key_path: Path
    outbox_path: Path


def load_local_config(root: Path) -> LocalConfig:
    """The local stack's connection details; relative paths in the file are relative to root.

    Raises FileNotFoundError when the stack has never been started under root.
    """
    config = LocalConfig.model_validate_json((root / LOCAL_CONFIG_PATH).read_text())
    return config.model_copy(
        update={
            "token_key_path": root / config.token_key_path,
            "outbox_path": root / config.outbox_path,
        }
    )


class MultipartUpload:
    """A multipart/form-data body (the form fields, then the file) read lazily from disk.

    It is what a browser sends for an HTML form upload. requests would read the whole file into
    memory to encode it; this streams it, and its known length lets requests send Content-Length,
    which S3 requires for POST uploads (it refuses chunked transfer encoding). ``on_read`` is told
    the size of every block of the file read, as it is sent.
    """

    def __init__(
        self,
        fields: dict[str, str],
        file_name: str,
        source: Path | bytes,
        content_type: str,
        boundary: str | None = None,
        on_read: OnRead | None = None,
    ) -> None:
        self.boundary = boundary or uuid.uuid4().hex
        head = b"".join(
            self._part_header(f'name="{_quote(name)}"') + value.encode() + b"\r\n"
            for name, value in fields.items()
        )
        head += self._part_header(
            f'name="file"; filename="{_quote(file_name)}"', content_type=content_type
        )
        self._head = head
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._source = source
        self._file: IO[bytes] | None = None
        self._size = len(source) if isinstance(source, bytes) else source.stat().st_size
        self._stage = 0  # 0: head, 1: file, 2: tail, 3: done
        self._offset = 0
        self._on_read = on_read

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _part_header(self, disposition: str, content_type: str | None = None) -> bytes:
        lines = [f"--{self.boundary}", f"Content-Disposition: form-data; {disposition}"]
        if content_type is not None:
            lines.append(f"Content-Type: {content_type}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def __len__(self) -> int:
        return len(self._head) + self._size + len(self._tail)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (a block when negative); empty at the end."""
        limit = size if size > 0 else _READ_BLOCK_BYTES
        while self._stage < 3:
            chunk = self._read_stage(limit)
            if chunk:
                return chunk
            self._stage += 1
            self._offset = 0
        return b""

    def _read_stage(self, limit: int) -> bytes:
        if self._stage == 1:
            chunk = self._read_file(limit)
            if chunk and self._on_read is not None:
                self._on_read(len(chunk))
            return chunk
        part = self._head if self._stage == 0 else self._tail
        chunk = part[self._offset : self._offset + limit]
        self._offset += len(chunk)
        return chunk

    def _read_file(self, limit: int) -> bytes:
        if isinstance(self._source, bytes):
            chunk = self._source[self._offset : self._offset + limit]
            self._offset += len(chunk)
            return chunk
        if self._file is None:
            self._file = self._source.open("rb")
        chunk = self._file.read(limit)
        if not chunk:
            self.close()
        return chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _quote(value: str) -> str:
    # Browsers percent-encode these three in form-data names (WHATWG HTML, multipart/form-data).
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _path(*segments: str) -> str:
    """A URL path of the segments, each percent-encoded whole: an id with `/`, `?` or `#` in it
    stays one segment (and reaches the API's 404), never another route or a query."""
    return "".join("/" + quote(segment, safe="") for segment in segments)


class ChuteClient:
    """The HTTP API as methods; error answers raise ApiError."""

    def __init__(
        self,
        api_url: str,
        token: str,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._http = session or requests.Session()
        self._timeout = timeout

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/json"} | (
            extra or {}
        )

    def create_session(
        self, files: Sequence[FileSpec], *, name: str | None = None, priority: int = 5
    ) -> CreateSessionResponse:
        # Validating here turns a bad manifest into a clear error before anything is sent.
        return self.create(CreateSessionRequest(files=list(files), name=name, priority=priority))

    def create(self, request: CreateSessionRequest) -> CreateSessionResponse:
        """POST /sessions with any kind of session (documents, a prompts batch, inline prompts)."""
        response = self._http.post(
            self.api_url + _path("sessions"),
            data=request.model_dump_json(exclude_none=True),
            headers=self._headers({"Content-Type": "application/json"}),
            timeout=self._timeout,
        )
        return CreateSessionResponse.model_validate(_json_or_raise(response))

    def upload(
        self,
        ticket: UploadTicket,
        source: Path | bytes,
        content_type: str = "application/octet-stream",
        on_read: OnRead | None = None,
    ) -> None:
        """Post a file to its presigned URL as a browser form would: the fields, then the file,
        streamed from disk (``on_read`` is told each block's size as it is sent)."""
        body = MultipartUpload(ticket.fields, ticket.name, source, content_type, on_read=on_read)
        try:
            response = self._http.post(
                ticket.url,
                data=body,
                headers={"Content-Type": body.content_type, "Content-Length": str(len(body))},
                # Bounds each wait for the server, not the whole transfer of a large file.
                timeout=self._timeout,
            )
        finally:
            body.close()
        if not response.ok:
            raise _storage_error(response)

    def get_session(
        self, session_id: str, etag: str | None = None
    ) -> tuple[dict[str, Any] | None, str | None]:
        """The session summary and its ETag; ``None`` for the summary when unchanged since etag."""
        extra = {"If-None-Match": etag} if etag else None
        response = self._http.get(
            self.api_url + _path("sessions", session_id),
            headers=self._headers(extra),
            timeout=self._timeout,
        )
        if response.status_code == 304:
            return None, response.headers.get("ETag", etag)
        summary = _json_or_raise(response)
        return summary, response.headers.get("ETag")

    def list_files(
        self,
        session_id: str,
        *,
        status: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """One page of unit rows: ``{"items": [...], "next_cursor": str | None}``."""
        params = {
            key: value
            for key, value in {"status": status, "cursor": cursor, "limit": limit}.items()
            if value is not None
        }
        response = self._http.get(
            self.api_url + _path("sessions", session_id, "files"),
            params=params,
            headers=self._headers(),
            timeout=self._timeout,
        )
        return _json_or_raise(response)

    def iter_files(self, session_id: str, *, status: str | None = None) -> Iterator[dict[str, Any]]:
        """Every unit row of the session (of one status), in input order, page after page."""
        cursor: str | None = None
        while True:
            page = self.list_files(session_id, status=status, cursor=cursor, limit=MAX_PAGE)
            yield from page.get("items") or []
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def list_sessions(self, *, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        """One page of the caller's session summaries, newest first."""
        params: dict[str, str | int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = self._http.get(
            self.api_url + _path("sessions"),
            params=params,
            headers=self._headers(),
            timeout=self._timeout,
        )
        return _json_or_raise(response)

    def recent_sessions(self, count: int) -> list[dict[str, Any]]:
        """The caller's `count` newest sessions (fewer if there are not as many)."""
        sessions: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(sessions) < count:
            page = self.list_sessions(limit=min(MAX_PAGE, count - len(sessions)), cursor=cursor)
            sessions.extend(page.get("items") or [])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return sessions[:count]

    def control(self, session_id: str, action: str, *, everything: bool = False) -> dict[str, Any]:
        """POST /sessions/{id}/{action} (pause, resume, cancel, retry): the summary afterwards.
        ``everything``: a retry of every failed unit, not only those whose error may go away."""
        if action not in CONTROL_ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        response = self._http.post(
            self.api_url + _path("sessions", session_id, action),
            params={"all": "true"} if everything else None,
            headers=self._headers(),
            timeout=self._timeout,
        )
        return _json_or_raise(response)

    def results(self, session_id: str, fmt: str = "csv") -> bytes:
        """The session's results in input order, as they are now: the API answers with the
        export's link in storage (as JSON, since we accept JSON; a 302 from older servers),
        fetched without the API's credentials."""
        response = self._http.get(
            self.api_url + _path("sessions", session_id, "results"),
            params={"format": fmt},
            headers=self._headers(),
            timeout=self._timeout,
            allow_redirects=False,
        )
        url: object = (
            response.headers["Location"]
            if response.status_code == 302
            else _json_or_raise(response).get("url")
        )
        if not isinstance(url, str):
            raise ApiError(
                "unexpected_answer",
                "The API did not say where the results are.",
                response.status_code,
            )
        export = self._http.get(url, timeout=self._timeout)
        if not export.ok:
            raise _storage_error(export)
        return export.content

    def redrive_dead_letters(self) -> dict[str, Any]:
        """An operator's redrive: ``{"units", "sessions", "more_left"}``."""
        response = self._http.post(
            self.api_url + _path("admin", "dlq", "redrive"),
            headers=self._headers(),
            timeout=self._timeout,
        )
        return _json_or_raise(response)


def _json_or_raise(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.ok and isinstance(body, dict):
        return body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        details = error.get("details")
        raise ApiError(
            code=str(error.get("code", "unknown")),
            message=str(error.get("message", "")),
            status=response.status_code,
            details=details if isinstance(details, dict) else None,
        )
    if response.ok:
        raise ApiError(
            "bad_response",
            "The API answered with something other than a JSON object.",
            response.status_code,
        )
    raise ApiError(
        f"http_{response.status_code}",
        _short(response.text) or response.reason or "no details",
        response.status_code,
    )


def _storage_error(response: requests.Response) -> ApiError:
    """S3 answers failed POSTs with ``<Error><Code>…</Code><Message>…</Message></Error>``."""
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError:
        return ApiError(f"http_{response.status_code}", _short(response.text), response.status_code)
    return ApiError(
        root.findtext("Code") or f"http_{response.status_code}",
        root.findtext("Message") or _short(response.text),
        response.status_code,
    )


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
