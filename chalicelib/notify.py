"""Notifications (DESIGN §7): each (session, event) claimed on META, then sent to the channels the
session's preferences name (email through SNS, the in-app list), then recorded.

The claim comes before the send, so two callers never both send; the only duplicate window is a
crash between send and record. For the event that ends a session the sweeper's re-send closes it
once the claim is older than NOTIFY_CLAIM_S (longer than a publish can take with the SNS client's
retries); the events before the end (started, milestones, auto-paused) are sent at most once.

Emails carry `user_id`, `event` and `session_id` as message attributes: on AWS each person's email
subscription filters on them (their own sessions, the events they want by email).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from chalicelib.budget import NOTIFY_CLAIM_S
from chalicelib.config import WorkSettings
from chalicelib.humanize import human_duration
from chalicelib.log import logger
from chalicelib.models import MILESTONES, TERMINAL_EVENTS, Event, SessionStatus, UnitStatus
from chalicelib.services import Services
from chalicelib.sessions import session_status
from chalicelib.store.items import NotificationItem, SessionMeta, SessionView

LISTED_FAILURES = 20  # the failed units an email names
EXAMINED_UNITS = 1_000  # at most this many failed units are read to list and count them

_TERMINAL = {
    SessionStatus.COMPLETED: Event.COMPLETED,
    SessionStatus.COMPLETED_WITH_ERRORS: Event.COMPLETED_WITH_ERRORS,
    SessionStatus.FAILED: Event.FAILED,
    SessionStatus.CANCELLED: Event.CANCELLED,
    SessionStatus.REJECTED: Event.REJECTED,
}


@dataclass(frozen=True)
class Failure:
    name: str
    code: str


def completion_event(status: SessionStatus) -> Event:
    return _TERMINAL[status]


def announce(
    services: Services[WorkSettings],
    meta: SessionMeta,
    event: Event,
    subject: str,
    message: str,
    *,
    at: float | None = None,
) -> bool:
    """Send `event` to the channels the session's preferences name, unless someone else has
    claimed it; sent by this call? `at` dates the in-app entry (a completion's done_at, so that a
    re-send overwrites it)."""
    store, now = services.store, services.clock.now()
    if not store.claim_event(meta.sid, event, now=now, stale_before=now - NOTIFY_CLAIM_S):
        return False
    subject = _sns_subject(subject)
    if event in meta.notify.email:
        services.sns.publish(
            TopicArn=services.settings.topic_arn,
            Subject=subject,
            Message=message,
            MessageAttributes={
                "user_id": {"DataType": "String", "StringValue": meta.owner},
                "event": {"DataType": "String", "StringValue": event.value},
                "session_id": {"DataType": "String", "StringValue": meta.sid},
            },
        )
    if event in meta.notify.in_app:
        store.put_notification(
            NotificationItem(
                owner=meta.owner,
                session_id=meta.sid,
                event=event.value,
                subject=subject,
                message=message,
                created_at=at if at is not None else now,
                expires_at=meta.expires_at,
            )
        )
    terminal = event in TERMINAL_EVENTS
    store.record_event_sent(meta.sid, event.value, now=services.clock.now(), completion=terminal)
    logger.info("notified", extra={"session_id": meta.sid, "event": event.value})
    return True


def announce_on_the_way(
    services: Services[WorkSettings], meta: SessionMeta, event: Event, subject: str, message: str
) -> bool:
    """An event before the ending (started, a milestone, auto-paused): at most once, and never
    the reason the work that noticed it fails — a failed send is logged, not raised."""
    try:
        return announce(services, meta, event, subject, message)
    except Exception:
        logger.exception("could not send a notification", extra={"event": event.value})
        return False


def notify_completion(services: Services[WorkSettings], view: SessionView) -> bool:
    """Send the done session's ending (completed, with errors, failed, cancelled, rejected)."""
    assert view.meta.done_at is not None, "only a done session notifies"
    status = session_status(view)
    noun = services.jobs.get(view.meta.job_type).noun
    failures = failed_units(services, view) if _not_done(view) else []
    subject, message = completion_message(
        view, status, noun, failures=failures, link=session_link(services, view.sid)
    )
    return announce(
        services, view.meta, completion_event(status), subject, message, at=view.meta.done_at
    )


def announce_started(services: Services[WorkSettings], meta: SessionMeta, units: int) -> bool:
    label = meta.name or meta.sid
    noun = services.jobs.get(meta.job_type).noun
    return announce_on_the_way(
        services,
        meta,
        Event.STARTED,
        f"chute: {label} - started",
        f"Your session {label} has started: {units:,} {noun} to process.\n\n"
        f"Follow it: {session_link(services, meta.sid)}",
    )


