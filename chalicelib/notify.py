"""Notifications (DESIGN §7): each (session, event) claimed on META, published once, recorded.

The claim comes before the publish, so two callers never both publish; the only duplicate window
is a crash between publish and record, which the sweeper's re-send closes once the claim is older
than NOTIFY_CLAIM_S (longer than a publish can take with the SNS client's retries).
"""

from __future__ import annotations

from chalicelib.budget import NOTIFY_CLAIM_S
from chalicelib.config import WorkSettings
from chalicelib.log import logger
from chalicelib.models import SessionStatus, UnitStatus
from chalicelib.services import Services
from chalicelib.sessions import session_status
from chalicelib.store.items import NotificationItem, SessionView


def completion_event(status: SessionStatus) -> str:
    if status == SessionStatus.CANCELLED:
        return "session.cancelled"
    failed = status in (SessionStatus.FAILED, SessionStatus.REJECTED)
    return "session.failed" if failed else "session.completed"


def completion_message(
    view: SessionView, status: SessionStatus, noun: str = "files"
) -> tuple[str, str]:
    meta = view.meta
    label = meta.name or meta.sid
    completed, skipped, total = (
        view.count(UnitStatus.COMPLETED),
        view.count(UnitStatus.SKIPPED),
        meta.total,
    )
    not_done = total - completed - skipped
    subject = _sns_subject(f"chute: {label} - {status.value.replace('_', ' ')}")
    if meta.error is not None:
        lines = [
            f"Your session {label} was rejected: nothing was processed.",
            "",
            f"{meta.error.message} ({meta.error.code})",
            "",
            f"Session id: {meta.sid}",
        ]
        return subject, "\n".join(lines)
    units = noun
    ended = (
        "was cancelled"
        if status == SessionStatus.CANCELLED
        else f"has finished: {status.value.replace('_', ' ')}"
    )
    lines = [
        f"Your upload session {label} {ended}.",
        "",
        f"{completed} of {total} {units} completed.",
    ]
    if skipped:
        lines.append(f"{skipped} skipped: chute does not process files of their kind.")
    if not_done:
        lines.append(
            f"{not_done} did not (failed: {view.count(UnitStatus.FAILED)}, timed out: "
            f"{view.count(UnitStatus.TIMEOUT)}, cancelled: {view.count(UnitStatus.CANCELLED)}); "
            f"their error codes are listed with the session's {units}."
        )
    lines += ["", f"Session id: {meta.sid}"]
    return subject, "\n".join(lines)


def _sns_subject(text: str) -> str:
    """SNS takes a subject of under 100 printable ASCII characters, no line breaks (moto does not
    check; AWS refuses the publish)."""
    printable = "".join(c if " " <= c <= "~" else "?" for c in text)
    return printable[:99]


def notify_completion(services: Services[WorkSettings], view: SessionView) -> bool:
    """Publish the done session's completion event unless someone else has claimed it; sent?

    If publishing fails the event stays unrecorded (and the session on the NOTIFY list), which
    the sweeper picks up once the claim is stale.
    """
    store, now, sid = services.store, services.clock.now(), view.sid
    assert view.meta.done_at is not None, "only a done session notifies"
    status = session_status(view)
    event = completion_event(status)
    if not store.claim_event(sid, event, now=now, stale_before=now - NOTIFY_CLAIM_S):
        return False
    meta = view.meta
    if meta.notify_on_complete:
        noun = services.jobs.get(meta.job_type).noun
        subject, message = completion_message(view, status, noun)
        services.sns.publish(
            TopicArn=services.settings.topic_arn,
            Subject=subject,
            Message=message,
            MessageAttributes={
                "user_id": {"DataType": "String", "StringValue": meta.owner},
                "event": {"DataType": "String", "StringValue": event},
                "session_id": {"DataType": "String", "StringValue": sid},
            },
        )
        store.put_notification(
            NotificationItem(
                owner=meta.owner,
                session_id=sid,
                event=event,
                subject=subject,
                message=message,
                created_at=meta.done_at,
                expires_at=meta.expires_at,
            )
        )
    store.record_event_sent(sid, event, now=services.clock.now(), completion=True)
    logger.info("session complete", extra={"session_id": sid, "status": status.value})
    return True
