"""Every change of a unit's status and of the session counters goes through here (DESIGN §2).

`Transitions.move()` is the one unit transition: given (from, to, attempt, patch) it derives the
counter deltas, the attempt number, the due-list membership and the conditions, and writes the unit
and its counter shard in one transaction. A redelivered or stale message fails the condition and
changes nothing, so every unit is counted exactly once. The session-level transitions — counting a
file's units in, claiming completion — live beside it and share its vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from chalicelib.models import TERMINAL_UNIT_STATUSES, SessionState, UnitError, UnitStatus
from chalicelib.store.codec import failed_items, is_condition_failure
from chalicelib.store.items import (
    AMOUNTS,
    PlanRecord,
    SessionView,
    UnitItem,
    UnitPatch,
    counter,
)
from chalicelib.store.keys import (
    COUNTER_SHARDS,
    DueList,
    UnitRef,
    declared_file_key,
    due_pk,
    index_key,
    meta_key,
    shard_key,
    unit_sk,
)
from chalicelib.store.table import Table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

S = UnitStatus


class Attempt(Enum):
    NEXT = "next"  # a new attempt starts
    SAME = "same"
    RESET = "reset"  # a retry asked for by the person: attempts start again from 1


# The moves a unit can make, and what each does to its attempt number.
MOVES: Mapping[tuple[UnitStatus, UnitStatus], Attempt] = {
    (S.PENDING, S.RUNNING): Attempt.NEXT,  # claimed by a delivery of its message
    (S.RUNNING, S.RUNNING): Attempt.SAME,  # heartbeat; NEXT when taking over an expired lease
    (S.RUNNING, S.PENDING): Attempt.SAME,  # given back for its next attempt
    (S.RUNNING, S.COMPLETED): Attempt.SAME,
    (S.RUNNING, S.FAILED): Attempt.SAME,
    (S.RUNNING, S.TIMEOUT): Attempt.SAME,
    (S.RUNNING, S.SKIPPED): Attempt.SAME,
    (S.PENDING, S.FAILED): Attempt.SAME,  # its messages were dead-lettered
    (S.PENDING, S.PAUSED): Attempt.SAME,  # parked while its session is paused (§4)
    (S.PAUSED, S.PENDING): Attempt.SAME,  # resumed
    (S.PENDING, S.CANCELLED): Attempt.SAME,
    (S.PAUSED, S.CANCELLED): Attempt.SAME,
    (S.FAILED, S.PENDING): Attempt.RESET,  # retried by the person
    (S.TIMEOUT, S.PENDING): Attempt.RESET,
}


class Outcome(Enum):
    STALE = "stale"  # the unit was not (or no longer) in that status at that attempt: no change
    MOVED = "moved"
    LAST_IN_SHARD = "last_in_shard"  # moved, and its shard has nothing left: check completion


def counter_deltas(from_: UnitStatus, to: UnitStatus) -> dict[str, int]:
    """What a move adds to its shard's counters; empty when the status stays."""
    if from_ == to:
        return {}
    deltas = {counter(from_): -1, counter(to): 1}
    ends, reopens = to in TERMINAL_UNIT_STATUSES, from_ in TERMINAL_UNIT_STATUSES
    if ends != reopens:
        deltas["remaining"] = -1 if ends else 1
    return deltas


def next_attempt(from_: UnitStatus, to: UnitStatus, attempt: int, *, take_over: bool) -> int:
    rule = MOVES[(from_, to)]
    if rule is Attempt.NEXT or (take_over and from_ == to):
        return attempt + 1
    return 0 if rule is Attempt.RESET else attempt


def _set_clause(sets: Mapping[str, Any], prefix: str) -> tuple[list[str], dict[str, Any]]:
    clauses = [f"#{name} = :{prefix}{name}" for name in sets]
    return clauses, {f":{prefix}{name}": value for name, value in sets.items()}


@dataclass(frozen=True)
class _UnitWrite:
    ref: UnitRef
    update: str
    condition: str
    values: dict[str, Any]
    deltas: Mapping[str, int]
    now: float


