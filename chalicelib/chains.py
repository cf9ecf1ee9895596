"""Chains (DESIGN §4): a job type may name a follow-up; when a session of it completes, a
follow-up session is started over its completed results, linked both ways.

The follow-up is an ordinary session with one input file: the list of the parent's completed
results in input order (`parent-results.jsonl`), stored at its upload key so that its
ObjectCreated event runs the usual fan-out — one unit per result, whose source is the result
object itself. Nothing is copied.

Starting one is idempotent, so it rides on the completion's notification: it runs before the
notification is recorded as sent, and the sweeper's re-send of an unrecorded notification runs it
again after a crash. The follow-up's id is derived from the parent's id and its completion number:
every run of the start names the same session, and a parent reopened by a retry that completes
again starts a new follow-up over the results it has then.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from chalicelib.errors import PermanentError
from chalicelib.filetypes import FOLLOW_UP_FILE
from chalicelib.log import logger
from chalicelib.modelbase import Model
from chalicelib.models import SessionStatus, UnitStatus
from chalicelib.plans import Plan
from chalicelib.presign import upload_key
from chalicelib.sessions import session_status
from chalicelib.sources import ObjectSource
from chalicelib.store.items import DeclaredFile, SessionMeta, SessionView, UnitItem
from chalicelib.unitplan import new_unit, upload_mismatch

if TYPE_CHECKING:
    from chalicelib.config import WorkSettings
    from chalicelib.services import Services

RESULTS_TYPE = "application/x-ndjson"
# The follow-up's input is written right after the session: if that fails, the parent's next
# notification attempt writes it again well before this.
INPUT_DEADLINE_S = 3600.0


class ParentResult(Model):
    """One line of a follow-up's input: a completed unit of the parent session."""

    ordinal: str
    name: str
    result_key: str


def follow_up_id(parent: str, completion: int) -> str:
    """The follow-up of the parent's `completion`-th completion: the same id on every run."""
    return hashlib.sha256(f"follow-up/{parent}/{completion}".encode()).hexdigest()[:32]


def start_follow_up(services: Services[WorkSettings], view: SessionView) -> str | None:
    """Start the follow-up session of a completed session whose job type names one; its id, or
    None when there is none to start (no follow-up, or no completed unit to follow up on)."""
    meta = view.meta
    follow_up = services.jobs.get(meta.job_type).follow_up
    if follow_up is None or meta.done_at is None:
        return None
    if session_status(view) not in (SessionStatus.COMPLETED, SessionStatus.COMPLETED_WITH_ERRORS):
        return None
    if view.count(UnitStatus.COMPLETED) == 0:
        return None  # all skipped: nothing was read, so nothing to follow up on
    child = follow_up_id(meta.sid, meta.completions)
    store = services.store
    existing = store.get_meta(child)
    if existing is not None and not existing.files_pending:
        # Started before, and its input arrived: only the link may be missing.
        store.add_child(meta.sid, child)
        return child
    completed = store.iter_units(meta.sid, status=UnitStatus.COMPLETED, consistent=True)
    body = b"".join(_line(unit) for unit in completed)
    now = services.clock.now()
    child_meta = SessionMeta(
        sid=child,
        owner=meta.owner,
        name=f"{meta.name or meta.sid} - {follow_up}",
        job_type=follow_up,
        priority=meta.priority,
        options={},
        notify=meta.notify,
        files_total=1,
        files_pending=1,
        created_at=now,
        upload_deadline=now + INPUT_DEADLINE_S,
        expires_at=meta.expires_at,
        parent_id=meta.sid,
    )
    declared = DeclaredFile(
        sid=child,
        file=0,
        name=FOLLOW_UP_FILE,
        size=len(body),
        content_type=RESULTS_TYPE,
        owner=meta.owner,
        job_type=follow_up,
        priority=meta.priority,
        expires_at=meta.expires_at,
    )
    if existing is None:
        # Never over a live session: its declared file may be claimed by now.
        store.put_session(child_meta, [declared], first_check=now + INPUT_DEADLINE_S)
    store.add_child(meta.sid, child)
    # Its ObjectCreated event runs the follow-up's fan-out (a second one finds it claimed).
    services.s3.put_object(
        Bucket=services.settings.bucket,
        Key=upload_key(child, 0, FOLLOW_UP_FILE),
        Body=body,
        ContentType=RESULTS_TYPE,
    )
    logger.info("follow-up started", extra={"session_id": meta.sid, "follow_up": child})
    return child


def _line(unit: UnitItem) -> bytes:
    assert unit.result_key is not None, "a completed unit has its result"
    line = ParentResult(ordinal=unit.ref.ordinal, name=unit.name, result_key=unit.result_key)
    return line.model_dump_json().encode() + b"\n"


def plan_follow_up(
    services: Services[WorkSettings], key: str, size: int, name: str, declared: DeclaredFile
) -> Plan:
    """One unit per parent result, in the parent's order; its source is the result object."""
    max_attempts = services.jobs.get(declared.job_type).max_attempts
    now = services.clock.now()
    problem = upload_mismatch(declared, name, size)
    if problem is not None:
        return Plan(units=[new_unit(declared, 0, name, now, problem=problem)])
    data = services.s3.get_object(Bucket=services.settings.bucket, Key=key)["Body"].read()
    units = []
    for index, line in enumerate(data.splitlines()):
        try:
            parent = ParentResult.model_validate_json(line)
        except ValueError:
            unreadable = PermanentError(
                "This line of the parent's results could not be read.", code="row_unreadable"
            )
            units.append(new_unit(declared, index, f"line {index + 1}", now, problem=unreadable))
            continue
        units.append(
            new_unit(
                declared,
                index,
                parent.name,
                now,
                source=ObjectSource(key=parent.result_key),
                content_type="application/json",
                max_attempts=max_attempts,
            )
        )
    return Plan(units=units)


def parent_text(document: dict[str, object]) -> str:
    """The text a result holds: a document's extracted text, or a model's answer."""
    text = document.get("text")
    if isinstance(text, str):
        return text
    metadata = document.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("response"), str):
        return str(metadata["response"])
    return ""
