"""The worker, one delivery at a time, on the in-process stack: claims, retries, stale attempts,
missing processors, time running out, and the holes that could leave a session hanging.

Units here run a scripted processor: each attempt of each unit does what its script says next.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from pypdf import PageObject

from chalicelib.budget import LEASE_MARGIN_S
from chalicelib.clock import FakeClock
from chalicelib.errors import PermanentError, RetryableError
from chalicelib.jobs import DOCUMENTS, JobRegistry, JobType
from chalicelib.models import SessionStatus, UnitStatus, WorkMessage
from chalicelib.processors import ProcessorOutput, UnitContext, processor
from chalicelib.processors.pdfgen import make_pdf
from chalicelib.queues import work_message
from chalicelib.sessions import session_status
from chalicelib.sources import ObjectSource
from chalicelib.store.items import DeclaredFile, SessionMeta, UnitItem, UnitPatch
from chalicelib.store.keys import UnitRef
from chalicelib.store.table import CONFLICT_ATTEMPTS
from chalicelib.worker import process_message
from infra.inprocess import InProcessStack
from tests.factories import plan_record
from tests.faults.inject import fail_calls, inject_conflicts

S = UnitStatus
# What each attempt of a unit does, by (session, ordinal): "ok", "retry", "fail", "boom", or a
# callable run with the context.
SCRIPTS: dict[tuple[str, str], list[Any]] = {}


@processor("test-scripted")
def scripted(ctx: UnitContext) -> ProcessorOutput:
    step = SCRIPTS[(ctx.session_id, ctx.ordinal)].pop(0)
    if callable(step):
        step = step(ctx)
    if step == "retry":
        raise RetryableError("The service was busy.", code="busy")
    if step == "fail":
        raise PermanentError("The input is broken.", code="broken")
    if step == "boom":
        raise KeyError("surprise")
    with ctx.open() as stream:
        data = stream.read()
    return ProcessorOutput(metadata={"answer": str(step), "bytes": len(data)})


JOBS = JobRegistry(
    [
        replace(DOCUMENTS, backoff_base_s=0),
        JobType("scripted", processor="test-scripted", backoff_base_s=0, unit_timeout_s=60),
        JobType("orphan", processor="no-such-processor"),
    ]
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def st(clock: FakeClock) -> Iterator[InProcessStack]:
    with InProcessStack(clock, JOBS, progress_interval_s=0) as stack:
        yield stack
    SCRIPTS.clear()


def start(st: InProcessStack, scripts: list[list[Any]], job_type: str = "scripted") -> list[str]:
    """A session of one file already fanned out into one unit per script; its messages' bodies."""
    services, now = st.services, st.services.clock.now()
    sid = services.clock.new_id()
    meta = SessionMeta(
        sid=sid, owner="alice", job_type=job_type, priority=5, files_total=1, files_pending=1,
        created_at=now, upload_deadline=now + 900, expires_at=int(now) + 86400,
    )  # fmt: skip
    declared = DeclaredFile(
        sid=sid, file=0, name="in.txt", size=3, content_type="text/plain", owner="alice",
        job_type=job_type, priority=5, expires_at=int(now) + 86400,
    )  # fmt: skip
    services.store.put_session(meta, [declared], first_check=now + 1800)
    services.s3.put_object(Bucket=services.settings.bucket, Key=f"in/{sid}", Body=b"abc")
    units = [
        UnitItem(
            sid=sid,
            file=0,
            index=i,
            name=f"row{i}",
            status=S.PENDING,
            max_attempts=3,
            source=ObjectSource(key=f"in/{sid}", size=3),
            created_at=now,
        )
        for i in range(len(scripts))
    ]
    assert services.store.claim_file(sid, 0, units, plan=plan_record(units), now=now, due=now + 960)
    services.store.put_units(units, recovering=False)
    services.store.mark_file_sent(sid, 0)
    for unit, script in zip(units, scripts, strict=True):
        SCRIPTS[(sid, unit.ref.ordinal)] = list(script)
    return [work_message(meta, u, 1).model_dump_json() for u in units]


def unit_of(st: InProcessStack, body: str) -> UnitItem:
    message = WorkMessage.model_validate_json(body)
    found = st.services.store.get_unit(UnitRef(message.sid, message.file, message.index))
    assert found is not None
    return found


def status(st: InProcessStack, body: str) -> SessionStatus:
    view = st.services.store.load_session(
        WorkMessage.model_validate_json(body).sid, consistent=True
    )
    assert view is not None
    return session_status(view)


