"""The counting rules of DESIGN §2 on moto in-process: every unit is counted exactly once."""

from __future__ import annotations

import threading

from chalicelib.models import UnitStatus
from chalicelib.store import COUNTER_SHARDS, ClaimOutcome, Finish, Store, counter, shard_of
from tests.factories import declared_item, meta_item, pending_units, session_with_units

LEASE = 300.0


def counts(store: Store, sid: str) -> dict[str, int]:
    meta = store.load_session(sid, consistent=True)
    assert meta is not None
    keys = ["total", "remaining", "files_pending", *(counter(s) for s in UnitStatus)]
    return {k: int(meta[k]) for k in keys if meta[k]}


def test_claiming_a_file_twice_counts_its_units_once(store: Store) -> None:
    store.put_session(meta_item("s1"), [declared_item("s1", 0)])
    units = pending_units(0, 3)

    assert store.claim_file("s1", 0, units, 1000.0)
    assert not store.claim_file("s1", 0, units, 1001.0)

    assert counts(store, "s1") == {"total": 3, "remaining": 3, "n_pending": 3}


def test_a_file_that_failed_at_fan_out_counts_as_failed_and_not_remaining(store: Store) -> None:
    store.put_session(meta_item("s1"), [declared_item("s1", 0)])
    bad = pending_units(0, 1)[0]
    failed = type(bad)(bad.file, bad.index, bad.name, UnitStatus.FAILED, {"error": {"code": "x"}})

    assert store.claim_file("s1", 0, [failed], 1000.0)

    assert counts(store, "s1") == {"total": 1, "n_failed": 1}


def test_a_duplicate_delivery_of_a_claimed_unit_changes_nothing(store: Store) -> None:
    session_with_units(store, "s1", 2)

    first = store.claim_unit("s1", 0, 0, 1, 1000.0, 1000.0 + LEASE)
    again = store.claim_unit("s1", 0, 0, 1, 1001.0, 1001.0 + LEASE)

    assert first.outcome is ClaimOutcome.CLAIMED
    assert again.outcome is ClaimOutcome.SKIP
    assert counts(store, "s1") == {"total": 2, "remaining": 2, "n_pending": 1, "n_running": 1}


def test_finishing_a_unit_twice_counts_it_once(store: Store) -> None:
    session_with_units(store, "s1", 2)
    store.claim_unit("s1", 0, 0, 1, 1000.0, 1000.0 + LEASE)

    first = store.finish_unit("s1", 0, 0, 1, UnitStatus.COMPLETED, 1001.0, {"progress": 100})
    again = store.finish_unit("s1", 0, 0, 1, UnitStatus.COMPLETED, 1002.0, {"progress": 100})

    assert first is not Finish.STALE
    assert again is Finish.STALE

    assert counts(store, "s1") == {
        "total": 2,
        "remaining": 1,
        "n_pending": 1,
        "n_completed": 1,
    }


def test_a_delivery_for_a_finished_unit_is_skipped(store: Store) -> None:
    session_with_units(store, "s1", 1)
    store.claim_unit("s1", 0, 0, 1, 1000.0, 1000.0 + LEASE)
    store.finish_unit("s1", 0, 0, 1, UnitStatus.COMPLETED, 1001.0, {})

    late = store.claim_unit("s1", 0, 0, 1, 5000.0, 5000.0 + LEASE)

    assert late.outcome is ClaimOutcome.SKIP
    assert counts(store, "s1") == {"total": 1, "n_completed": 1}


def test_an_expired_lease_is_taken_over_and_the_stale_attempt_cannot_finish(store: Store) -> None:
    session_with_units(store, "s1", 1)
    store.claim_unit("s1", 0, 0, 1, 1000.0, 1000.0 + LEASE)

    live = store.claim_unit("s1", 0, 0, 1, 1100.0, 1100.0 + LEASE)
    takeover = store.claim_unit("s1", 0, 0, 1, 1000.0 + LEASE + 1, 2000.0 + LEASE)

    assert live.outcome is ClaimOutcome.SKIP
    assert takeover.outcome is ClaimOutcome.TAKEN_OVER
    assert takeover.attempt == 2
    assert not store.record_progress("s1", 0, 0, 1, "parsing", 50.0)
    assert store.finish_unit("s1", 0, 0, 1, UnitStatus.COMPLETED, 1400.0, {}) is Finish.STALE
    assert store.finish_unit("s1", 0, 0, 2, UnitStatus.FAILED, 1401.0, {}) is not Finish.STALE
    assert counts(store, "s1") == {"total": 1, "n_failed": 1}


