"""Completion: exactly one caller claims a finished session; then its follow-up starts and its
notification goes out."""

from __future__ import annotations

from chalicelib.chains import start_follow_up
from chalicelib.config import WorkSettings
from chalicelib.notify import notify_completion
from chalicelib.services import Services
from chalicelib.store import may_be_done


def complete_if_done(services: Services[WorkSettings], sid: str) -> bool:
    """Claim completion if every file arrived and every unit is terminal; the one caller that
    wins notifies. Safe to call any number of times, from anywhere: won?"""
    store = services.store
    view = store.load_session(sid, consistent=True)
    # A cheap read first: the claim is a transaction over every counter shard.
    if view is None or not may_be_done(view):
        return False
    if not store.claim_completion(sid, services.clock.now()):
        return False
    after_completion(services, sid)
    return True


def after_completion(services: Services[WorkSettings], sid: str) -> bool:
    """What a completion sets off: the follow-up session (if the job type chains one), then the
    notification. Both are idempotent; the sweeper calls this again for a completion whose
    notification was never recorded as sent. Notified by this call?"""
    view = services.store.load_session(sid, consistent=True)
    if view is None or view.meta.done_at is None:
        return False
    start_follow_up(services, view)
    return notify_completion(services, view)
