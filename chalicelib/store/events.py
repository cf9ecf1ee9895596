"""Notification events: each (session, event) claimed on META before it is published (§7)."""

from __future__ import annotations

from chalicelib.store.keys import meta_key
from chalicelib.store.table import Table


class Events:
    _table: Table

    def claim_event(self, sid: str, event: str, *, now: float, stale_before: float) -> bool:
        """Claim the right to publish `event`: True for one caller while the event is unsent.

        A claim older than `stale_before` whose event was never recorded as sent (its publisher
        crashed) may be claimed again; a younger one may still be publishing, and is left alone.
        """
        return self._table.update(
            meta_key(sid),
            "SET #event_claims.#event = :now",
            condition=(
                "attribute_exists(PK)"
                " AND (attribute_not_exists(#event_claims.#event)"
                " OR #event_claims.#event < :stale)"
                " AND NOT contains(#events_sent, :event)"
            ),
            values={":now": now, ":stale": stale_before, ":event": event},
            names={"#event": event},
        )

    def record_event_sent(self, sid: str, event: str, *, now: float, completion: bool) -> None:
        """The event went out; a completion event also takes the session off the NOTIFY list."""
        update = "SET #notified_at = :now ADD #events_sent :sent"
        if completion:
            update = "SET #notified = :true, #notified_at = :now ADD #events_sent :sent"
            update += " REMOVE #GSI2PK, #GSI2SK"
        self._table.update(
            meta_key(sid), update, values={":now": now, ":true": True, ":sent": {event}}
        )
