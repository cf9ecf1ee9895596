"""The counting rules of DESIGN §2 on moto in-process: every unit is counted exactly once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from chalicelib.models import TERMINAL_UNIT_STATUSES, UnitError, UnitStatus
from chalicelib.store import Outcome, Store
from chalicelib.store.items import UnitPatch, counter
from chalicelib.store.keys import COUNTER_SHARDS, UnitRef, shard_of
from chalicelib.store.transitions import MOVES, counter_deltas
from tests.factories import (
    claim,
    declared,
    meta,
    pending_units,
    plan_record,
    session_with_units,
)
from tests.faults.inject import inject_conflicts

S = UnitStatus
LEASE = 300.0


def counts(store: Store, sid: str) -> dict[str, int]:
    view = store.load_session(sid, consistent=True)
    assert view is not None
    found = {"total": view.meta.total, "remaining": view.remaining}
    found["files_pending"] = view.meta.files_pending
    found |= {counter(s): view.count(s) for s in UnitStatus}
    return {k: v for k, v in found.items() if v}


def unit(index: int, sid: str = "s1") -> UnitRef:
    return UnitRef(sid, 0, index)


def claim_unit(store: Store, index: int, attempt: int = 1, now: float = 1000.0) -> Outcome:
    patch = UnitPatch(started_at=now, lease_until=now + LEASE, stage="downloading", progress=0)
    return store.move(unit(index), S.PENDING, S.RUNNING, attempt=attempt - 1, now=now, patch=patch)


def finish(store: Store, index: int, to: UnitStatus = S.COMPLETED, attempt: int = 1) -> Outcome:
    return store.move(unit(index), S.RUNNING, to, attempt=attempt, now=1001.0)


def test_claiming_a_file_twice_counts_its_units_once(store: Store) -> None:
    store.put_session(meta("s1"), [declared("s1", 0)], first_check=2000.0)
    units = pending_units("s1", 0, 3)

    assert claim(store, "s1", 0, units)
    assert not claim(store, "s1", 0, units, 1001.0)

    assert counts(store, "s1") == {"total": 3, "remaining": 3, "n_pending": 3}


def test_a_file_that_failed_at_fan_out_counts_as_failed_and_not_remaining(store: Store) -> None:
    store.put_session(meta("s1"), [declared("s1", 0)], first_check=2000.0)
    failed = pending_units("s1", 0, 1)[0].model_copy(update={"status": S.FAILED})

    assert claim(store, "s1", 0, [failed])

    assert counts(store, "s1") == {"total": 1, "n_failed": 1}


def test_a_duplicate_delivery_of_a_claimed_unit_changes_nothing(store: Store) -> None:
    session_with_units(store, "s1", 2)

    assert claim_unit(store, 0) is Outcome.MOVED
    assert claim_unit(store, 0, now=1001.0) is Outcome.STALE

    assert counts(store, "s1") == {"total": 2, "remaining": 2, "n_pending": 1, "n_running": 1}


def test_finishing_a_unit_twice_counts_it_once(store: Store) -> None:
    session_with_units(store, "s1", 2)
    claim_unit(store, 0)

    assert finish(store, 0) is not Outcome.STALE
    assert finish(store, 0) is Outcome.STALE

    assert counts(store, "s1") == {
        "total": 2,
        "remaining": 1,
        "n_pending": 1,
        "n_completed": 1,
    }


def test_an_expired_lease_is_taken_over_and_the_stale_attempt_cannot_finish(store: Store) -> None:
    session_with_units(store, "s1", 1)
    claim_unit(store, 0)
    later = UnitPatch(lease_until=2000.0 + LEASE)

    live = store.move(
        unit(0), S.RUNNING, S.RUNNING, attempt=1, now=1100.0, patch=later, expired=True
    )
    takeover = store.move(
        unit(0), S.RUNNING, S.RUNNING, attempt=1, now=1000.0 + LEASE + 1, patch=later, expired=True
    )

    assert live is Outcome.STALE
    assert takeover is Outcome.MOVED
    taken = store.get_unit(unit(0))
    assert taken is not None
    assert taken.attempt == 2
    heartbeat = UnitPatch(stage="parsing", progress=50.0)
    assert store.move(unit(0), S.RUNNING, S.RUNNING, attempt=1, now=1400.0, patch=heartbeat) is (
        Outcome.STALE
    )
    assert finish(store, 0, attempt=1) is Outcome.STALE
    assert finish(store, 0, S.FAILED, attempt=2) is not Outcome.STALE
    assert counts(store, "s1") == {"total": 1, "n_failed": 1}


def test_a_requeued_unit_is_claimed_by_the_next_attempt_only(store: Store) -> None:
    session_with_units(store, "s1", 1)
    claim_unit(store, 0)
    flaky = UnitPatch.model_validate({"error": {"code": "flaky", "message": "try again"}})

    requeued = store.move(
        unit(0), S.RUNNING, S.PENDING, attempt=1, now=1001.0, patch=flaky, due=1200.0
    )
    stale = claim_unit(store, 0, attempt=1, now=1002.0)
    retry = claim_unit(store, 0, attempt=2, now=1003.0)

    assert (requeued, stale, retry) == (Outcome.MOVED, Outcome.STALE, Outcome.MOVED)
    assert counts(store, "s1") == {"total": 1, "remaining": 1, "n_running": 1}
    again = store.get_unit(unit(0))
    assert again is not None
    assert (again.attempt, again.error) == (2, None)


def test_completion_waits_for_files_that_have_not_arrived(store: Store) -> None:
    store.put_session(meta("s1", files=2), [declared("s1", 0), declared("s1", 1)], first_check=2e3)
    units = pending_units("s1", 0, 1)
    claim(store, "s1", 0, units)
    store.put_units(units, recovering=False)
    claim_unit(store, 0)
    finish(store, 0)

    assert not store.claim_completion("s1", 1002.0)


def finish_all_concurrently(store: Store, units: int) -> list[int]:
    winners: list[int] = []
    start = threading.Barrier(units)

    def run(index: int) -> None:
        start.wait()
        # A finisher whose transaction is cancelled every time (injected conflicts) raises, and
        # SQS delivers its message again: the redelivery finishes (a no-op once counted) and
        # claims again.
        for _delivery in range(5):
            try:
                finish(store, index)
                if store.claim_completion("s1", 1002.0):
                    winners.append(index)
                return
            except ClientError:
                continue

    threads = [threading.Thread(target=run, args=(i,)) for i in range(units)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return winners


def test_exactly_one_of_many_concurrent_finishers_claims_completion(store: Store) -> None:
    units = 24
    session_with_units(store, "s1", units)
    for index in range(units):
        claim_unit(store, index)

    assert len(finish_all_concurrently(store, units)) == 1
    assert counts(store, "s1") == {"total": units, "n_completed": units}
    assert not store.claim_completion("s1", 1003.0)


def test_concurrent_finishers_still_count_once_and_complete_once_under_conflicts(
    store: Store,
) -> None:
    """AWS cancels a transaction that meets another on an item (TransactionConflict), and
    botocore does not retry it: the store must, or a finisher's count or claim is lost."""
    units = 24
    session_with_units(store, "s1", units)
    for index in range(units):
        claim_unit(store, index)
    injected = inject_conflicts(store._table.ddb, rate=0.4, seed=3)

    winners = finish_all_concurrently(store, units)

    assert injected.count >= 10
    assert len(winners) == 1
    assert counts(store, "s1") == {"total": units, "n_completed": units}