def test_a_requeued_unit_is_claimed_by_the_next_attempt_only(store: Store) -> None:
    session_with_units(store, "s1", 1)
    store.claim_unit("s1", 0, 0, 1, 1000.0, 1000.0 + LEASE)

    assert store.requeue_unit("s1", 0, 0, 1, 1001.0, {"error": {"code": "flaky"}})
    stale = store.claim_unit("s1", 0, 0, 1, 1002.0, 1002.0 + LEASE)
    retry = store.claim_unit("s1", 0, 0, 2, 1003.0, 1003.0 + LEASE)

    assert stale.outcome is ClaimOutcome.SKIP
    assert retry.outcome is ClaimOutcome.CLAIMED
    assert counts(store, "s1") == {"total": 1, "remaining": 1, "n_running": 1}
    unit = store.get_unit("s1", 0, 0)
    assert unit is not None
    assert unit["attempt"] == 2
    assert "error" not in unit


def test_completion_waits_for_files_that_have_not_arrived(store: Store) -> None:
    store.put_session(meta_item("s1", files=2), [declared_item("s1", 0), declared_item("s1", 1)])
    units = pending_units(0, 1)
    store.claim_file("s1", 0, units, 1000.0)
    store.put_units("s1", units, 1000.0, recovering=False)
    store.claim_unit("s1", 0, 0, 1, 1000.0, 1000.0 + LEASE)
    store.finish_unit("s1", 0, 0, 1, UnitStatus.COMPLETED, 1001.0, {})

    assert not store.claim_completion("s1", 1002.0)


def test_exactly_one_of_many_concurrent_finishers_claims_completion(store: Store) -> None:
    units = 24
    session_with_units(store, "s1", units)
    for index in range(units):
        store.claim_unit("s1", 0, index, 1, 1000.0, 1000.0 + LEASE)
    winners: list[int] = []
    start = threading.Barrier(units)

    def finish(index: int) -> None:
        start.wait()
        store.finish_unit("s1", 0, index, 1, UnitStatus.COMPLETED, 1001.0, {})
        if store.claim_completion("s1", 1002.0):
            winners.append(index)

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(units)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(winners) == 1
    assert counts(store, "s1") == {"total": units, "n_completed": units}
    assert not store.claim_completion("s1", 1003.0)


def test_recovering_fan_out_never_overwrites_a_unit_already_in_progress(store: Store) -> None:
    session_with_units(store, "s1", 2)
    store.claim_unit("s1", 0, 0, 1, 1000.0, 1000.0 + LEASE)

    store.put_units("s1", pending_units(0, 2), 1001.0, recovering=True)

    unit = store.get_unit("s1", 0, 0)
    assert unit is not None
    assert unit["status"] == "running"


def test_completion_is_refused_while_any_shard_has_units_left(store: Store) -> None:
    session_with_units(store, "s1", 40)
    for index in range(39):
        store.claim_unit("s1", 0, index, 1, 1000.0, 1000.0 + LEASE)
        store.finish_unit("s1", 0, index, 1, UnitStatus.COMPLETED, 1001.0, {})

    assert not store.claim_completion("s1", 1002.0)
    store.claim_unit("s1", 0, 39, 1, 1000.0, 1000.0 + LEASE)
    store.finish_unit("s1", 0, 39, 1, UnitStatus.FAILED, 1003.0, {})
    assert store.claim_completion("s1", 1004.0)


def test_the_last_unit_of_each_shard_and_only_it_is_reported_as_last(store: Store) -> None:
    units = 64
    session_with_units(store, "s1", units)
    last_seen: dict[int, int] = {}
    for index in range(units):
        store.claim_unit("s1", 0, index, 1, 1000.0, 1000.0 + LEASE)
    for index in range(units):
        if store.finish_unit("s1", 0, index, 1, UnitStatus.COMPLETED, 1001.0, {}) is (
            Finish.LAST_IN_SHARD
        ):
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
        store.claim_unit("s1", 0, index, 1, 1000.0 + index, 1300.0)
        store.finish_unit("s1", 0, index, 1, UnitStatus.COMPLETED, 1000.0 + index, {})

    session = store.load_session("s1")

    assert session is not None
    assert (session["n_completed"], session["n_pending"], session["remaining"]) == (10, 40, 40)
    assert (session["first_done_at"], session["last_done_at"]) == (1000.0, 1009.0)
