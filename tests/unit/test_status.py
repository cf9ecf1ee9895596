"""Session status, progress and ETA come from the one-Query session view alone."""

from __future__ import annotations

import pytest

from chalicelib.models import SessionStatus, UnitStatus
from chalicelib.notify import completion_message
from chalicelib.sessions import eta_seconds, session_status, summarize
from chalicelib.store.items import SessionView
from tests.factories import meta as meta_of


def meta(**changes: object) -> SessionView:
    """A session as Store.load_session returns it: META with the counter shards summed."""
    counts = {s: int(changes.pop(f"n_{s.value}", 0)) for s in UnitStatus}  # type: ignore[call-overload]
    view = {k: changes.pop(k, None) for k in ("remaining", "first_done_at")}
    base = meta_of("s1", files=2, now=1000.0)
    return SessionView(
        meta=base.model_copy(update=changes),
        counts=counts,
        remaining=int(view["remaining"] or 0),  # type: ignore[call-overload]
        version=1,
        first_done_at=view["first_done_at"],  # type: ignore[arg-type]
        last_done_at=None,
        amounts={},
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, SessionStatus.UPLOADING),
        ({"files_pending": 1, "total": 5, "remaining": 5}, SessionStatus.PROCESSING),
        ({"state": "paused", "files_pending": 0}, SessionStatus.PAUSED),
        ({"state": "cancelled"}, SessionStatus.CANCELLED),
        ({"state": "cancelling"}, SessionStatus.CANCELLING),
        ({"state": "cancelling", "done_at": 9.0}, SessionStatus.CANCELLED),
        ({"state": "paused", "remaining": 2}, SessionStatus.PAUSED),
        ({"done_at": 9.0, "total": 3, "n_completed": 3}, SessionStatus.COMPLETED),
        (
            {"done_at": 9.0, "total": 3, "n_completed": 2, "n_failed": 1},
            SessionStatus.COMPLETED_WITH_ERRORS,
        ),
        ({"done_at": 9.0, "total": 3, "n_failed": 3}, SessionStatus.FAILED),
        ({"done_at": 9.0, "total": 3, "n_completed": 2, "n_skipped": 1}, SessionStatus.COMPLETED),
        (
            {"done_at": 9.0, "total": 3, "n_completed": 1, "n_skipped": 1, "n_failed": 1},
            SessionStatus.COMPLETED_WITH_ERRORS,
        ),
    ],
)
def test_status_is_derived_from_state_counters_and_done_at(
    changes: dict[str, object], expected: SessionStatus
) -> None:
    assert session_status(meta(**changes)) is expected


def test_progress_is_terminal_units_over_total() -> None:
    summary = summarize(
        meta(files_pending=0, total=200, remaining=50, n_completed=140, n_failed=10), 2000.0
    )

    assert summary.progress == 75.0
    assert summary.counts.completed == 140
    assert summary.files_received == 2


def test_progress_never_reaches_100_while_files_are_still_to_arrive() -> None:
    summary = summarize(meta(files_pending=1, total=10, remaining=0, n_completed=10), 2000.0)

    assert summary.progress == 99.0
    assert summary.status is SessionStatus.PROCESSING


def test_eta_is_unknown_until_two_units_have_finished() -> None:
    assert eta_seconds(meta(remaining=10), 2000.0) is None
    assert eta_seconds(meta(remaining=10, first_done_at=1500.0, n_completed=1), 2000.0) is None


def test_eta_is_remaining_units_over_throughput_since_the_first_finish() -> None:
    # 11 finished in the 100 s since the first: 10 more per 100 s, so 40 remaining take 400 s.
    item = meta(remaining=40, first_done_at=1900.0, n_completed=9, n_failed=2)

    assert eta_seconds(item, 2000.0) == 400.0


def test_a_done_session_has_zero_eta_and_is_not_timed_out() -> None:
    summary = summarize(
        meta(files_pending=0, total=1, n_completed=1, done_at=1500.0, first_done_at=1400.0),
        99_999.0,
    )

    assert summary.eta_seconds == 0.0
    assert not summary.timed_out


def test_uploads_that_never_arrive_make_the_session_timed_out_after_the_deadline() -> None:
    item = meta()

    assert not summarize(item, 1000.0 + 899).timed_out
    assert summarize(item, 1000.0 + 901).timed_out


def test_the_email_subject_is_what_sns_accepts_whatever_the_session_name() -> None:
    item = meta(name="Rapport été\nQ3 " + "x" * 200, done_at=2.0, total=1, n_completed=1)

    subject, message = completion_message(item, session_status(item))

    assert len(subject) < 100
    assert all(" " <= c <= "~" for c in subject)
    assert subject.startswith("chute: Rapport ?t?")
    assert "1 of 1 files completed." in message


def test_the_email_says_how_many_were_skipped_apart_from_failures() -> None:
    view = meta(done_at=2.0, total=4, n_completed=2, n_skipped=1, n_failed=1)

    _, message = completion_message(view, session_status(view))

    assert "2 of 4 files completed." in message
    assert "1 skipped: chute does not process files of their kind." in message
    assert "1 did not (failed: 1, timed out: 0, cancelled: 0)" in message


@pytest.mark.parametrize(
    ("changes", "timed_out", "can_resume"),
    [
        ({"n_completed": 3, "done_at": 9.0}, False, False),
        ({"n_completed": 2, "n_timeout": 1, "done_at": 9.0}, True, True),
        ({"n_completed": 2, "n_failed": 1, "done_at": 9.0}, False, True),
        ({"n_failed": 1, "n_pending": 2, "remaining": 2}, False, True),
        ({"state": "paused", "n_pending": 3, "remaining": 3}, False, True),
        ({"state": "cancelling", "n_failed": 1, "n_running": 1, "remaining": 1}, False, False),
    ],
)
def test_timed_out_and_can_resume_say_what_a_person_can_still_do(
    changes: dict[str, object], timed_out: bool, can_resume: bool
) -> None:
    summary = summarize(meta(files_pending=0, total=3, **changes), 1000.0)

    assert (summary.timed_out, summary.can_resume) == (timed_out, can_resume)
