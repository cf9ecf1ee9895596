"""Writes that change no status and no counter: creating items, marks, due-list moves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chalicelib.models import Preferences, UnitStatus
from chalicelib.store.items import (
    DeclaredFile,
    EmailSubscription,
    NotificationItem,
    SessionMeta,
    UnitItem,
)
from chalicelib.store.keys import (
    PREFS_SK,
    DueList,
    UnitRef,
    declared_file_key,
    due_pk,
    index_key,
    meta_key,
    unit_sk,
    user_pk,
)
from chalicelib.store.table import Table


class Writes:
    _table: Table

    def put_session(
        self, meta: SessionMeta, declared: Sequence[DeclaredFile], *, first_check: float
    ) -> bool:
        """One declared-file item per manifest entry, then the META item unless it exists
        already: created by this call? (The declared items are written either way: a caller
        that may meet an existing session checks first.)

        META last: if a write fails half-way, no session exists that counts on files it has no
        record of (the declared items left behind expire by TTL).
        """
        self._table.batch_put([d.to_item() for d in declared])
        return self._table.put(meta.to_item(first_check=first_check), only_new=True)

    def add_child(self, sid: str, child: str) -> None:
        """Link a follow-up session to its parent, once."""
        self._table.update(
            meta_key(sid),
            "SET #children = list_append(if_not_exists(#children, :none), :child)",
            condition="attribute_exists(PK) AND NOT contains(#children, :id)",
            values={":none": [], ":child": [child], ":id": child},
        )

    def put_units(self, units: Sequence[UnitItem], *, recovering: bool) -> None:
        """Write a claimed file's unit items. Recovering from a crash between the claim and this
        write, never overwrite one: it may be running already."""
        if not recovering:
            self._table.batch_put([u.to_item() for u in units])
            return
        for unit in units:
            self._table.put(unit.to_item(), only_new=True)

    def mark_file_sent(self, sid: str, file: int) -> None:
        """Every unit of the file has its message: off the FANOUT list."""
        self._table.update(
            declared_file_key(sid, file),
            "SET #units_sent = :true REMOVE #GSI2PK, #GSI2SK",
            values={":true": True},
        )

    def put_notification(self, notification: NotificationItem) -> None:
        self._table.put(notification.to_item())

    def put_preferences(self, owner: str, preferences: Preferences) -> None:
        """Set a person's preferences, keeping the email subscription chute made for them."""
        self._table.update(
            {"PK": user_pk(owner), "SK": PREFS_SK},
            "SET #owner = :owner, #preferences = :preferences",
            values={":owner": owner, ":preferences": preferences.model_dump(mode="json")},
        )

    def set_email_subscription(
        self, owner: str, subscription: EmailSubscription | None, defaults: Preferences
    ) -> None:
        """Record (or, with None, forget) the email subscription chute made for a person. Only
        that attribute is written, so preferences saved meanwhile are kept (`defaults` until
        there are any)."""
        key = {"PK": user_pk(owner), "SK": PREFS_SK}
        if subscription is None:
            self._table.update(key, "REMOVE #subscription")
            return
        self._table.update(
            key,
            "SET #owner = :owner, #subscription = :subscription,"
            " #preferences = if_not_exists(#preferences, :defaults)",
            values={
                ":owner": owner,
                ":subscription": subscription.model_dump(mode="json"),
                ":defaults": defaults.model_dump(mode="json"),
            },
        )

    def reschedule(
        self, key: Mapping[str, str], due_list: DueList, when: float, *parts: str
    ) -> bool:
        """Move an item's time on a due list, unless it has left that list meanwhile. An item
        listed before the lists were sharded moves onto its shard."""
        return self._table.update(
            key,
            "SET #GSI2PK = :list, #GSI2SK = :when",
            condition="#GSI2PK IN (:list, :unsharded)",
            values={
                ":when": index_key(when, *parts),
                ":list": due_pk(due_list, key),
                ":unsharded": due_list.value,
            },
        )

    def list_dead_letter(self, ref: UnitRef, attempt: int, when: float) -> bool:
        """List a unit that failed as a dead letter for an operator's redrive, unless it has
        moved on since (a person retried it)."""
        return self._table.update(
            ref.key,
            "SET #GSI2PK = :dead, #GSI2SK = :when",
            condition="#status = :failed AND #attempt = :attempt",
            values={
                ":dead": due_pk(DueList.DEAD, ref.key),
                ":when": index_key(when, ref.sid, unit_sk(ref.file, ref.index)),
                ":failed": UnitStatus.FAILED.value,
                ":attempt": attempt,
            },
        )

    def leave_list(self, key: Mapping[str, str], due_list: DueList) -> bool:
        """Take an item off a due list, unless it has moved to another list meanwhile."""
        return self._table.update(
            key,
            "REMOVE #GSI2PK, #GSI2SK",
            condition="#GSI2PK IN (:list, :unsharded)",
            values={":list": due_pk(due_list, key), ":unsharded": due_list.value},
        )
