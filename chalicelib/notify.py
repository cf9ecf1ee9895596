"""Completion: exactly one finisher claims the session, publishes once to SNS, records it."""

from __future__ import annotations

from chalicelib.log import logger
from chalicelib.models import SessionStatus
from chalicelib.services import Services
from chalicelib.sessions import session_status
from chalicelib.store import Item, Store, counter


def complete_if_done(services: Services, store: Store, sid: str) -> bool:
    """Claim completion if every file arrived and every unit is terminal; the one caller that
    wins publishes. Won?"""
    session = store.load_session(sid, consistent=True)
    if session is None or not _looks_done(session):
        return False
    if not store.claim_completion(sid, services.clock.now()):
        return False
    done = store.load_session(sid, consistent=True)
    assert done is not None, "a session that was just claimed exists"
    publish_completion(services, store, done)
    return True


def _looks_done(session: Item) -> bool:
    # A cheap read first: the claim is a transaction over every counter shard.
    return (
        session.get("done_at") is None
        and int(session["files_pending"]) == 0
        and int(session["remaining"]) == 0
        and session["state"] != "cancelled"
    )


def completion_event(status: SessionStatus) -> str:
    return "session.failed" if status == SessionStatus.FAILED else "session.completed"


def completion_message(meta: Item, status: SessionStatus) -> tuple[str, str]:
    label = meta.get("name") or meta["sid"]
    completed, total = int(meta[counter("completed")]), int(meta["total"])
    not_done = total - completed
    subject = _sns_subject(f"chute: {label} - {status.value.replace('_', ' ')}")
    lines = [
        f"Your upload session {label} has finished: {status.value.replace('_', ' ')}.",
        "",
        f"{completed} of {total} files completed.",
    ]
    if not_done:
        lines.append(
            f"{not_done} did not (failed: {meta[counter('failed')]}, timed out: "
            f"{meta[counter('timeout')]}, cancelled: {meta[counter('cancelled')]}); "
            "their error codes are listed with the session's files."
        )
    lines += ["", f"Session id: {meta['sid']}"]
    return subject, "\n".join(lines)


def _sns_subject(text: str) -> str:
    """SNS takes a subject of under 100 printable ASCII characters, no line breaks (moto does not
    check; AWS refuses the publish)."""
    printable = "".join(c if " " <= c <= "~" else "?" for c in text)
    return printable[:99]


def publish_completion(services: Services, store: Store, meta: Item) -> None:
    """Publish (unless the owner asked not to be told), then mark the session notified.

    If publishing fails the session stays notified=false, which the sweeper picks up.
    """
    sid = str(meta["sid"])
    status = session_status(meta)
    now = services.clock.now()
    if meta.get("notify_on_complete", True):
        subject, message = completion_message(meta, status)
        event = completion_event(status)
        services.sns.publish(
            TopicArn=services.settings.topic_arn,
            Subject=subject,
            Message=message,
            MessageAttributes={
                "user_id": {"DataType": "String", "StringValue": str(meta["owner"])},
                "event": {"DataType": "String", "StringValue": event},
                "session_id": {"DataType": "String", "StringValue": sid},
            },
        )
        store.put_item(
            {
                "PK": f"U#{meta['owner']}",
                "SK": f"N#{int(now * 1000):014d}#{sid}",
                "event": event,
                "session_id": sid,
                "subject": subject,
                "message": message,
                "created_at": now,
                "expires_at": int(meta["expires_at"]),
            }
        )
    store.mark_notified(sid, now)
    logger.info("session complete", extra={"session_id": sid, "status": status.value})