def emails(st: InProcessStack) -> list[str]:
    return [e["Subject"] for e in st.outbox()]


def test_a_unit_that_succeeds_completes_and_completes_its_session(st: InProcessStack) -> None:
    (body,) = start(st, [["ok"]])

    process_message(st.services, body)

    unit = unit_of(st, body)
    assert (unit.status, unit.attempt, unit.result) == (
        S.COMPLETED,
        1,
        {"answer": "ok", "bytes": 3},
    )
    assert status(st, body) is SessionStatus.COMPLETED
    assert len(emails(st)) == 1


def test_a_retryable_error_requeues_and_the_next_attempt_claims_it(st: InProcessStack) -> None:
    (body,) = start(st, [["retry", "ok"]])

    process_message(st.services, body)
    requeued = unit_of(st, body)
    st.drain("worker")

    assert (requeued.status, requeued.attempt, requeued.retryable) == (S.PENDING, 1, True)
    assert (requeued.error.code if requeued.error else None) == "busy"
    done = unit_of(st, body)
    assert (done.status, done.attempt, done.error) == (S.COMPLETED, 2, None)
    assert status(st, body) is SessionStatus.COMPLETED


def test_a_processor_exception_is_retried_and_its_attempts_run_out(st: InProcessStack) -> None:
    (body,) = start(st, [["boom", "boom", "boom"]])

    process_message(st.services, body)
    st.drain("worker")

    unit = unit_of(st, body)
    assert (unit.status, unit.attempt) == (S.FAILED, 3)
    assert unit.error is not None
    assert unit.error.code == "processor_error"
    assert "KeyError" in unit.error.message
    assert status(st, body) is SessionStatus.FAILED


def test_a_permanent_error_fails_at_once(st: InProcessStack) -> None:
    (body,) = start(st, [["fail"]])

    process_message(st.services, body)

    unit = unit_of(st, body)
    assert (unit.status, unit.attempt, unit.retryable) == (S.FAILED, 1, False)
    assert (unit.error.code if unit.error else None) == "broken"


def test_a_job_type_whose_processor_does_not_exist_fails_the_unit(st: InProcessStack) -> None:
    (body,) = start(st, [["ok"]], job_type="orphan")

    process_message(st.services, body)

    unit = unit_of(st, body)
    assert unit.status is S.FAILED
    assert (unit.error.code if unit.error else None) == "no_processor"
    assert status(st, body) is SessionStatus.FAILED


def test_the_next_attempts_message_can_never_find_the_unit_still_running(
    st: InProcessStack,
) -> None:
    """Hole 2: the next attempt's message, consumed the instant it is sent (a short delay on a
    busy queue), must find the unit pending; sent before the requeue it found it running, was
    dropped, and the unit stayed pending with no message."""
    (body,) = start(st, [["retry", "ok"]])
    consumed: list[str] = []

    def consume_at_once(params: dict[str, Any], **_kwargs: Any) -> None:
        for entry in json.loads(params["body"])["Entries"]:
            if entry["MessageBody"] not in consumed:
                consumed.append(entry["MessageBody"])
                process_message(st.services, entry["MessageBody"])

    st.services.sqs.meta.events.register("before-call.sqs.SendMessageBatch", consume_at_once)
    process_message(st.services, body)

    assert [WorkMessage.model_validate_json(c).attempt for c in consumed] == [2]
    assert (unit_of(st, body).status, unit_of(st, body).attempt) == (S.COMPLETED, 2)
    assert status(st, body) is SessionStatus.COMPLETED


def test_a_next_attempt_whose_message_was_never_sent_is_sent_by_its_redelivery(
    st: InProcessStack,
) -> None:
    (body,) = start(st, [["retry", "ok"]])
    fail_calls(st.services.sqs, "before-call.sqs.SendMessageBatch")

    with pytest.raises(RuntimeError, match="injected"):
        process_message(st.services, body)
    assert unit_of(st, body).status is S.PENDING
    process_message(st.services, body)  # SQS redelivers the message whose handler raised
    st.drain("worker")

    assert (unit_of(st, body).status, unit_of(st, body).attempt) == (S.COMPLETED, 2)


