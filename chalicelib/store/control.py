"""A session's state (DESIGN §4): what the person asked for — active, paused, cancelling — on META.

Only the state changes here, conditionally; the units follow through `Transitions.move`, one
counted move each (parked, unparked, cancelled), made by the control logic and the workers.
"""

from __future__ import annotations

from collections.abc import Collection

from chalicelib.models import SessionState
from chalicelib.store.keys import DueList, due_pk, index_key, meta_key
from chalicelib.store.table import Table


class Control:
    _table: Table

    def set_state(
        self,
        sid: str,
        from_: Collection[SessionState],
        to: SessionState,
        *,
        now: float,
        reason: str | None = None,
    ) -> bool:
        """Move META's state from one of `from_` to `to`, if the session is not done; False when
        it was in another state (or done). A pause records its reason; any other move clears it."""
        allowed = {f":from{i}": state.value for i, state in enumerate(sorted(from_))}
        update = "SET #state = :to, #state_changed_at = :now ADD #version :one"
        values: dict[str, object] = {":to": to.value, ":now": now, ":one": 1, **allowed}
        if reason is not None:
            update = "SET #pause_reason = :reason, " + update.removeprefix("SET ")
            values[":reason"] = reason
        else:
            update += " REMOVE #pause_reason"
        condition = (
            "attribute_exists(PK) AND attribute_not_exists(#done_at)"
            f" AND #state IN ({', '.join(allowed)})"
        )
        return self._table.update(meta_key(sid), update, condition=condition, values=values)

    def reopen(self, sid: str, *, now: float, recheck: float) -> bool:
        """A done session gets new work (its failed units retried): not done, not notified,
        listed OPEN again, so it completes — and notifies — once more. False when it was not
        done (or not active: a cancelled or rejected session stays as it ended)."""
        return self._table.update(
            meta_key(sid),
            "SET #notified = :false, #event_claims = :none, #GSI2PK = :open, #GSI2SK = :due,"
            " #state_changed_at = :now"
            " REMOVE #done_at, #events_sent, #notified_at"
            " ADD #version :one, #completions :one",
            condition=(
                "attribute_exists(#done_at) AND #state = :active AND attribute_not_exists(#error)"
            ),
            values={
                ":false": False,
                ":none": {},
                ":open": due_pk(DueList.OPEN, meta_key(sid)),
                ":due": index_key(recheck, sid),
                ":one": 1,
                ":now": now,
                ":active": SessionState.ACTIVE.value,
            },
        )

    def auto_pause(self, sid: str, *, now: float, reason: str) -> bool:
        """Pause an active session by itself, once in its life: a person who resumes it has
        seen why and chosen to go on."""
        return self._table.update(
            meta_key(sid),
            "SET #state = :paused, #pause_reason = :reason, #state_changed_at = :now,"
            " #auto_paused_at = :now ADD #version :one",
            condition=(
                "attribute_exists(PK) AND attribute_not_exists(#done_at)"
                " AND #state = :active AND attribute_not_exists(#auto_paused_at)"
            ),
            values={
                ":paused": SessionState.PAUSED.value,
                ":active": SessionState.ACTIVE.value,
                ":reason": reason,
                ":now": now,
                ":one": 1,
            },
        )