def announce_milestones(services: Services[WorkSettings], view: SessionView) -> int:
    """The 25/50/75 % milestones the session has passed and not announced; how many were sent.
    Not after it is done: its ending says more."""
    meta = view.meta
    if meta.done_at is not None or not meta.total or meta.files_pending:
        return 0
    done = meta.total - view.remaining
    percent = 100.0 * done / meta.total
    label, noun = meta.name or meta.sid, services.jobs.get(meta.job_type).noun
    sent = 0
    for threshold, event in MILESTONES:
        if percent < threshold or event.value in meta.event_claims:
            continue
        sent += announce_on_the_way(
            services,
            meta,
            event,
            f"chute: {label} - {threshold}% done",
            f"Your session {label} is {threshold}% done: {done:,} of {meta.total:,} {noun} "
            f"finished.\n\nFollow it: {session_link(services, meta.sid)}",
        )
    return sent


def announce_auto_pause(services: Services[WorkSettings], view: SessionView) -> bool:
    meta = view.meta
    label = meta.name or meta.sid
    failed = view.count(UnitStatus.FAILED) + view.count(UnitStatus.TIMEOUT)
    return announce_on_the_way(
        services,
        meta,
        Event.PAUSED,
        f"chute: {label} - paused: too many failures",
        f"Your session {label} paused itself: {failed:,} of the {view.finished:,} "
        "finished so far failed. Nothing new starts until you resume it; look at the "
        f"failures first.\n\n{session_link(services, meta.sid)}",
    )


def session_link(services: Services[WorkSettings], sid: str) -> str:
    base = services.settings.public_url
    return f"{base.rstrip('/')}/?session={sid}" if base else f"Session id: {sid}"


def failed_units(
    services: Services[Any], view: SessionView, limit: int = EXAMINED_UNITS
) -> list[Failure]:
    """The session's failed, then its timed-out units, each in input order (at most `limit`)."""
    found: list[Failure] = []
    for status in (UnitStatus.FAILED, UnitStatus.TIMEOUT):
        if not view.count(status) or len(found) >= limit:
            continue
        units = services.store.iter_units(view.sid, status=status, max_items=limit - len(found))
        found += [Failure(u.name, u.error.code if u.error else status.value) for u in units]
    return found


def completion_message(
    view: SessionView,
    status: SessionStatus,
    noun: str = "files",
    *,
    failures: list[Failure] | None = None,
    link: str | None = None,
) -> tuple[str, str]:
    meta = view.meta
    label = meta.name or meta.sid
    subject = _sns_subject(f"chute: {label} - {status.value.replace('_', ' ')}")
    footer = ["", link or f"Session id: {meta.sid}"]
    if meta.error is not None:
        lines = [
            f"Your session {label} was rejected: nothing was processed.",
            "",
            f"{meta.error.message} ({meta.error.code})",
        ]
        return subject, "\n".join(lines + footer)
    completed, skipped, total = (
        view.count(UnitStatus.COMPLETED),
        view.count(UnitStatus.SKIPPED),
        meta.total,
    )
    ended = (
        "was cancelled"
        if status == SessionStatus.CANCELLED
        else f"has finished: {status.value.replace('_', ' ')}"
    )
    lines = [
        f"Your upload session {label} {ended}.",
        "",
        f"{completed} of {total} {noun} completed.",
    ]
    if meta.done_at is not None:
        lines.append(f"Time taken: {human_duration(meta.done_at - meta.created_at)}.")
    if skipped:
        lines.append(f"{skipped} skipped: chute does not process files of their kind.")
    not_done = total - completed - skipped
    if not_done:
        lines.append(
            f"{not_done} did not (failed: {view.count(UnitStatus.FAILED)}, timed out: "
            f"{view.count(UnitStatus.TIMEOUT)}, cancelled: {view.count(UnitStatus.CANCELLED)}); "
            f"their error codes are listed with the session's {noun}."
        )
    if failures:
        codes = Counter(f.code for f in failures)
        lines += ["", "Failure codes: " + ", ".join(f"{c} ×{n}" for c, n in codes.most_common())]
        lines += ["", f"The first {min(len(failures), LISTED_FAILURES)} that did not complete:"]
        lines += [f"  {f.name}: {f.code}" for f in failures[:LISTED_FAILURES]]
    return subject, "\n".join(lines + footer)


def _not_done(view: SessionView) -> bool:
    return view.count(UnitStatus.FAILED) + view.count(UnitStatus.TIMEOUT) > 0


def _sns_subject(text: str) -> str:
    """SNS takes a subject of under 100 printable ASCII characters, no line breaks (moto does not
    check; AWS refuses the publish)."""
    printable = "".join(c if " " <= c <= "~" else "?" for c in text)
    return printable[:99]
