"""A property-based test of the unit state machine and its counting (hypothesis, stateful).

Any interleaving of deliveries (fresh, duplicate or stale), finishes, requeues, parking, cancels
and retries — each one `Store.move`, as the worker, the controls and the sweeper make them —
keeps the session's counters equal to its units: every unit counted once, in the status it is in.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator

import boto3
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from moto import mock_aws

from chalicelib.models import TERMINAL_UNIT_STATUSES
from chalicelib.models import UnitStatus as S
from chalicelib.store import Outcome, Store
from chalicelib.store.items import UnitPatch
from chalicelib.store.keys import UnitRef
from chalicelib.store.transitions import MOVES, next_attempt
from infra import moto_ddb_fast
from infra.provision import provision
from infra.resources import LOCAL
from tests.factories import session_with_units

pytestmark = pytest.mark.faults

UNITS = 4
_sessions = itertools.count()
_store: list[Store] = []


@pytest.fixture(autouse=True)
def table() -> Iterator[None]:
    moto_ddb_fast.install()
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        provisioned = provision(session, None, LOCAL)
        _store.append(Store(session.client("dynamodb"), provisioned.table))
        yield
        _store.clear()


class UnitsAndCounters(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = _store[0]
        self.sid = f"prop{next(_sessions)}"
        self.now = 1000.0
        session_with_units(self.store, self.sid, UNITS, now=self.now)
        # What every unit should be: (status, attempt).
        self.model = dict.fromkeys(range(UNITS), (S.PENDING, 0))

    def move(self, index: int, from_: S, to: S, attempt: int) -> Outcome:
        self.now += 1
        patch = UnitPatch(lease_until=self.now + 90) if to == S.RUNNING else None
        due = self.now + 60 if to == S.PENDING else None
        outcome = self.store.move(
            UnitRef(self.sid, 0, index), from_, to, attempt=attempt, now=self.now,
            patch=patch, due=due,
        )  # fmt: skip
        status, current = self.model[index]
        if (status, current) == (from_, attempt):
            assert outcome is not Outcome.STALE
            self.model[index] = (to, next_attempt(from_, to, attempt, take_over=False))
        else:
            assert outcome is Outcome.STALE  # a stale or duplicate move changes nothing
        return outcome

    @rule(index=st.integers(0, UNITS - 1), lag=st.integers(-1, 1))
    def deliver(self, index: int, lag: int) -> None:
        """A message for the unit's next attempt; lag ≠ 0: an older or newer one."""
        self.move(index, S.PENDING, S.RUNNING, self.model[index][1] + lag)

    @rule(index=st.integers(0, UNITS - 1), to=st.sampled_from([S.COMPLETED, S.FAILED, S.TIMEOUT]))
    def finish(self, index: int, to: S) -> None:
        self.move(index, S.RUNNING, to, self.model[index][1])

    @rule(index=st.integers(0, UNITS - 1))
    def requeue(self, index: int) -> None:
        self.move(index, S.RUNNING, S.PENDING, self.model[index][1])

    @rule(index=st.integers(0, UNITS - 1), parked=st.booleans())
    def pause_or_resume(self, index: int, parked: bool) -> None:
        if parked:
            self.move(index, S.PENDING, S.PAUSED, self.model[index][1])
        else:
            self.move(index, S.PAUSED, S.PENDING, self.model[index][1])

    @rule(index=st.integers(0, UNITS - 1), from_=st.sampled_from([S.PENDING, S.PAUSED]))
    def cancel(self, index: int, from_: S) -> None:
        self.move(index, from_, S.CANCELLED, self.model[index][1])

    @rule(index=st.integers(0, UNITS - 1), from_=st.sampled_from([S.FAILED, S.TIMEOUT]))
    def retry(self, index: int, from_: S) -> None:
        self.move(index, from_, S.PENDING, self.model[index][1])

    @rule(
        index=st.integers(0, UNITS - 1),
        move=st.sampled_from(sorted(MOVES)),
        attempt=st.integers(0, 4),
    )
    def anything(self, index: int, move: tuple[S, S], attempt: int) -> None:
        """Any allowed move at any attempt: it happens only if the unit is where it says."""
        if move == (S.RUNNING, S.RUNNING):
            return  # a heartbeat or a lease takeover: covered by the worker's tests
        self.move(index, *move, attempt)

    @invariant()
    def counters_are_the_units(self) -> None:
        view = self.store.load_session(self.sid, consistent=True)
        assert view is not None
        tally = Counter(status for status, _ in self.model.values())
        assert {s: view.count(s) for s in S if view.count(s)} == dict(tally)
        assert sum(view.counts.values()) == view.meta.total == UNITS
        assert view.remaining == sum(n for s, n in tally.items() if s not in TERMINAL_UNIT_STATUSES)
        for index, (status, attempt) in self.model.items():
            stored = self.store.get_unit(UnitRef(self.sid, 0, index))
            assert stored is not None
            assert (stored.status, stored.attempt) == (status, attempt)


UnitsAndCounters.TestCase.settings = settings(
    max_examples=12, stateful_step_count=20, deadline=None
)


def test_any_interleaving_keeps_the_counters_equal_to_the_units() -> None:
    UnitsAndCounters.TestCase().runTest()
