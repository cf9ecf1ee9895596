"""Upload fan-out: one S3 ObjectCreated event → a plan of units, counted once, then sent.

Nothing the client sent is trusted (moto does not enforce presigned POST conditions, DESIGN §11):
the key must name a declared file of a live session, and the stored size must be the declared one.
Anything else becomes a failed unit with a clear error, so the session still finishes.

A file's plan (its units) is written down before the file is claimed, and the claim records which
plan it counted. Whoever finishes a claimed file later — a redelivered event after a crash, or the
sweeper when the event is gone — writes and sends exactly that plan, never one of its own: units
that were not counted can never exist.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

from chalicelib.budget import FANOUT_GRACE_S
from chalicelib.chains import plan_follow_up
from chalicelib.completion import complete_if_done
from chalicelib.config import WorkSettings
from chalicelib.errors import PermanentError
from chalicelib.log import log_keys, logger
from chalicelib.models import Event, PromptOptions, SessionState, UnitStatus
from chalicelib.notify import announce_started
from chalicelib.plans import Plan, load_plan, save_plan
from chalicelib.presign import parse_upload_key
from chalicelib.queues import send_work, work_message
from chalicelib.rowplan import plan_rows, rejected
from chalicelib.services import Services
from chalicelib.store.items import DeclaredFile, SessionMeta
from chalicelib.unitplan import new_unit, plan_object


def handle_upload_message(services: Services[WorkSettings], body: str) -> None:
    """One SQS message from the uploads queue: an S3 event notification (possibly a test event)."""
    event = json.loads(body)
    if event.get("Event") == "s3:TestEvent":
        return
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        obj = record["s3"]["object"]
        # Keys arrive URL-encoded (moto even encodes "/" as %2F).
        fan_out_object(services, unquote_plus(obj["key"]), int(obj["size"]))


def fan_out_object(services: Services[WorkSettings], key: str, size: int) -> None:
    parsed = parse_upload_key(key)
    if parsed is None:
        logger.warning("ignoring an object outside any session", extra={"key": key})
        return
    sid, file, name = parsed
    with log_keys(session_id=sid, file=file):
        declared = services.store.get_declared_file(sid, file)
        meta = services.store.get_meta(sid)
        if declared is None or meta is None:
            logger.warning("ignoring an upload for no declared file", extra={"key": key})
            return
        if declared.fanned_out_at is None:
            if meta.state in (SessionState.CANCELLING, SessionState.CANCELLED):
                # Arrived after the session was cancelled: counted as a file, never read.
                plan = Plan(units=[])
            elif services.jobs.get(declared.job_type).rows:
                options = PromptOptions.model_validate(meta.options)
                plan = plan_rows(services, key, size, name, declared, options)
            elif services.jobs.get(declared.job_type).chained:
                plan = plan_follow_up(services, key, size, name, declared)
            else:
                plan = plan_object(services, key, size, name, declared)
            if plan.rejected is not None:
                logger.warning("batch rejected", extra={"code": plan.rejected.code})
            if claim_with_plan(services, declared, plan):
                # This call counted the units and wrote them: send them without reading back.
                send_planned(services, meta, file, plan)
                return
        else:
            logger.info("the file was claimed before; finishing its fan-out", extra={"key": key})
        finish_fan_out(services, meta, file)


def claim_with_plan(services: Services[WorkSettings], declared: DeclaredFile, plan: Plan) -> bool:
    """Write the plan down, then count its units into the session once; claimed by this call?"""
    store, now = services.store, services.clock.now()
    record = save_plan(services, declared, plan)
    if not store.claim_file(
        declared.sid, declared.file, plan.units, plan=record, now=now, due=now + FANOUT_GRACE_S,
        rejection=plan.rejected,
    ):  # fmt: skip
        return False
    # Written right after the claim; if this crashes, finish_fan_out writes them from the plan.
    store.put_units(plan.units, recovering=False)
    return True


def send_planned(
    services: Services[WorkSettings], meta: SessionMeta, file: int, plan: Plan
) -> None:
    """The fan-out's common path: the units this call just claimed and wrote, all new, get their
    messages. (A crash before the file is marked sent leaves it to finish_fan_out's recovery,
    run by the redelivered S3 event or the sweeper.)"""
    waiting = [
        work_message(meta, unit, attempt=1)
        for unit in plan.units
        if unit.status == UnitStatus.PENDING
    ]
    send_work(services, waiting, priority=meta.priority)
    services.store.mark_file_sent(meta.sid, file)
    logger.info("fanned out", extra={"units": len(plan.units), "queued": len(waiting)})
    if waiting and Event.STARTED.value not in meta.event_claims:
        announce_started(services, meta, len(plan.units))
    complete_if_done(services, meta.sid)


def finish_fan_out(services: Services[WorkSettings], meta: SessionMeta, file: int) -> None:
    """Make sure every unit of a claimed file exists and has its message; then the file is sent.

    Idempotent: safe after a crash anywhere in a fan-out, and for the sweeper to call.
    """
    store = services.store
    declared = store.get_declared_file(meta.sid, file)
    if declared is None or declared.plan is None:
        return
    if not declared.units_sent:
        plan = load_plan(services, declared.plan)
        store.put_units(plan.units, recovering=True)
        waiting = [
            work_message(meta, unit, attempt=1)
            for unit in store.units_of_file(meta.sid, file)
            if unit.status == UnitStatus.PENDING and unit.attempt == 0
        ]
        send_work(services, waiting, priority=meta.priority)
        store.mark_file_sent(meta.sid, file)
        logger.info("fanned out", extra={"units": len(plan.units), "queued": len(waiting)})
    # A file whose units were all failed at fan-out (or the last file to arrive after its units
    # finished) may complete the session here: no worker will.
    complete_if_done(services, meta.sid)


def fail_file(
    services: Services[WorkSettings],
    meta: SessionMeta,
    declared: DeclaredFile,
    problem: PermanentError,
) -> bool:
    """Claim a declared file as one failed unit (never uploaded, or its fan-out kept failing) —
    a batch of rows as rejected, since it has no units; False when someone claimed it first."""
    if services.jobs.get(declared.job_type).rows:
        plan = rejected(problem)
    else:
        plan = Plan(
            units=[new_unit(declared, 0, declared.name, services.clock.now(), problem=problem)]
        )
    if not claim_with_plan(services, declared, plan):
        return False
    send_planned(services, meta, declared.file, plan)
    return True
