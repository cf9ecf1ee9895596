"""GSI2's due lists are sharded (keys.DUE_SHARDS partitions each): an item keeps its shard through
every rewrite, and `Store.due` reads every shard, page after page, oldest first, and the unsharded
key of items listed before sharding. On moto in-process."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.models import UnitStatus
from chalicelib.store import Outcome, Store
from chalicelib.store.codec import names_in, serialize
from chalicelib.store.items import UnitPatch
from chalicelib.store.keys import (
    DUE_SHARDS,
    DueList,
    UnitRef,
    declared_file_key,
    due_pk,
    due_pks,
    due_shard,
    meta_key,
)
from chalicelib.store.table import Table
from tests.factories import claim, declared, meta, session_with_units

S = UnitStatus
NOW = 1000.0


def listed_under(store: Store, key: dict[str, str]) -> tuple[str | None, str | None]:
    item = store._table.get(key)
    assert item is not None
    return item.get("GSI2PK"), item.get("GSI2SK")


def lease(store: Store, ref: UnitRef, until: float, *, attempt: int = 0) -> None:
    patch = UnitPatch(started_at=NOW, lease_until=until)
    moved = store.move(ref, S.PENDING, S.RUNNING, attempt=attempt, now=NOW, patch=patch)
    assert moved is Outcome.MOVED


def leased_session(store: Store, units: int) -> list[UnitRef]:
    """A session of `units` running units; unit i's lease runs out at NOW + 100 + i."""
    session_with_units(store, "s1", units)
    refs = [UnitRef("s1", 0, i) for i in range(units)]
    for i, ref in enumerate(refs):
        lease(store, ref, NOW + 100 + i)
    return refs


def list_unsharded(store: Store, key: dict[str, str], due_list: DueList, when: str) -> None:
    """What an item listed before the lists were sharded carries (a snapshot of the embedded
    stack taken by an older chute): the list's name alone as its partition key."""
    store._table.update(
        key, "SET #GSI2PK = :list, #GSI2SK = :when", values={":list": due_list.value, ":when": when}
    )


# ---- the key function ------------------------------------------------------------------------
def test_an_items_shard_is_fixed_by_its_table_key() -> None:
    unit = UnitRef("s1", 0, 0).key
    # Pinned: changing the hash would strand listed items (a reschedule or a leave_list names
    # the shard it expects).
    assert due_pk(DueList.LEASE, unit) == "LEASE#12"
    assert due_pk(DueList.RETRY, unit) == "RETRY#12"
    assert due_pk(DueList.OPEN, meta_key("s1")) == "OPEN#06"
    assert due_pk(DueList.FANOUT, declared_file_key("s1", 0)) == "FANOUT#10"
    assert due_pk(DueList.LEASE, dict(unit)) == due_pk(DueList.LEASE, unit)


def test_one_sessions_units_spread_over_every_shard() -> None:
    shards = [due_shard(UnitRef("s1", 0, i).key) for i in range(64)]

    assert set(shards) == set(range(DUE_SHARDS))
    # 64 units over 16 shards: 4 on average, 6 at most.
    assert max(shards.count(s) for s in range(DUE_SHARDS)) == 6


def test_a_reader_reads_every_shard_and_the_unsharded_key() -> None:
    assert due_pks(DueList.NOTIFY) == [f"NOTIFY#{s:02d}" for s in range(DUE_SHARDS)] + ["NOTIFY"]


# ---- writers: every rewrite of an item lands on its shard ------------------------------------
def test_a_unit_keeps_its_shard_through_claim_heartbeat_requeue_and_leaves_at_its_end(
    store: Store,
) -> None:
    session_with_units(store, "s1", 1)
    ref = UnitRef("s1", 0, 0)
    shard = f"{due_shard(ref.key):02d}"

    lease(store, ref, NOW + 60)
    claimed = listed_under(store, ref.key)
    beat = UnitPatch(lease_until=NOW + 120)
    store.move(ref, S.RUNNING, S.RUNNING, attempt=1, now=NOW + 30, patch=beat)
    heartbeat = listed_under(store, ref.key)
    store.move(ref, S.RUNNING, S.PENDING, attempt=1, now=NOW + 40, due=NOW + 400)
    requeued = listed_under(store, ref.key)
    lease(store, ref, NOW + 500, attempt=1)
    store.move(ref, S.RUNNING, S.COMPLETED, attempt=2, now=NOW + 450)

    assert claimed == (f"LEASE#{shard}", "0000000001060.000#s1#F#00000#000000")
    assert heartbeat == (f"LEASE#{shard}", "0000000001120.000#s1#F#00000#000000")
    assert requeued == (f"RETRY#{shard}", "0000000001400.000#s1#F#00000#000000")
    assert listed_under(store, ref.key) == (None, None)


def test_sessions_and_files_are_listed_on_their_shards(store: Store) -> None:
    store.put_session(meta("s1"), [declared("s1", 0)], first_check=NOW + 900)
    created = listed_under(store, meta_key("s1"))
    assert claim(store, "s1", 0, [])
    fanout = listed_under(store, declared_file_key("s1", 0))
    assert store.claim_completion("s1", NOW + 10)

    assert created == ("OPEN#06", "0000000001900.000#s1")
    assert fanout == ("FANOUT#10", "0000000001960.000#s1#0")
    assert listed_under(store, meta_key("s1")) == ("NOTIFY#06", "0000000001010.000#s1")
    assert store.reopen("s1", now=NOW + 20, recheck=NOW + 320)
    assert listed_under(store, meta_key("s1")) == ("OPEN#06", "0000000001320.000#s1")


