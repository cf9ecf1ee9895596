"""An operator's redrive (`POST /admin/dlq/redrive`, `chute dlq redrive`): every unit that failed
as a dead letter goes back to work, once whatever made it fail is fixed.

The sweeper fails a unit whose message landed in a dead-letter queue (`dead_lettered`) and lists
it on GSI2's DEAD list; a redrive reads that list — no table scan — and retries the listed units
session by session, as a person's retry would: attempts start again, a finished session reopens
and completes (and notifies) again. A unit retried since, or of a session cancelled since, is
only taken off the list. Messages still in a dead-letter queue are the sweeper's next run's: they
become listed units within a minute, and a later redrive takes them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from chalicelib.config import WorkSettings
from chalicelib.control import retry_dead_letters
from chalicelib.log import log_keys, logger
from chalicelib.services import Services
from chalicelib.store.items import UnitItem
from chalicelib.store.keys import DueList

MAX_UNITS = 10_000  # per call; a larger backlog takes more calls (the answer says how many left)


@dataclass
class RedriveReport:
    units: int = 0
    sessions: list[str] = field(default_factory=list)
    left: bool = False


def redrive(services: Services[WorkSettings]) -> RedriveReport:
    store = services.store
    listed: dict[str, list[UnitItem]] = defaultdict(list)
    for item in store.due(DueList.DEAD, max_items=MAX_UNITS + 1):
        unit = UnitItem.model_validate(item)
        listed[unit.sid].append(unit)
    report = RedriveReport(left=sum(map(len, listed.values())) > MAX_UNITS)
    for sid, units in listed.items():
        with log_keys(session_id=sid):
            view = store.load_session(sid, consistent=True)
            retried = retry_dead_letters(services, view, units) if view is not None else 0
            for unit in units:
                # Retried units left the list with their move; the rest are done with.
                store.leave_list(unit.ref.key, DueList.DEAD)
        if retried:
            report.units += retried
            report.sessions.append(sid)
    logger.info("dead letters re-driven", extra={"units": report.units})
    return report
