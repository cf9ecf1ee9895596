"""Steering a session (DESIGN §4): pause, resume, cancel.

The session's state changes on META first (`Store.set_state`, conditional); its units follow,
each by one counted `Store.move`, so counts always add up to the total:

- pause: nothing new starts. A worker that receives a unit's message while the session is paused
  parks the unit (`pending → paused`) and drops the message; running units finish.
- resume: the parked units go back to `pending` and get one message each, in ordinal order. A unit
  parked just after the resume listed them is unparked by the worker that parked it (it checks the
  state again after parking): whichever move wins sends the one message.
- auto-pause: a session whose failures pass its job type's threshold pauses itself, once, with
  reason `failure_rate`; a resume goes on with it.
- cancel: nothing new starts; pending and paused units end `cancelled`; files not yet uploaded are
  claimed with no units. The session is `cancelled` once no unit is running, and its one
  `session.cancelled` event goes out then (from here, or from the last running unit's finish).

Each control is idempotent; one the session's status forbids is a 409 `invalid_state`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from chalicelib.budget import RECHECK_S, STUCK_GRACE_S
from chalicelib.completion import complete_if_done
from chalicelib.fanout import claim_with_plan, send_planned
from chalicelib.log import logger
from chalicelib.models import SessionState, SessionStatus, UnitStatus
from chalicelib.notify import announce_auto_pause
from chalicelib.plans import Plan
from chalicelib.queues import DEAD_LETTERED, send_work, work_message
from chalicelib.sessions import refused, session_status
from chalicelib.store import Outcome

if TYPE_CHECKING:
    from chalicelib.config import WorkSettings
    from chalicelib.jobs import AutoPause
    from chalicelib.services import Services
    from chalicelib.store.items import SessionMeta, SessionView, UnitItem

S = UnitStatus
PAGE = 200
REQUESTED = "requested"
NOTHING = Plan(units=[])  # the plan of a file a cancelled session will never read


def pause(services: Services[WorkSettings], view: SessionView, *, reason: str = REQUESTED) -> bool:
    """Pause a running session; False if it was paused already."""
    if view.meta.state == SessionState.PAUSED and view.meta.done_at is None:
        return False
    now = services.clock.now()
    if not services.store.set_state(
        view.sid, {SessionState.ACTIVE}, SessionState.PAUSED, now=now, reason=reason
    ):
        raise refused("paused", _reload(services, view))
    logger.info("session paused", extra={"session_id": view.sid, "reason": reason})
    return True


def resume(services: Services[WorkSettings], view: SessionView) -> int:
    """Resume a paused session; the units put back to work (a resumed session's stragglers,
    parked as it resumed, are put back too)."""
    meta = view.meta
    if meta.state != SessionState.ACTIVE or meta.done_at is not None:
        now = services.clock.now()
        if not services.store.set_state(
            view.sid, {SessionState.PAUSED}, SessionState.ACTIVE, now=now
        ):
            raise refused("resumed", _reload(services, view))
    meta = _reload(services, view).meta
    resumed = unpark(services, meta)
    # The last running unit may have finished while the session was paused, when it could not
    # complete: nothing is left to finish it now but this.
    complete_if_done(services, view.sid)
    logger.info("session resumed", extra={"session_id": view.sid, "units": resumed})
    return resumed


def cancel(services: Services[WorkSettings], view: SessionView) -> int:
    """Cancel a session; the units cancelled by this call."""
    meta = view.meta
    if meta.state not in (SessionState.CANCELLING, SessionState.CANCELLED):
        now = services.clock.now()
        if not services.store.set_state(
            view.sid,
            {SessionState.ACTIVE, SessionState.PAUSED},
            SessionState.CANCELLING,
            now=now,
        ):
            raise refused("cancelled", _reload(services, view))
    elif meta.done_at is not None:
        return 0
    cancelled = 0
    for unit in _units(services, view.sid, S.PENDING, S.PAUSED):
        moved = services.store.move(
            unit.ref, unit.status, S.CANCELLED, attempt=unit.attempt, now=services.clock.now()
        )
        cancelled += moved is not Outcome.STALE
    _claim_missing_files(services, meta)
    complete_if_done(services, view.sid)
    logger.info("session cancelled", extra={"session_id": view.sid, "units": cancelled})
    return cancelled


RETRYABLE = (S.FAILED, S.TIMEOUT)


def retry(services: Services[WorkSettings], view: SessionView, *, everything: bool = False) -> int:
    """Failed and timed-out units that may succeed on another try (`everything`: every failed
    one) back to pending with their attempts reset, at their ordinals; a done session reopens
    and will complete, and notify, again. The units put back to work."""
    meta = view.meta
    status = session_status(view)
    if meta.state != SessionState.ACTIVE and meta.state != SessionState.PAUSED:
        raise refused("retried", view)
    if status in (SessionStatus.REJECTED, SessionStatus.UPLOADING):
        raise refused("retried", view)
    return _retry_units(
        services,
        view,
        _units(services, view.sid, *RETRYABLE),
        lambda unit: everything or unit.retryable,
    )


def retry_dead_letters(
    services: Services[WorkSettings], view: SessionView, units: Iterable[UnitItem]
) -> int:
    """An operator's redrive (chalicelib.redrive): those of `units` that still failed as dead
    letters back to work, as a person's retry would; a cancelled session's stay as they are."""
    if view.meta.state not in (SessionState.ACTIVE, SessionState.PAUSED):
        return 0

    def dead_lettered(unit: UnitItem) -> bool:
        return (
            unit.status == S.FAILED
            and unit.error is not None
            and unit.error.code == (DEAD_LETTERED)
        )

    return _retry_units(services, view, units, dead_lettered)


def _retry_units(
    services: Services[WorkSettings],
    view: SessionView,
    units: Iterable[UnitItem],
    chosen: Callable[[UnitItem], bool],
) -> int:
    meta, store, now = view.meta, services.store, services.clock.now()

    def put_back(unit: UnitItem) -> UnitItem | None:
        if unit.source is None or not chosen(unit):
            return None  # failed before there was anything to read (a missing upload)
        moved = store.move(
            unit.ref, unit.status, S.PENDING, attempt=unit.attempt, now=now,
            due=now + STUCK_GRACE_S,
        )  # fmt: skip
        return None if moved is Outcome.STALE else unit.model_copy(update={"attempt": 0})

    # The units first, then META: a session reopened before its units were pending could be
    # claimed complete again at once, by anyone checking, with nothing retried.
    retried = _back_to_work(services, meta, units, put_back)
    if retried and meta.done_at is not None:
        store.reopen(view.sid, now=now, recheck=now + RECHECK_S)
        # The retried units may all have finished before the reopening: their finishers saw a
        # done session and claimed nothing. Check now (the sweeper would, later).
        complete_if_done(services, view.sid)
    logger.info("failed units retried", extra={"session_id": view.sid, "units": retried})
    return retried


FAILURE_RATE = "failure_rate"


def auto_pause_if_failing(services: Services[WorkSettings], sid: str, rule: AutoPause) -> bool:
    """Pause the session by itself (reason `failure_rate`) when at least `rule.rate` of its
    finished units failed or timed out, once `rule.sample` have finished: a broken model
    endpoint or a bad batch does not burn through every row. Checked after each failure."""
    view = services.store.load_session(sid)
    if view is None or view.meta.state != SessionState.ACTIVE or view.meta.auto_paused_at:
        return False
    failed = view.count(S.FAILED) + view.count(S.TIMEOUT)
    if view.finished < rule.sample or failed < rule.rate * view.finished:
        return False
    paused = services.store.auto_pause(sid, now=services.clock.now(), reason=FAILURE_RATE)
    if paused:
        announce_auto_pause(services, view)
        logger.warning(
            "session paused itself: too many failures",
            extra={"session_id": sid, "failed": failed, "finished": view.finished},
        )
    return paused


def unpark(services: Services[WorkSettings], meta: SessionMeta) -> int:
    """Every parked unit of an active session back to pending, with its message; how many."""
    if meta.state != SessionState.ACTIVE:
        return 0
    return _back_to_work(
        services,
        meta,
        _units(services, meta.sid, S.PAUSED),
        lambda unit: unit if _unpark_one(services, unit) else None,
    )


def _back_to_work(
    services: Services[WorkSettings],
    meta: SessionMeta,
    units: Iterable[UnitItem],
    put_back: Callable[[UnitItem], UnitItem | None],
) -> int:
    """Move each unit back to pending with `put_back` (the unit as moved, or None when it was
    not), and send the moved ones their messages a page at a time, in ordinal order; how many."""
    batch: list[UnitItem] = []
    sent = 0
    for unit in units:
        moved = put_back(unit)
        if moved is not None:
            batch.append(moved)
        if len(batch) >= PAGE:
            sent += _send(services, meta, batch)
            batch = []
    return sent + _send(services, meta, batch)


def _unpark_one(services: Services[WorkSettings], unit: UnitItem) -> bool:
    now = services.clock.now()
    # Listed as RETRY until its message is claimed: if the send below is lost, the sweeper
    # sends it.
    moved = services.store.move(
        unit.ref, S.PAUSED, S.PENDING, attempt=unit.attempt, now=now, due=now + STUCK_GRACE_S
    )
    return moved is not Outcome.STALE


def unpark_unit(services: Services[WorkSettings], meta: SessionMeta, unit: UnitItem) -> bool:
    """One parked unit back to work (a worker that parked it as the session resumed)."""
    if not _unpark_one(services, unit):
        return False
    _send(services, meta, [unit])
    return True


def _send(services: Services[WorkSettings], meta: SessionMeta, units: list[UnitItem]) -> int:
    messages = [work_message(meta, unit, unit.attempt + 1) for unit in units if unit.source]
    send_work(services, messages, priority=meta.priority)
    return len(messages)


def _units(services: Services[WorkSettings], sid: str, *statuses: UnitStatus) -> Iterator[UnitItem]:
    """The session's units in any of `statuses`, in ordinal order (strongly consistent)."""
    return (u for u in services.store.iter_units(sid, consistent=True) if u.status in statuses)


def _claim_missing_files(services: Services[WorkSettings], meta: SessionMeta) -> None:
    """Files not yet uploaded will never be: claimed with no units, so the session can end."""
    for declared in services.store.declared_files(meta.sid):
        if declared.fanned_out_at is None and claim_with_plan(services, declared, NOTHING):
            send_planned(services, meta, declared.file, NOTHING)


def _reload(services: Services[WorkSettings], view: SessionView) -> SessionView:
    fresh = services.store.load_session(view.sid, consistent=True)
    return fresh if fresh is not None else view
