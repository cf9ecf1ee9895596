"""Recovery after queued messages were lost wholesale — a purged queue, or the embedded stack
restored from a snapshot taken while it ran (infra.snapshot) — which the sweeper's per-item
lists do not all cover: a pending unit whose first message is gone is on no list.

For every session not yet done: a file that arrived but was never fanned out is fanned out now;
every pending unit gets a message for its next attempt. A unit that already has one gets a
second, which its claim turns away (a claim names the attempt), so this may run at any time.
Running units need nothing here: their leases run out and the sweeper gives them back.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.config import WorkSettings
from chalicelib.fanout import fan_out_object, finish_fan_out
from chalicelib.log import log_keys, logger
from chalicelib.models import SessionState, UnitStatus
from chalicelib.presign import upload_key
from chalicelib.queues import send_work, work_message
from chalicelib.services import Services
from chalicelib.store.items import SessionMeta
from chalicelib.store.keys import DueList


@dataclass
class RecoveryReport:
    sessions: int = 0
    files_fanned_out: int = 0
    units_requeued: int = 0


def recover_open_sessions(services: Services[WorkSettings]) -> RecoveryReport:
    report = RecoveryReport()
    for item in services.store.due(DueList.OPEN, max_items=100_000):
        meta = SessionMeta.model_validate(item)
        if meta.done_at is not None or meta.state == SessionState.CANCELLED:
            continue
        with log_keys(session_id=meta.sid):
            recover_session(services, meta, report)
        report.sessions += 1
    logger.info("recovery done", extra={"report": report.__dict__})
    return report


def recover_session(
    services: Services[WorkSettings], meta: SessionMeta, report: RecoveryReport
) -> None:
    store, bucket = services.store, services.settings.bucket
    fanned_out_now: set[int] = set()  # their units got their first messages just now
    for declared in store.declared_files(meta.sid):
        if declared.fanned_out_at is not None:
            finish_fan_out(services, meta, declared.file)
            continue
        key = upload_key(meta.sid, declared.file, declared.name)
        listed = services.s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        found = [o for o in listed.get("Contents", []) if o.get("Key") == key]
        if found:
            fan_out_object(services, key, int(found[0].get("Size", 0)))
            fanned_out_now.add(declared.file)
            report.files_fanned_out += 1
    messages = [
        work_message(meta, unit, unit.attempt + 1)
        for unit in store.iter_units(meta.sid, status=UnitStatus.PENDING, consistent=True)
        if unit.file not in fanned_out_now
    ]
    send_work(services, messages, priority=meta.priority)
    report.units_requeued += len(messages)
