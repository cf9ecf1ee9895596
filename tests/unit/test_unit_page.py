"""A filtered page of units reads on until it is full, and its cursor neither skips nor repeats."""

from __future__ import annotations

import pytest

from chalicelib.models import UnitStatus
from chalicelib.store import StartKey, Store, queries
from tests.factories import declared, meta, pending_units

SID = "s1"


@pytest.fixture
def units(store: Store) -> Store:
    """25 units in input order; every fifth failed."""
    store.put_session(meta(SID), [declared(SID, 0, name="a.zip")], first_check=2000.0)
    planned = [
        u.model_copy(update={"status": UnitStatus.FAILED, "name": f"f{u.index:02d}"})
        if u.index % 5 == 4
        else u.model_copy(update={"name": f"f{u.index:02d}"})
        for u in pending_units(SID, 0, 25)
    ]
    store.put_units(planned, recovering=False)
    return store


def pages(store: Store, status: UnitStatus | None, limit: int) -> list[list[str]]:
    found: list[list[str]] = []
    cursor: StartKey | None = None
    while True:
        page, cursor = store.list_units(SID, limit=limit, start=cursor, status=status)
        found.append([u.name for u in page])
        if cursor is None or len(found) > 30:
            return found


@pytest.mark.parametrize("read_page", [1000, 3])
def test_a_filtered_page_reads_on_until_it_is_full(
    units: Store, monkeypatch: pytest.MonkeyPatch, read_page: int
) -> None:
    monkeypatch.setattr(queries, "FILTER_READ_PAGE", read_page)
    assert pages(units, UnitStatus.FAILED, 2) == [["f04", "f09"], ["f14", "f19"], ["f24"]]


def test_a_filtered_page_stops_reading_at_its_maximum_and_goes_on_from_there(
    units: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "FILTER_READ_PAGE", 3)
    monkeypatch.setattr(queries, "FILTER_READ_MAX", 6)  # two reads of 3 units per request
    found = pages(units, UnitStatus.FAILED, 2)
    assert [name for page in found for name in page] == ["f04", "f09", "f14", "f19", "f24"]
    assert found[0] == ["f04"]  # 6 units read, one match: answered early, with a cursor


def test_an_unfiltered_page_is_limit_units(units: Store) -> None:
    assert [len(p) for p in pages(units, None, 10)] == [10, 10, 5]
