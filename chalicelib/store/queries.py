"""Reads: a session in one Query, its units in input order, the due lists page by page."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from typing import Any

from chalicelib.models import Preferences, UnitStatus
from chalicelib.store.codec import Item, names_in, serialize
from chalicelib.store.items import (
    DeclaredFile,
    NotificationItem,
    PreferencesItem,
    SessionMeta,
    SessionView,
    UnitItem,
)
from chalicelib.store.keys import (
    PREFS_SK,
    DueList,
    UnitRef,
    declared_file_key,
    due_pks,
    index_key,
    meta_key,
    meta_pk,
    session_pk,
    user_pk,
)
from chalicelib.store.table import Table

StartKey = dict[str, Any]  # a query's LastEvaluatedKey, to continue from; opaque to callers
# A filtered page of units reads this many units a Query, and at most FILTER_READ_MAX a page.
FILTER_READ_PAGE = 1000
FILTER_READ_MAX = 5000


class Queries:
    _table: Table

    def load_session(self, sid: str, *, consistent: bool = False) -> SessionView | None:
        """META with its counter shards summed in: one Query, O(1) in the number of units."""
        items, _ = self._table.query(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=serialize({":pk": meta_pk(sid)}),
            ConsistentRead=consistent,
        )
        return SessionView.of(items)

    def get_meta(self, sid: str) -> SessionMeta | None:
        item = self._table.get(meta_key(sid))
        return SessionMeta.model_validate(item) if item else None

    def get_declared_file(self, sid: str, file: int) -> DeclaredFile | None:
        item = self._table.get(declared_file_key(sid, file))
        return DeclaredFile.model_validate(item) if item else None

    def get_unit(self, ref: UnitRef) -> UnitItem | None:
        item = self._table.get(ref.key)
        return UnitItem.model_validate(item) if item else None

    def list_sessions(
        self, owner: str, *, limit: int, start: StartKey | None
    ) -> tuple[list[SessionView], StartKey | None]:
        """The owner's sessions, newest first, each with its counters summed (a Query each)."""
        kwargs: dict[str, Any] = {
            "IndexName": "GSI1",
            "KeyConditionExpression": "GSI1PK = :owner",
            "ExpressionAttributeValues": serialize({":owner": user_pk(owner)}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        items, last = self._table.query(**kwargs)
        views = [self.load_session(str(i["sid"])) for i in items]
        return [v for v in views if v is not None], last

    def list_units(
        self,
        sid: str,
        *,
        limit: int,
        start: StartKey | None,
        status: UnitStatus | None = None,
        consistent: bool = False,
    ) -> tuple[list[UnitItem], StartKey | None]:
        """Up to `limit` units (of `status`) in input order, and where the next page starts.

        DynamoDB's Limit counts the units read, not the ones a filter keeps: a filtered page reads
        on until it has `limit` matches (or has read FILTER_READ_MAX units, so one request stays
        short however sparse the matches), and its cursor is the last unit it returns, so no
        match is skipped or shown twice."""
        if status is None:
            return self._unit_query(sid, limit, start, None, consistent)
        found: list[UnitItem] = []
        cursor, read = start, 0
        while True:
            units, last = self._unit_query(sid, FILTER_READ_PAGE, cursor, status, consistent)
            read += FILTER_READ_PAGE
            room = limit - len(found)
            if len(units) >= room:
                found += units[:room]
                more = len(units) > room or last is not None
                tail = found[-1]
                return found, serialize(UnitRef(sid, tail.file, tail.index).key) if more else None
            found += units
            if last is None or read >= FILTER_READ_MAX:
                return found, last
            cursor = last

    def _unit_query(
        self,
        sid: str,
        limit: int,
        start: StartKey | None,
        status: UnitStatus | None,
        consistent: bool,
    ) -> tuple[list[UnitItem], StartKey | None]:
        """One Query: `limit` units read, those of `status` returned."""
        kwargs = _units_query(sid, status, consistent)
        kwargs["Limit"] = limit
        if start:
            kwargs["ExclusiveStartKey"] = start
        items, last = self._table.query(**kwargs)
        return [UnitItem.model_validate(i) for i in items], last

    def iter_units(
        self,
        sid: str,
        *,
        status: UnitStatus | None = None,
        consistent: bool = False,
        max_items: int | None = None,
    ) -> Iterator[UnitItem]:
        """Every unit (of `status`) in input order, page after page, up to max_items."""
        kwargs = _units_query(sid, status, consistent)
        for item in self._table.query_all(max_items=max_items, **kwargs):
            yield UnitItem.model_validate(item)

    def units_of_file(self, sid: str, file: int) -> Iterator[UnitItem]:
        for item in self._table.query_all(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :f)",
            ExpressionAttributeValues=serialize({":pk": session_pk(sid), ":f": f"F#{file:05d}#"}),
            ConsistentRead=True,
        ):
            yield UnitItem.model_validate(item)

    def declared_files(self, sid: str) -> list[DeclaredFile]:
        return [
            DeclaredFile.model_validate(i)
            for i in self._table.query_all(
                KeyConditionExpression="PK = :pk AND begins_with(SK, :d)",
                ExpressionAttributeValues=serialize({":pk": session_pk(sid), ":d": "D#"}),
                ConsistentRead=True,
            )
        ]

    def due(
        self, due_list: DueList, before: float | None = None, *, max_items: int = 1000
    ) -> Iterator[Item]:
        """Items on a due list whose time is before `before` (None: all of them), oldest
        first, up to max_items.

        Every shard of the list (and its unsharded key, keys.due_pks) is read page by page,
        each page only when the merge needs it, so a short read asks for one page per shard.
        """
        condition, values = "#GSI2PK = :list", dict[str, str]()
        if before is not None:
            condition += " AND #GSI2SK < :before"
            values[":before"] = index_key(before)
        shards = [
            self._table.query_all(
                IndexName="GSI2",
                KeyConditionExpression=condition,
                ExpressionAttributeNames=names_in(condition),
                ExpressionAttributeValues=serialize({**values, ":list": pk}),
            )
            for pk in due_pks(due_list)
        ]
        merged = heapq.merge(*shards, key=lambda item: str(item["GSI2SK"]))
        return itertools.islice(merged, max_items)

    def get_preferences(self, owner: str) -> Preferences:
        """A person's notification preferences; the defaults until they set any."""
        return self.get_preferences_item(owner).preferences

    def get_preferences_item(self, owner: str) -> PreferencesItem:
        """A person's preferences and email subscription; the defaults until they set any."""
        item = self._table.get({"PK": user_pk(owner), "SK": PREFS_SK}, consistent=False)
        if item is None:
            return PreferencesItem(owner=owner, preferences=Preferences())
        return PreferencesItem.model_validate(item)

    def list_notifications(
        self, owner: str, *, limit: int, start: StartKey | None
    ) -> tuple[list[NotificationItem], StartKey | None]:
        """A person's in-app notifications, newest first."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :n)",
            "ExpressionAttributeValues": serialize({":pk": user_pk(owner), ":n": "N#"}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        items, last = self._table.query(**kwargs)
        return [NotificationItem.model_validate(i) for i in items], last


def _units_query(sid: str, status: UnitStatus | None, consistent: bool) -> dict[str, Any]:
    """The Query of a session's units in input order, filtered to `status` when given."""
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :f)",
        "ExpressionAttributeValues": serialize({":pk": session_pk(sid), ":f": "F#"}),
        "ConsistentRead": consistent,
    }
    if status is not None:
        kwargs["FilterExpression"] = "#status = :status"
        kwargs["ExpressionAttributeNames"] = {"#status": "status"}
        kwargs["ExpressionAttributeValues"][":status"] = {"S": status.value}
    return kwargs
