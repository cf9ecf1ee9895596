"""Pure formatting of session summaries and outbox emails for the terminal and for scripts."""

from __future__ import annotations

import json
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
