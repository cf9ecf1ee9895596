"""Pure formatting of session summaries and outbox emails for the terminal and for scripts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from chalicelib.models import TERMINAL_SESSION_STATUSES

TERMINAL_STATUSES = frozenset(status.value for status in TERMINAL_SESSION_STATUSES)
_DONE_COUNTS = ("completed", "failed", "timeout", "cancelled")


def is_terminal(summary: dict[str, Any]) -> bool:
    return summary.get("status") in TERMINAL_STATUSES


def _count(summary: dict[str, Any], name: str) -> int:
    counts = summary.get("counts") or {}
    return int(counts.get(name) or 0)


def done_units(summary: dict[str, Any]) -> int:
    """Units that will not change any more: completed, failed, timed out or cancelled."""
    return sum(_count(summary, name) for name in _DONE_COUNTS)


def failed_units(summary: dict[str, Any]) -> int:
    """Units that did not succeed for a reason of their own: failed or timed out (not cancelled)."""
    return _count(summary, "failed") + _count(summary, "timeout")


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """Arguments for ``rich.progress.Progress.update``: the bar and the extra columns."""
    total = int(summary.get("total") or 0)
    return {
        "description": str(summary.get("status", "")),
        "completed": done_units(summary),
        # Until the upload is fanned out the total is unknown: the bar pulses instead of lying.
        "total": total or None,
        "eta": format_eta(summary.get("eta_seconds")),
        "failed": failed_units(summary),
    }


def progress_text(summary: dict[str, Any]) -> str:
    """One line: ``processing 120/300 (40%) · ETA 1m05s · 2 failed``."""
    total = int(summary.get("total") or 0)
    percent = float(summary.get("progress") or 0.0)
    return (
        f"{summary.get('status', '?')} {done_units(summary)}/{total} ({percent:.0f}%)"
        f" · ETA {format_eta(summary.get('eta_seconds'))} · {failed_units(summary)} failed"
    )


def demo_summary_line(
    session_id: str,
    summary: dict[str, Any] | None,
    *,
    notifications_sent: int,
    elapsed_s: float,
    extra: dict[str, Any] | None = None,
) -> str:
    """The single JSON line the demo prints on stdout, in a fixed key order (`extra` last)."""
    summary = summary or {}
    return json.dumps(
        {
            "session_id": session_id,
            "status": summary.get("status", "unknown"),
            "total_files": int(summary.get("total") or 0),
            "completed": _count(summary, "completed"),
            "failed": failed_units(summary),
            "notifications_sent": notifications_sent,
            "elapsed_s": round(elapsed_s, 2),
            **(extra or {}),
        },
        ensure_ascii=False,
    )


def read_outbox(path: Path) -> list[dict[str, Any]]:
    """The emails the stack delivered so far; a line still being written is skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    emails: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            emails.append(entry)
    return emails


def emails_for(emails: list[dict[str, Any]], session_id: str) -> list[dict[str, Any]]:
    return [
        email
        for email in emails
        if isinstance(email.get("attributes"), dict)
        and email["attributes"].get("session_id") == session_id
    ]


def format_email(email: dict[str, Any]) -> str:
    attributes = email.get("attributes") or {}
    return (
        f"To: {attributes.get('user_id', '?')}\n"
        f"Subject: {email.get('subject') or '(no subject)'}\n\n"
        f"{email.get('message', '')}"
    )


# What a session ended as, for `upload --watch`: 0 all completed, 1 some unit failed, 2 the input
# was refused or the session stopped (and any error: see chute_cli.main).
EXIT_OK = 0
EXIT_UNITS_FAILED = 1
EXIT_ERROR = 2
_EXIT_BY_STATUS = {
    "completed": EXIT_OK,
    "completed_with_errors": EXIT_UNITS_FAILED,
    "failed": EXIT_UNITS_FAILED,
}
_OUTCOME_COUNTS = (
    ("failed", "failed"),
    ("timeout", "timed out"),
    ("cancelled", "cancelled"),
    ("skipped", "skipped"),
)


def exit_code(summary: dict[str, Any]) -> int:
    """The exit code of a watch that saw the session reach `summary` (terminal or paused)."""
    status = str(summary.get("status"))
    if status == "paused" and failed_units(summary):
        return EXIT_UNITS_FAILED
    return _EXIT_BY_STATUS.get(status, EXIT_ERROR)


def paused_itself(summary: dict[str, Any]) -> bool:
    """A session that paused on its own because too many of its units failed (auto-pause)."""
    return summary.get("status") == "paused" and summary.get("pause_reason") == "failure_rate"


def outcome_line(summary: dict[str, Any]) -> str:
    """One line: ``299 of 300 done, 1 failed``; other endings than a run's say their status."""
    status = str(summary.get("status", "?"))
    if status == "rejected":
        error = summary.get("error") or {}
        return f"rejected: {error.get('message') or 'the input was refused'} ({error.get('code')})"
    parts = [f"{_count(summary, 'completed')} of {int(summary.get('total') or 0)} done"]
    parts += [
        f"{_count(summary, name)} {label}"
        for name, label in _OUTCOME_COUNTS
        if _count(summary, name)
    ]
    line = ", ".join(parts)
    return line if status in _EXIT_BY_STATUS else f"{status}: {line}"


def format_bytes(size: int) -> str:
    """``820 B``, ``12.3 KiB``, ``40.0 MiB``, ``1.2 GiB``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:,.1f} {unit}"


def format_duration(ms: float | None) -> str:
    """``850ms``, ``12.3s``, ``2m05s``; ``—`` when unknown."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    return format_eta(ms / 1000)


def unit_error(unit: dict[str, Any]) -> tuple[str, str]:
    """A unit row's error code and message ('' when it has none)."""
    error = unit.get("error") or {}
    return str(error.get("code") or ""), str(error.get("message") or "")


def failure_line(unit: dict[str, Any]) -> str:
    """One line per unit that did not complete: ``00001  broken.pdf  failed  pdf_unreadable: …``."""
    code, message = unit_error(unit)
    reason = f"{code}: {message}" if message else code or "no error recorded"
    return f"{unit.get('ordinal')}  {unit.get('name')}  {unit.get('status')}  {reason}"


def unit_cells(unit: dict[str, Any]) -> list[str]:
    """The `files` table's cells: ordinal, name, status, stage, progress, attempt (n/max), error
    code, duration."""
    return [
        str(unit.get("ordinal", "")),
        str(unit.get("name", "")),
        str(unit.get("status", "")),
        str(unit.get("stage") or ""),
        f"{float(unit.get('progress') or 0.0):.0f}%",
        f"{unit.get('attempt', 0)}/{unit.get('max_attempts', 0)}",
        unit_error(unit)[0],
        format_duration(unit.get("duration_ms")),
    ]


def session_cells(summary: dict[str, Any]) -> list[str]:
    """The `sessions` table's cells: id, name, status, progress, created (local time)."""
    total = int(summary.get("total") or 0)
    created = summary.get("created_at")
    when = (
        datetime.fromtimestamp(float(created)).strftime("%Y-%m-%d %H:%M")
        if isinstance(created, int | float)
        else ""
    )
    return [
        str(summary.get("session_id", "")),
        str(summary.get("name") or ""),
        str(summary.get("status", "")),
        f"{done_units(summary)}/{total} ({float(summary.get('progress') or 0.0):.0f}%)",
        when,
    ]