class Transitions:
    _table: Table

    def move(
        self,
        ref: UnitRef,
        from_: UnitStatus,
        to: UnitStatus,
        *,
        attempt: int,
        now: float,
        patch: UnitPatch | None = None,
        due: float | None = None,
        expired: bool = False,
        amounts: Mapping[str, int] | None = None,
    ) -> Outcome:
        """Move the unit from `from_` at `attempt` to `to`, counted once.

        - to running: the patch carries lease_until; the unit is listed by lease expiry.
        - to pending: `due` is when its message is overdue; until it is claimed the unit is listed
          for the sweeper, which sends the message again if it never arrives.
        - expired: only if the unit's lease has run out (its worker is gone); running → running
          is then a takeover by a new attempt.
        - amounts: what the unit spent (items.AMOUNTS: model tokens), added to its shard with
          the counts when it finishes.
        """
        if (from_, to) not in MOVES:
            raise ValueError(f"no move from {from_} to {to}")
        if expired and from_ != S.RUNNING:
            raise ValueError("only a running unit has a lease")
        patch = patch or UnitPatch()
        sets = patch.sets()
        removes = patch.removes()
        new = next_attempt(from_, to, attempt, take_over=expired)
        if new != attempt:
            sets["attempt"] = new
        if from_ != to:
            sets["status"] = to.value
        values: dict[str, Any] = {":from": from_.value, ":attempt": attempt, ":now": now}
        if to == S.RUNNING:
            lease = sets.get("lease_until")
            if from_ == S.PENDING and lease is None:
                raise ValueError("a claim needs a lease")
            if lease is not None:
                sets["GSI2PK"] = due_pk(DueList.LEASE, ref.key)
                sets["GSI2SK"] = index_key(lease, ref.sid, unit_sk(ref.file, ref.index))
            if from_ == S.PENDING:
                removes += ["error", "retry_delay_s"]
        elif to == S.PENDING:
            if due is None:
                raise ValueError("a unit going back to pending needs a due time")
            sets["GSI2PK"] = due_pk(DueList.RETRY, ref.key)
            sets["GSI2SK"] = index_key(due, ref.sid, unit_sk(ref.file, ref.index))
            removes += ["lease_until", "stage"]
        else:
            removes += ["lease_until", "GSI2PK", "GSI2SK"]
            if to in TERMINAL_UNIT_STATUSES:
                sets["finished_at"] = now
        clauses, set_values = _set_clause(sets, "s_")
        values.update(set_values)
        update = "SET " + ", ".join(clauses)
        remove = sorted(set(removes) - set(sets))
        if remove:
            update += " REMOVE " + ", ".join(f"#{name}" for name in remove)
        condition = "#status = :from AND #attempt = :attempt"
        if expired:
            condition += " AND #lease_until < :now"
        deltas = counter_deltas(from_, to)
        if amounts:
            if to not in TERMINAL_UNIT_STATUSES or not deltas:
                raise ValueError("amounts are counted when a unit finishes")
            unknown = set(amounts) - set(AMOUNTS)
            if unknown:
                raise ValueError(f"not an amount a shard sums: {sorted(unknown)}")
            deltas = {**deltas, **{k: n for k, n in amounts.items() if n}}
        if not deltas:
            moved = self._table.update(ref.key, update, condition=condition, values=values)
            return Outcome.MOVED if moved else Outcome.STALE
        write = _UnitWrite(ref, update, condition, values, deltas, now)
        if to not in TERMINAL_UNIT_STATUSES or from_ in TERMINAL_UNIT_STATUSES:
            return self._counted(write, "")
        # Try as "not the last unit of its shard" first: only when that condition fails does this
        # finisher learn it may be finishing the session, and check completion.
        try:
            return self._counted(write, "#remaining > :one")
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
        # Only the shard's condition failed (or the reasons were not given): the unconditional
        # transaction decides, its unit condition still guarding against a stale attempt.
        counted = self._counted(write, "")
        return Outcome.LAST_IN_SHARD if counted is Outcome.MOVED else counted

    def _counted(self, write: _UnitWrite, shard_condition: str) -> Outcome:
        """The unit's move and its shard's counters in one transaction."""
        ref = write.ref
        unit = self._table.update_request(ref.key, write.update, write.condition, write.values)
        shard = self._shard_update(
            ref.sid, ref.shard, write.deltas, write.now, condition=shard_condition
        )
        try:
            self._table.transact([{"Update": unit}, shard])  # type: ignore[typeddict-item]
        except ClientError as exc:
            if is_condition_failure(exc) and (not shard_condition or 0 in failed_items(exc)):
                return Outcome.STALE
            raise
        return Outcome.MOVED

    def _shard_update(
        self,
        sid: str,
        shard: int,
        deltas: Mapping[str, int],
        now: float,
        *,
        condition: str = "",
    ) -> TransactWriteItemTypeDef:
        """Add to a counter shard (the first ADD creates it); a finish stamps the done times."""
        adds = {**deltas, "version": 1}
        update = "ADD " + ", ".join(f"#{name} :a_{name}" for name in adds)
        values: dict[str, Any] = {f":a_{k}": n for k, n in adds.items()}
        values.update({":now": now, ":one": 1})
        if deltas.get("remaining", 0) < 0:
            update = (
                "SET #first_done_at = if_not_exists(#first_done_at, :now), #last_done_at = :now "
                + update
            )
        request = self._table.update_request(shard_key(sid, shard), update, condition, values)
        return cast("TransactWriteItemTypeDef", {"Update": request})

    # ---- a session's files and completion ----------------------------------------------------
    def claim_file(
        self,
        sid: str,
        file: int,
        units: Sequence[UnitItem],
        *,
        plan: PlanRecord,
        now: float,
        due: float,
        rejection: UnitError | None = None,
    ) -> bool:
        """Count a file's planned units into the session, once; False when claimed before.

        The file is listed as FANOUT until `mark_file_sent`: if its units are never all sent, the
        sweeper finishes the job after `due`. A `rejection` (the file refused as a whole, no
        units) is recorded on META in the same transaction: the session ends `rejected`.
        """
        shards: dict[int, dict[str, int]] = {}
        for unit in units:
            adds = shards.setdefault(unit.ref.shard, {})
            adds[counter(unit.status)] = adds.get(counter(unit.status), 0) + 1
            if not unit.terminal:
                adds["remaining"] = adds.get("remaining", 0) + 1
        declared_update = (
            "SET #fanned_out_at = :now, #units = :total, #plan = :plan,"
            " #GSI2PK = :list, #GSI2SK = :due"
        )
        values: dict[str, Any] = {
            ":now": now,
            ":total": len(units),
            ":plan": plan.model_dump(exclude_none=True),
            ":list": due_pk(DueList.FANOUT, declared_file_key(sid, file)),
            ":due": index_key(due, sid, str(file)),
            ":minus": -1,
            ":one": 1,
        }
        meta_update = "ADD #total :total, #files_pending :minus, #version :one"
        if rejection is not None:
            meta_update = "SET #error = :error " + meta_update
            values[":error"] = rejection.model_dump(mode="json")
        items: list[Any] = [
            {
                "Update": self._table.update_request(
                    declared_file_key(sid, file),
                    declared_update,
                    "attribute_exists(PK) AND attribute_not_exists(#fanned_out_at)",
                    values,
                )
            },
            {
                "Update": self._table.update_request(
                    meta_key(sid), meta_update, "attribute_exists(PK)", values
                )
            },
            *(self._shard_update(sid, s, adds, now) for s, adds in sorted(shards.items())),
        ]
        try:
            self._table.transact(items)
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def claim_completion(self, sid: str, now: float) -> bool:
        """Mark the session done if every file arrived and every unit is terminal (a paused
        session never is; a cancelling one is, once its running units have finished).

        One transaction checks every counter shard and sets done_at on META: exactly one caller
        gets True; every other caller (and every call before the session is done) gets False.
        The session moves from the OPEN list to the NOTIFY list.
        """
        meta_update = (
            "SET #done_at = :now, #notified = :false, #GSI2PK = :notify, #GSI2SK = :due"
            " ADD #version :one"
        )
        meta_condition = (
            "attribute_exists(PK) AND attribute_not_exists(#done_at)"
            " AND #files_pending = :zero AND #state IN (:active, :cancelling)"
        )
        shard_condition = "attribute_not_exists(#remaining) OR #remaining = :zero"
        values: dict[str, Any] = {
            ":now": now,
            ":false": False,
            ":one": 1,
            ":zero": 0,
            ":active": SessionState.ACTIVE.value,
            ":cancelling": SessionState.CANCELLING.value,
            ":notify": due_pk(DueList.NOTIFY, meta_key(sid)),
            ":due": index_key(now, sid),
        }
        checks: list[Any] = [
            {
                "ConditionCheck": self._table.check_request(
                    shard_key(sid, s), shard_condition, values
                )
            }
            for s in range(COUNTER_SHARDS)
        ]
        meta = self._table.update_request(meta_key(sid), meta_update, meta_condition, values)
        try:
            self._table.transact([{"Update": meta}, *checks])  # type: ignore[typeddict-item]
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True


def may_be_done(view: SessionView) -> bool:
    """The cheap read-side twin of claim_completion's conditions: worth trying the claim?"""
    return (
        view.meta.done_at is None
        and view.meta.files_pending == 0
        and view.remaining == 0
        and view.meta.state in (SessionState.ACTIVE, SessionState.CANCELLING)
    )