def test_a_dead_lettered_unit_is_listed_on_its_shard_and_leaves_it(store: Store) -> None:
    session_with_units(store, "s1", 1)
    ref = UnitRef("s1", 0, 0)
    store.move(ref, S.PENDING, S.FAILED, attempt=0, now=NOW)

    assert store.list_dead_letter(ref, 0, NOW)
    assert listed_under(store, ref.key)[0] == due_pk(DueList.DEAD, ref.key) == "DEAD#12"
    assert not store.leave_list(ref.key, DueList.LEASE)
    assert store.leave_list(ref.key, DueList.DEAD)
    assert listed_under(store, ref.key) == (None, None)


# ---- readers ---------------------------------------------------------------------------------
def test_due_finds_items_on_every_shard_oldest_first(store: Store) -> None:
    refs = leased_session(store, 40)
    assert {due_shard(r.key) for r in refs} == set(range(DUE_SHARDS))

    everything = [str(i["SK"]) for i in store.due(DueList.LEASE)]
    before = [str(i["SK"]) for i in store.due(DueList.LEASE, NOW + 110)]
    oldest = [str(i["SK"]) for i in store.due(DueList.LEASE, max_items=3)]

    assert everything == [r.key["SK"] for r in refs]
    assert before == [r.key["SK"] for r in refs[:10]]
    assert oldest == [r.key["SK"] for r in refs[:3]]
    assert list(store.due(DueList.RETRY)) == []


def test_due_pages_through_each_shard_and_asks_for_a_page_only_when_it_needs_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = leased_session(store, 40)
    pages: list[str] = []
    query = Table.query

    def two_per_page(table: Table, **kwargs: Any) -> Any:
        pages.append(kwargs["ExpressionAttributeValues"][":list"]["S"])
        return query(table, **{**kwargs, "Limit": 2})

    monkeypatch.setattr(Table, "query", two_per_page)
    everything = [str(i["SK"]) for i in store.due(DueList.LEASE)]
    read_all = list(pages)
    pages.clear()
    first = [str(i["SK"]) for i in store.due(DueList.LEASE, max_items=1)]

    assert everything == [r.key["SK"] for r in refs]
    per_shard = dict.fromkeys(due_pks(DueList.LEASE), 0)
    for ref in refs:
        per_shard[due_pk(DueList.LEASE, ref.key)] += 1
    # n items take ceil(n / 2) pages of two, an empty shard one (moto gives no next key after
    # a full last page; DynamoDB would, and one more empty page follows).
    pages_of = {pk: max(1, -(-n // 2)) for pk, n in per_shard.items()}
    assert sorted(read_all) == sorted(pk for pk, n in pages_of.items() for _ in range(n))
    assert sum(pages_of.values()) == 8 * 1 + 8 * 2 + 1
    # The oldest item alone: the first page of each shard, nothing more.
    assert first == [refs[0].key["SK"]]
    assert sorted(pages) == sorted(due_pks(DueList.LEASE))


def test_an_item_listed_before_sharding_is_read_and_moves_onto_its_shard(store: Store) -> None:
    leased_session(store, 3)
    old = UnitRef("s1", 0, 1)
    list_unsharded(store, old.key, DueList.LEASE, "0000000000999.000#s1#F#00000#000001")

    found = [str(i["SK"]) for i in store.due(DueList.LEASE, NOW + 150)]
    moved = store.reschedule(old.key, DueList.LEASE, NOW + 700, "s1", old.key["SK"])

    assert found == ["F#00000#000001", "F#00000#000000", "F#00000#000002"]
    assert moved
    assert listed_under(store, old.key) == (
        due_pk(DueList.LEASE, old.key),
        "0000000001700.000#s1#F#00000#000001",
    )
    assert not store.reschedule(old.key, DueList.RETRY, NOW, "s1")


def test_an_item_listed_before_sharding_can_leave_its_list(store: Store) -> None:
    store.put_session(meta("s1"), [declared("s1", 0)], first_check=NOW)
    list_unsharded(store, meta_key("s1"), DueList.NOTIFY, "0000000001000.000#s1")

    assert [i["sid"] for i in store.due(DueList.NOTIFY)] == ["s1"]
    assert not store.leave_list(meta_key("s1"), DueList.OPEN)
    assert store.leave_list(meta_key("s1"), DueList.NOTIFY)
    assert list(store.due(DueList.NOTIFY)) == []


def test_new_items_are_listed_on_shards_not_under_the_bare_list_name(store: Store) -> None:
    leased_session(store, 5)

    unsharded = store._table.query(
        IndexName="GSI2",
        KeyConditionExpression="#GSI2PK = :list",
        ExpressionAttributeNames=names_in("#GSI2PK"),
        ExpressionAttributeValues=serialize({":list": DueList.LEASE.value}),
    )

    assert unsharded == ([], None)
    assert len(list(store.due(DueList.LEASE))) == 5