def test_a_finisher_whose_completion_claim_is_lost_leaves_it_to_the_redelivery(
    st: InProcessStack,
) -> None:
    """Hole 1: the completion transaction cancelled by conflicts (or the finisher dying after
    its finish) made the redelivered message skip a terminal unit, and nothing ever claimed the
    completion: 100 % forever, no email."""
    (body,) = start(st, [["ok"]])
    claims = inject_conflicts(
        st.services.ddb,
        when=lambda request: any("ConditionCheck" in i for i in request["TransactItems"]),
        limit=CONFLICT_ATTEMPTS,
    )

    with pytest.raises(Exception, match="TransactionConflict"):
        process_message(st.services, body)
    assert claims.count == CONFLICT_ATTEMPTS
    assert unit_of(st, body).status is S.COMPLETED
    assert status(st, body) is SessionStatus.PROCESSING
    process_message(st.services, body)

    assert status(st, body) is SessionStatus.COMPLETED
    assert len(emails(st)) == 1


def test_a_stale_attempt_changes_nothing_and_cannot_overwrite_the_winners_result(
    st: InProcessStack, clock: FakeClock
) -> None:
    """Hole 5: results are keyed by attempt, so a stale attempt finishing late writes its own
    object, never the one the winning attempt recorded."""
    (body,) = start(st, [[]])
    ordinal = unit_of(st, body).ref.ordinal

    def overtaken(ctx: UnitContext) -> str:
        # This worker stalls past its lease; the message is redelivered and attempt 2 wins.
        clock.advance(600)
        process_message(st.services, body)
        return "late"

    SCRIPTS[(unit_of(st, body).sid, ordinal)] = [overtaken, "winner"]
    process_message(st.services, body)

    unit = unit_of(st, body)
    assert (unit.status, unit.attempt, unit.result) == (
        S.COMPLETED,
        2,
        {"answer": "winner", "bytes": 3},
    )
    key = unit.result_key or ""
    assert key.endswith(f"{ordinal}.2.json")
    s3, bucket = st.services.s3, st.services.settings.bucket
    saved = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    late_key = key.replace(".2.json", ".1.json")
    late = json.loads(s3.get_object(Bucket=bucket, Key=late_key)["Body"].read())
    assert (saved["metadata"]["answer"], late["metadata"]["answer"]) == ("winner", "late")
    view = st.services.store.load_session(unit.sid, consistent=True)
    assert view is not None
    assert (view.count(S.COMPLETED), view.remaining) == (1, 0)


def test_a_unit_is_not_started_with_too_little_time_left_and_its_message_goes_back(
    st: InProcessStack,
) -> None:
    (body,) = start(st, [["ok"]])

    process_message(st.services, body, lambda: 5_000)

    assert (unit_of(st, body).status, unit_of(st, body).attempt) == (S.PENDING, 0)
    assert st.drain("worker") == 1
    assert unit_of(st, body).status is S.COMPLETED


def test_a_lease_never_outlives_the_invocation_and_each_heartbeat_renews_it(
    st: InProcessStack, clock: FakeClock
) -> None:
    (body,) = start(st, [[]])
    leases: list[float] = []

    def beating(ctx: UnitContext) -> str:
        leases.append(unit_of(st, body).lease_until or 0)
        clock.advance(20)
        ctx.progress(0.5)
        leases.append(unit_of(st, body).lease_until or 0)
        return "ok"

    SCRIPTS[(unit_of(st, body).sid, unit_of(st, body).ref.ordinal)] = [beating]
    start_at = clock.now()
    process_message(st.services, body, lambda: 60_000)

    # Renewed by the heartbeat, but never past the invocation's end.
    assert leases == [start_at + 60 + LEASE_MARGIN_S, start_at + 60 + LEASE_MARGIN_S]


def test_a_heartbeat_renews_the_lease_when_the_invocation_allows(
    st: InProcessStack, clock: FakeClock
) -> None:
    (body,) = start(st, [[]])
    leases: list[float] = []

    def beating(ctx: UnitContext) -> str:
        leases.append(unit_of(st, body).lease_until or 0)
        clock.advance(20)
        ctx.progress(0.5)
        leases.append(unit_of(st, body).lease_until or 0)
        return "ok"

    SCRIPTS[(unit_of(st, body).sid, unit_of(st, body).ref.ordinal)] = [beating]
    process_message(st.services, body, lambda: 300_000)

    assert leases[1] - leases[0] == 20.0


def test_a_unit_past_its_job_types_limit_ends_timeout(st: InProcessStack, clock: FakeClock) -> None:
    (body,) = start(st, [[]])

    def slow(ctx: UnitContext) -> str:
        clock.advance(61)
        ctx.progress(0.9)
        return "never"

    SCRIPTS[(unit_of(st, body).sid, unit_of(st, body).ref.ordinal)] = [slow]
    process_message(st.services, body)

    unit = unit_of(st, body)
    assert (unit.status, unit.retryable) == (S.TIMEOUT, True)
    assert (unit.error.code if unit.error else None) == "unit_time_limit"
    assert status(st, body) is SessionStatus.FAILED