def test_a_transaction_cancelled_by_conflicts_every_time_reaches_the_caller(store: Store) -> None:
    session_with_units(store, "s1", 1)
    claim_unit(store, 0)
    inject_conflicts(store._table.ddb)

    with pytest.raises(Exception, match="TransactionConflict"):
        finish(store, 0)

    assert counts(store, "s1") == {"total": 1, "remaining": 1, "n_running": 1}


def test_completion_is_refused_while_any_shard_has_units_left(store: Store) -> None:
    session_with_units(store, "s1", 40)
    for index in range(39):
        claim_unit(store, index)
        finish(store, index)

    assert not store.claim_completion("s1", 1002.0)
    claim_unit(store, 39)
    finish(store, 39, S.FAILED)
    assert store.claim_completion("s1", 1004.0)


def test_the_last_unit_of_each_shard_and_only_it_is_reported_as_last(store: Store) -> None:
    units = 64
    session_with_units(store, "s1", units)
    last_seen: dict[int, int] = {}
    for index in range(units):
        claim_unit(store, index)
    for index in range(units):
        if finish(store, index) is Outcome.LAST_IN_SHARD:
            last_seen[shard_of(0, index)] = index

    used = {shard_of(0, i) for i in range(units)}
    assert set(last_seen) == used
    assert all(
        max(i for i in range(units) if shard_of(0, i) == shard) == last
        for shard, last in last_seen.items()
    )
    assert len(used) <= COUNTER_SHARDS


def test_a_status_read_sums_the_counter_shards(store: Store) -> None:
    session_with_units(store, "s1", 50)
    for index in range(10):
        claim_unit(store, index, now=1000.0 + index)
        store.move(unit(index), S.RUNNING, S.COMPLETED, attempt=1, now=1000.0 + index)

    view = store.load_session("s1")

    assert view is not None
    assert (view.count(S.COMPLETED), view.count(S.PENDING), view.remaining) == (10, 40, 40)
    assert (view.first_done_at, view.last_done_at) == (1000.0, 1009.0)


@pytest.mark.parametrize(("from_", "to"), sorted(MOVES))
def test_every_move_keeps_the_counts_adding_up_to_the_total(
    from_: UnitStatus, to: UnitStatus
) -> None:
    deltas = counter_deltas(from_, to)

    assert sum(v for k, v in deltas.items() if k.startswith("n_")) == 0
    ends, reopens = to in TERMINAL_UNIT_STATUSES, from_ in TERMINAL_UNIT_STATUSES
    assert deltas.get("remaining", 0) == (
        -1 if ends and not reopens else 1 if reopens and not ends else 0
    )


def test_a_unit_walks_every_kind_of_move_and_is_counted_once_at_each_step(store: Store) -> None:
    session_with_units(store, "s1", 1)
    ref, lease = unit(0), UnitPatch(lease_until=5000.0)
    path: list[tuple[UnitStatus, UnitStatus, int, dict[str, Any]]] = [
        (S.PENDING, S.PAUSED, 0, {}),
        (S.PAUSED, S.PENDING, 0, {"due": 1100.0}),
        (S.PENDING, S.RUNNING, 0, {"patch": lease}),
        (S.RUNNING, S.FAILED, 1, {}),
        (S.FAILED, S.PENDING, 1, {"due": 1100.0}),
        (S.PENDING, S.CANCELLED, 0, {}),
    ]
    seen = []
    for from_, to, attempt, extra in path:
        assert store.move(ref, from_, to, attempt=attempt, now=1000.0, **extra) is not Outcome.STALE
        seen.append(counts(store, "s1"))

    assert [c.get("remaining", 0) for c in seen] == [1, 1, 1, 0, 1, 0]
    assert [next(k for k in c if k.startswith("n_")) for c in seen] == [
        "n_paused", "n_pending", "n_running", "n_failed", "n_pending", "n_cancelled",
    ]  # fmt: skip
    assert all(sum(v for k, v in c.items() if k.startswith("n_")) == 1 for c in seen)


def test_a_move_that_is_not_in_the_table_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="no move from completed to running"):
        store.move(unit(0), S.COMPLETED, S.RUNNING, attempt=1, now=1000.0)


@pytest.mark.parametrize("field", ["status", "attempt"])
def test_a_patch_cannot_set_the_status_or_the_attempt(field: str) -> None:
    with pytest.raises(ValidationError):
        UnitPatch.model_validate({field: 2})


def test_a_finish_adds_what_the_unit_spent_to_its_shard_and_a_redelivery_adds_nothing(
    store: Store,
) -> None:
    session_with_units(store, "s1", 2)
    for index in (0, 1):
        assert claim_unit(store, index) is Outcome.MOVED
    spent = {"tokens_in": 12, "tokens_out": 30}

    store.move(unit(0), S.RUNNING, S.COMPLETED, attempt=1, now=1001.0, amounts=spent)
    again = store.move(unit(0), S.RUNNING, S.COMPLETED, attempt=1, now=1002.0, amounts=spent)
    store.move(unit(1), S.RUNNING, S.COMPLETED, attempt=1, now=1001.0, amounts={"tokens_in": 5})

    assert again is Outcome.STALE
    view = store.load_session("s1", consistent=True)
    assert view is not None
    assert dict(view.amounts) == {"tokens_in": 17, "tokens_out": 30}


@pytest.mark.parametrize(
    ("to", "amounts"),
    [(S.PENDING, {"tokens_in": 1}), (S.COMPLETED, {"dollars": 1})],
)
def test_amounts_are_only_known_ones_and_only_counted_when_a_unit_finishes(
    store: Store, to: UnitStatus, amounts: dict[str, int]
) -> None:
    session_with_units(store, "s1", 1)
    claim_unit(store, 0)
    with pytest.raises(ValueError, match="amount"):
        store.move(unit(0), S.RUNNING, to, attempt=1, now=1001.0, due=2000.0, amounts=amounts)


def test_a_rejected_file_counts_no_unit_records_why_and_the_session_can_complete(
    store: Store,
) -> None:
    store.put_session(meta("s1", files=1), [declared("s1", 0)], first_check=2000.0)
    why = UnitError(code="not_a_batch_file", message="This is a PNG image.")

    assert store.claim_file(
        "s1", 0, [], plan=plan_record([]), now=1000.0, due=1900.0, rejection=why
    )
    assert store.claim_completion("s1", 1001.0)

    view = store.load_session("s1", consistent=True)
    assert view is not None
    assert (view.meta.total, view.meta.files_pending, view.meta.error) == (0, 0, why)