def test_a_unit_that_runs_into_the_invocations_end_is_given_back_for_another(
    st: InProcessStack, clock: FakeClock
) -> None:
    (body,) = start(st, [[]])

    def late(ctx: UnitContext) -> str:
        assert ctx.time_left() == 30.0
        clock.advance(31)
        ctx.progress(0.5)
        return "never"

    SCRIPTS[(unit_of(st, body).sid, unit_of(st, body).ref.ordinal)] = [late, "ok"]
    process_message(st.services, body, lambda: 30_000)
    requeued = unit_of(st, body)
    st.drain("worker")

    assert (requeued.error.code if requeued.error else None) == "worker_time_up"
    assert (unit_of(st, body).status, unit_of(st, body).attempt) == (S.COMPLETED, 2)


def test_a_checkpoint_is_handed_to_the_next_attempt(st: InProcessStack) -> None:
    (body,) = start(st, [[]])
    seen: list[Any] = []

    def first(ctx: UnitContext) -> str:
        seen.append(ctx.resume_state)
        ctx.checkpoint({"rows_done": 40})
        return "retry"

    def second(ctx: UnitContext) -> str:
        seen.append(ctx.resume_state)
        return "ok"

    SCRIPTS[(unit_of(st, body).sid, unit_of(st, body).ref.ordinal)] = [first, second]
    process_message(st.services, body)
    st.drain("worker")

    assert seen == [None, {"rows_done": 40}]
    assert unit_of(st, body).status is S.COMPLETED


def test_a_long_pdf_that_runs_out_of_time_resumes_after_the_pages_its_checkpoint_saved(
    st: InProcessStack, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Twelve pages of about 2,700 characters: eight of them are too large a checkpoint for the
    # unit item, so it goes to S3.
    pages = [
        f"Page {n}.\n" + "\n".join(f"Line {i} of page {n} reads on." for i in range(100))
        for n in range(1, 13)
    ]
    (body,) = start(st, [[]], job_type="documents")
    message = WorkMessage.model_validate_json(body)
    st.services.s3.put_object(
        Bucket=st.services.settings.bucket, Key=f"in/{message.sid}", Body=make_pdf(pages)
    )
    read: list[int] = []
    extract_text = PageObject.extract_text

    def six_seconds_a_page(page: PageObject, *args: Any, **kwargs: Any) -> str:
        read.append(1)
        clock.advance(6)
        return extract_text(page, *args, **kwargs)

    monkeypatch.setattr(PageObject, "extract_text", six_seconds_a_page)

    # 50 s: pages 1-8 are read (a checkpoint every 10 s: after pages 2, 4, 6 and 8), page 9
    # runs into the end of the invocation.
    process_message(st.services, body, lambda: 50_000)
    given_back = unit_of(st, body)
    st.drain("worker")
    done = unit_of(st, body)

    assert (given_back.status, given_back.error.code if given_back.error else None) == (
        S.PENDING,
        "worker_time_up",
    )
    assert given_back.checkpoint is None
    assert given_back.checkpoint_key == f"checkpoints/{message.sid}/00000-000000.1.json"
    assert (done.status, done.attempt, len(read)) == (S.COMPLETED, 2, 9 + 4)
    assert done.result is not None
    assert (done.result["pages"], done.result["pages_resumed"]) == (12, 8)
    assert done.result_key is not None
    saved = st.services.s3.get_object(Bucket=st.services.settings.bucket, Key=done.result_key)
    text = json.loads(saved["Body"].read())["text"]
    assert [page.split("\n", 1)[0] for page in text.split("\f")] == [
        f"Page {n}." for n in range(1, 13)
    ]


def test_a_redelivery_of_a_running_units_message_with_a_live_lease_changes_nothing(
    st: InProcessStack,
) -> None:
    (body,) = start(st, [["ok"]])
    ref = unit_of(st, body).ref
    now = st.services.clock.now()
    st.services.store.move(
        ref, S.PENDING, S.RUNNING, attempt=0, now=now, patch=UnitPatch(lease_until=now + 60)
    )

    process_message(st.services, body)

    assert (unit_of(st, body).status, unit_of(st, body).attempt) == (S.RUNNING, 1)
    assert st.drain("worker") == 0
