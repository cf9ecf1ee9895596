"""DynamoDB items and the counting transitions (DESIGN §2).

Every coarse status change of a unit is one TransactWriteItems: the unit item, conditioned on its
current status and attempt, plus the matching counter change on the session META item. A redelivered
or stale message fails the condition and changes nothing, so every unit is counted exactly once.
Counters are top-level attributes (``n_pending`` …) because DynamoDB's ADD works on top-level
attributes only.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.errors import InvalidInput
from chalicelib.models import TERMINAL_UNIT_STATUSES, UnitStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

Item = dict[str, Any]

_NAME = re.compile(r"#(\w+)")
_VALUE = re.compile(r":(\w+)")
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


# GSI2 is sparse: only items something must come back to carry its keys, sorted by when.
LEASE_INDEX = "LEASE"  # running units, by lease expiry
UPLOAD_INDEX = "UPLOADING"  # sessions, by the deadline for their uploads
NOTIFY_INDEX = "NOTIFY"  # finished sessions whose notification is not yet recorded as sent


def index_key(when: float, *parts: str) -> str:
    return "#".join([f"{when:017.3f}", *parts])


# A session's META item and its COUNTER_SHARDS counter items share a partition of their own
# (PK M#{sid}; SK META, C00 …), apart from the session's units (PK S#{sid}). Each unit always
# counts on the same shard, so no per-unit write touches META and no single item takes every
# transition (DynamoDB allows ~1,000 WCU/s per item). A status read is one Query of that small
# partition, whatever the number of units.
COUNTER_SHARDS = 16
META_SK = "META"


def meta_pk(sid: str) -> str:
    return f"M#{sid}"


def counter_sk(shard: int) -> str:
    return f"C{shard:02d}"


def shard_of(file: int, index: int) -> int:
    return zlib.crc32(unit_sk(file, index).encode()) % COUNTER_SHARDS


def session_pk(sid: str) -> str:
    return f"S#{sid}"


def unit_sk(file: int, index: int) -> str:
    # File ordinal first, then member/row index: a Query on the session returns input order.
    return f"F#{file:05d}#{index:06d}"


def declared_file_sk(file: int) -> str:
    return f"D#{file:05d}"


def ordinal_of(file: int, index: int) -> str:
    return f"{file:05d}-{index:06d}"


def counter(status: UnitStatus | str) -> str:
    return f"n_{UnitStatus(status).value}"


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; give callers ints and floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    return value


def _dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamo_value(v) for v in value]
    return value


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_dynamo_value(v)) for k, v in item.items()}


def deserialize(item: Mapping[str, Any]) -> Item:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def encode_cursor(key: Mapping[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(deserialize(key)).encode()).decode()


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise ValueError("cursor keys must be strings")
        return serialize(raw)
    except ValueError as exc:
        raise InvalidInput(
            "The cursor is not one this API gave out.", code="invalid_cursor"
        ) from exc


def names_in(*expressions: str) -> dict[str, str]:
    """ExpressionAttributeNames for every ``#name`` used: no reserved-word surprises (total, …)."""
    return {f"#{name}": name for e in expressions for name in _NAME.findall(e)}


def values_in(values: Mapping[str, Any], *expressions: str) -> Item:
    """The ExpressionAttributeValues the expressions use (DynamoDB refuses unused ones)."""
    used = {f":{name}" for e in expressions for name in _VALUE.findall(e)}
    return {k: v for k, v in values.items() if k in used}


def _failed_items(exc: ClientError) -> set[int]:
    """Positions of the transaction items whose condition failed."""
    reasons = exc.response.get("CancellationReasons", [])
    return {i for i, r in enumerate(reasons) if r.get("Code") == "ConditionalCheckFailed"}


def aggregate(items: Sequence[Item]) -> Item | None:
    """A session's META item with its counter shards summed in (as one flat item)."""
    meta = next((i for i in items if i["SK"] == META_SK), None)
    if meta is None:
        return None
    shards = [i for i in items if i["SK"] != META_SK]
    summed: Item = {**meta, "remaining": 0}
    summed.update({counter(s): 0 for s in UnitStatus})
    for shard in shards:
        for name in ("remaining", "version", *(counter(s) for s in UnitStatus)):
            summed[name] = summed.get(name, 0) + int(shard.get(name, 0))
    firsts = [float(s["first_done_at"]) for s in shards if s.get("first_done_at") is not None]
    lasts = [float(s["last_done_at"]) for s in shards if s.get("last_done_at") is not None]
    summed["first_done_at"] = min(firsts, default=None)
    summed["last_done_at"] = max(lasts, default=None)
    return summed


def _is_condition_failure(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons", [])
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
    return False


class ClaimOutcome(Enum):
    CLAIMED = "claimed"  # pending → running, counted
    TAKEN_OVER = "taken_over"  # running with an expired lease; a new attempt on the same count
    SKIP = "skip"  # terminal, someone else holds a live lease, or the message is stale


class Finish(Enum):
    STALE = "stale"  # this attempt no longer owns the unit: nothing changed
    COUNTED = "counted"
    LAST_IN_SHARD = "last_in_shard"  # counted, and its shard has nothing left: check completion


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    attempt: int
    unit: Item | None


@dataclass(frozen=True)
class NewUnit:
    file: int
    index: int
    name: str
    status: UnitStatus  # pending, or failed when the fan-out already knows the unit is bad
    attrs: Item  # source, size, content_type, error …


class Store:
    def __init__(self, ddb: DynamoDBClient, table: str) -> None:
        self._ddb = ddb
        self._table = table

    # ---- sessions -------------------------------------------------------------------------
    def put_session(self, meta: Item, declared: Sequence[Item]) -> None:
        """One declared-file item per manifest entry, then the META item (must not exist yet).

        META last: if a write fails half-way, no session exists that counts on files it has no
        record of (the declared items left behind expire by TTL).
        """
        self._batch_put(declared)
        self._ddb.put_item(
            TableName=self._table,
            Item=serialize(meta),
            ConditionExpression="attribute_not_exists(PK)",
        )

    def get_meta(self, sid: str, *, consistent: bool = False) -> Item | None:
        return self._get(meta_pk(sid), META_SK, consistent=consistent)

    def get_declared_file(self, sid: str, file: int) -> Item | None:
        return self._get(session_pk(sid), declared_file_sk(file), consistent=True)

    def get_unit(self, sid: str, file: int, index: int) -> Item | None:
        return self._get(session_pk(sid), unit_sk(file, index), consistent=True)

    def _get(self, pk: str, sk: str, *, consistent: bool) -> Item | None:
        response = self._ddb.get_item(
            TableName=self._table,
            Key=serialize({"PK": pk, "SK": sk}),
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        return deserialize(item) if item else None

    def list_sessions(
        self, owner: str, *, limit: int, cursor: str | None
    ) -> tuple[list[Item], str | None]:
        """The owner's sessions, newest first, each with its counters summed (a Query each)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "GSI1",
            "KeyConditionExpression": "GSI1PK = :owner",
            "ExpressionAttributeValues": serialize({":owner": f"U#{owner}"}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        start = decode_cursor(cursor)
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self._ddb.query(**kwargs)
        sessions = [self.load_session(str(deserialize(i)["sid"])) for i in response["Items"]]
        return [s for s in sessions if s], encode_cursor(response.get("LastEvaluatedKey"))

    def list_units(
        self, sid: str, *, limit: int, cursor: str | None, status: UnitStatus | None
    ) -> tuple[list[Item], str | None]:
        """Units in input order; a status filter may return fewer than limit with a cursor."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :f)",
            "ExpressionAttributeValues": serialize({":pk": session_pk(sid), ":f": "F#"}),
            "Limit": limit,
        }
        if status is not None:
            kwargs["FilterExpression"] = "#status = :status"
            kwargs["ExpressionAttributeNames"] = {"#status": "status"}
            kwargs["ExpressionAttributeValues"][":status"] = {"S": status.value}
        start = decode_cursor(cursor)
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self._ddb.query(**kwargs)
        items = [deserialize(i) for i in response.get("Items", [])]
        return items, encode_cursor(response.get("LastEvaluatedKey"))

    # ---- fan-out ----------------------------------------------------------------------------
    def claim_file(self, sid: str, file: int, units: Sequence[NewUnit], now: float) -> bool:
        """Count a file's units into the session, once. False when the file was claimed before."""
        shards: dict[int, dict[str, int]] = {}
        for unit in units:
            adds = shards.setdefault(shard_of(unit.file, unit.index), {"version": 1})
            adds[counter(unit.status)] = adds.get(counter(unit.status), 0) + 1
            if unit.status not in TERMINAL_UNIT_STATUSES:
                adds["remaining"] = adds.get("remaining", 0) + 1
        meta_update = "ADD #total :total, #files_pending :minus, #version :one"
        items: list[Any] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": serialize({"PK": session_pk(sid), "SK": declared_file_sk(file)}),
                    "UpdateExpression": "SET #fanned_out_at = :now, #units = :total",
                    "ConditionExpression": "attribute_not_exists(#fanned_out_at)",
                    "ExpressionAttributeNames": names_in("#fanned_out_at #units"),
                    "ExpressionAttributeValues": serialize({":now": now, ":total": len(units)}),
                }
            },
            {
                "Update": {
                    "TableName": self._table,
                    "Key": serialize({"PK": meta_pk(sid), "SK": META_SK}),
                    "UpdateExpression": meta_update,
                    "ConditionExpression": "attribute_exists(PK)",
                    "ExpressionAttributeNames": names_in(meta_update),
                    "ExpressionAttributeValues": serialize(
                        {":total": len(units), ":minus": -1, ":one": 1}
                    ),
                }
            },
            *(self._shard_update(sid, shard, adds) for shard, adds in sorted(shards.items())),
        ]
        try:
            self._ddb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def _shard_update(
        self,
        sid: str,
        shard: int,
        adds: Mapping[str, int],
        *,
        sets: str = "",
        condition: str = "",
        values: Mapping[str, Any] | None = None,
    ) -> TransactWriteItemTypeDef:
        """One transaction item adding to a counter shard (the first ADD creates it)."""
        update = "ADD " + ", ".join(f"#{name} :a_{name}" for name in adds)
        if sets:
            update = f"SET {sets} {update}"
        placeholders: Item = {**(values or {}), **{f":a_{k}": n for k, n in adds.items()}}
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": serialize({"PK": meta_pk(sid), "SK": counter_sk(shard)}),
            "UpdateExpression": update,
            "ExpressionAttributeNames": names_in(update, condition),
            "ExpressionAttributeValues": serialize(values_in(placeholders, update, condition)),
        }
        if condition:
            request["ConditionExpression"] = condition
        return cast("TransactWriteItemTypeDef", {"Update": request})

    def put_units(
        self, sid: str, units: Sequence[NewUnit], now: float, *, recovering: bool
    ) -> None:
        """Write unit items. After a crash between claim and write (recovering), never overwrite."""
        items = [self._unit_item(sid, u, now) for u in units]
        if not recovering:
            self._batch_put(items)
            return
        for item in items:
            try:
                self._ddb.put_item(
                    TableName=self._table,
                    Item=serialize(item),
                    ConditionExpression="attribute_not_exists(PK)",
                )
            except ClientError as exc:
                if not _is_condition_failure(exc):
                    raise

    @staticmethod
    def _unit_item(sid: str, unit: NewUnit, now: float) -> Item:
        item: Item = {
            "PK": session_pk(sid),
            "SK": unit_sk(unit.file, unit.index),
            "file": unit.file,
            "index": unit.index,
            "name": unit.name,
            "status": unit.status.value,
            "attempt": 0,
            "progress": 0,
            "created_at": now,
            **unit.attrs,
        }
        if unit.status in TERMINAL_UNIT_STATUSES:
            item["finished_at"] = now
        return item

    def mark_file_sent(self, sid: str, file: int) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key=serialize({"PK": session_pk(sid), "SK": declared_file_sk(file)}),
            UpdateExpression="SET #units_sent = :true",
            ExpressionAttributeNames=names_in("#units_sent"),
            ExpressionAttributeValues=serialize({":true": True}),
        )

    def _batch_put(self, items: Sequence[Item]) -> None:
        for chunk in _chunks(items, 25):
            requests: Any = [{"PutRequest": {"Item": serialize(i)}} for i in chunk]
            pending: dict[str, Any] = {self._table: requests}
            for _ in range(8):
                response = self._ddb.batch_write_item(RequestItems=pending)
                pending = dict(response.get("UnprocessedItems") or {})
                if not pending:
                    break
            if pending:
                raise RuntimeError("DynamoDB left items unprocessed after 8 batch writes")

    # ---- unit transitions -------------------------------------------------------------------
    def claim_unit(
        self, sid: str, file: int, index: int, attempt: int, now: float, lease_until: float
    ) -> Claim:
        """pending → running for this message's attempt; or take over an expired lease."""
        key = {"PK": session_pk(sid), "SK": unit_sk(file, index)}
        try:
            self._transact_unit(
                sid,
                file,
                index,
                unit_update=(
                    "SET #status = :running, #attempt = :attempt, #stage = :stage,"
                    " #progress = :zero, #started_at = :now, #lease_until = :lease,"
                    " #GSI2PK = :lease_pk, #GSI2SK = :lease_sk REMOVE #error"
                ),
                unit_condition="#status = :pending AND #attempt = :previous",
                values={
                    ":running": "running",
                    ":pending": "pending",
                    ":attempt": attempt,
                    ":previous": attempt - 1,
                    ":stage": "downloading",
                    ":zero": 0,
                    ":now": now,
                    ":lease": lease_until,
                    ":lease_pk": LEASE_INDEX,
                    ":lease_sk": index_key(lease_until, sid, unit_sk(file, index)),
                },
                adds={counter("pending"): -1, counter("running"): 1},
            )
            return Claim(ClaimOutcome.CLAIMED, attempt, None)
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
        unit = self.get_unit(sid, file, index)
        if unit is None or unit["status"] != "running" or unit.get("lease_until", 0) > now:
            return Claim(ClaimOutcome.SKIP, attempt, unit)
        # The worker holding this unit died (its lease ran out): this delivery takes over and it
        # counts as a new attempt, so the dead worker's late writes fail their attempt condition.
        current = int(unit["attempt"])
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=serialize(key),
                UpdateExpression=(
                    "SET #attempt = :next, #stage = :stage, #progress = :zero, #started_at = :now,"
                    " #lease_until = :lease, #GSI2SK = :lease_sk"
                ),
                ConditionExpression="#status = :running AND #attempt = :current",
                ExpressionAttributeNames=names_in(
                    "#status #attempt #stage #progress #started_at #lease_until #GSI2SK"
                ),
                ExpressionAttributeValues=serialize(
                    {
                        ":next": current + 1,
                        ":current": current,
                        ":running": "running",
                        ":stage": "downloading",
                        ":zero": 0,
                        ":now": now,
                        ":lease": lease_until,
                        ":lease_sk": index_key(lease_until, sid, unit_sk(file, index)),
                    }
                ),
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return Claim(ClaimOutcome.SKIP, attempt, unit)
            raise
        return Claim(ClaimOutcome.TAKEN_OVER, current + 1, unit)

    def record_progress(
        self, sid: str, file: int, index: int, attempt: int, stage: str, progress: float
    ) -> bool:
        """Stage/progress inside running: the unit item only. False if this attempt is stale."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=serialize({"PK": session_pk(sid), "SK": unit_sk(file, index)}),
                UpdateExpression="SET #stage = :stage, #progress = :progress",
                ConditionExpression="#status = :running AND #attempt = :attempt",
                ExpressionAttributeNames=names_in("#stage #progress #status #attempt"),
                ExpressionAttributeValues=serialize(
                    {
                        ":stage": stage,
                        ":progress": round(progress, 1),
                        ":running": "running",
                        ":attempt": attempt,
                    }
                ),
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def finish_unit(
        self,
        sid: str,
        file: int,
        index: int,
        attempt: int,
        outcome: UnitStatus,
        now: float,
        fields: Item,
    ) -> Finish:
        """running → completed/failed/timeout for this attempt, counted once."""
        sets = ", ".join(f"#{k} = :f_{k}" for k in fields)
        values: Item = {f":f_{k}": v for k, v in fields.items()}
        values.update({":outcome": outcome.value, ":running": "running", ":attempt": attempt})
        values.update({":now": now, ":one": 1})

        def transact(shard_condition: str) -> None:
            self._transact_unit(
                sid,
                file,
                index,
                unit_update=(
                    "SET #status = :outcome, #finished_at = :now"
                    + (f", {sets}" if sets else "")
                    + " REMOVE #lease_until, #GSI2PK, #GSI2SK"
                ),
                unit_condition="#status = :running AND #attempt = :attempt",
                values=values,
                adds={counter("running"): -1, counter(outcome): 1, "remaining": -1},
                shard_sets="#first_done_at = if_not_exists(#first_done_at, :now),"
                " #last_done_at = :now",
                shard_condition=shard_condition,
            )

        # Try as "not the last unit of its shard" first: only when that condition fails does this
        # finisher learn it may be finishing the session, and check completion.
        try:
            transact("#remaining > :one")
            return Finish.COUNTED
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            if 0 in _failed_items(exc):
                return Finish.STALE
        # Only the shard's condition failed (or the reasons were not given): the unconditional
        # transaction decides, its unit condition still guarding against a stale attempt.
        try:
            transact("")
        except ClientError as exc:
            if _is_condition_failure(exc):
                return Finish.STALE
            raise
        return Finish.LAST_IN_SHARD

    def requeue_unit(
        self, sid: str, file: int, index: int, attempt: int, now: float, fields: Item
    ) -> bool:
        """running → pending so the next attempt's message can claim it. False if stale."""
        sets = ", ".join(f"#{k} = :f_{k}" for k in fields)
        values: Item = {f":f_{k}": v for k, v in fields.items()}
        values.update({":pending": "pending", ":running": "running", ":attempt": attempt})
        values[":now"] = now
        try:
            self._transact_unit(
                sid,
                file,
                index,
                unit_update=(
                    "SET #status = :pending, #stage = :null_stage, #retried_at = :now"
                    + (f", {sets}" if sets else "")
                    + " REMOVE #lease_until, #GSI2PK, #GSI2SK"
                ),
                unit_condition="#status = :running AND #attempt = :attempt",
                values={**values, ":null_stage": None},
                adds={counter("running"): -1, counter("pending"): 1},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def _transact_unit(
        self,
        sid: str,
        file: int,
        index: int,
        *,
        unit_update: str,
        unit_condition: str,
        values: Item,
        adds: dict[str, int],
        shard_sets: str = "",
        shard_condition: str = "",
    ) -> None:
        """The unit's transition and its shard's counters, in one transaction."""
        self._ddb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": serialize({"PK": session_pk(sid), "SK": unit_sk(file, index)}),
                        "UpdateExpression": unit_update,
                        "ConditionExpression": unit_condition,
                        "ExpressionAttributeNames": names_in(unit_update, unit_condition),
                        "ExpressionAttributeValues": serialize(
                            values_in(values, unit_update, unit_condition)
                        ),
                    }
                },
                self._shard_update(
                    sid,
                    shard_of(file, index),
                    {**adds, "version": 1},
                    sets=shard_sets,
                    condition=shard_condition,
                    values=values,
                ),
            ]
        )

    # ---- completion -------------------------------------------------------------------------
    def load_session(self, sid: str, *, consistent: bool = False) -> Item | None:
        """META with its counter shards summed in: one Query, O(1) in the number of units."""
        response = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=serialize({":pk": meta_pk(sid)}),
            ConsistentRead=consistent,
        )
        return aggregate([deserialize(i) for i in response.get("Items", [])])

    def claim_completion(self, sid: str, now: float) -> bool:
        """Mark the session done if every file arrived and every unit is terminal.

        One transaction checks every counter shard and sets done_at on META: exactly one caller
        gets True; every other caller (and every call before the session is done) gets False.
        """
        meta_update = (
            "SET #done_at = :now, #notified = :false, #GSI2PK = :notify, #GSI2SK = :due"
            " ADD #version :one"
        )
        meta_condition = (
            "attribute_exists(PK) AND attribute_not_exists(#done_at)"
            " AND #files_pending = :zero AND #state <> :cancelled"
        )
        shard_condition = "attribute_not_exists(#remaining) OR #remaining = :zero"
        values: Item = {
            ":now": now,
            ":false": False,
            ":one": 1,
            ":zero": 0,
            ":cancelled": "cancelled",
            ":notify": NOTIFY_INDEX,
            ":due": index_key(now, sid),
        }
        checks: list[Any] = [
            {
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": serialize({"PK": meta_pk(sid), "SK": counter_sk(shard)}),
                    "ConditionExpression": shard_condition,
                    "ExpressionAttributeNames": names_in(shard_condition),
                    "ExpressionAttributeValues": serialize(values_in(values, shard_condition)),
                }
            }
            for shard in range(COUNTER_SHARDS)
        ]
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": serialize({"PK": meta_pk(sid), "SK": META_SK}),
                            "UpdateExpression": meta_update,
                            "ConditionExpression": meta_condition,
                            "ExpressionAttributeNames": names_in(meta_update, meta_condition),
                            "ExpressionAttributeValues": serialize(
                                values_in(values, meta_update, meta_condition)
                            ),
                        }
                    },
                    *checks,
                ]
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def mark_notified(self, sid: str, now: float) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key=serialize({"PK": meta_pk(sid), "SK": META_SK}),
            UpdateExpression="SET #notified = :true, #notified_at = :now REMOVE #GSI2PK, #GSI2SK",
            ExpressionAttributeNames=names_in("#notified #notified_at #GSI2PK #GSI2SK"),
            ExpressionAttributeValues=serialize({":true": True, ":now": now}),
        )

    def due(self, index: str, before: float, *, limit: int = 100) -> list[Item]:
        """Items on a GSI2 list whose time is before `before`, oldest first."""
        response = self._ddb.query(
            TableName=self._table,
            IndexName="GSI2",
            KeyConditionExpression="#GSI2PK = :index AND #GSI2SK < :before",
            ExpressionAttributeNames=names_in("#GSI2PK #GSI2SK"),
            ExpressionAttributeValues=serialize({":index": index, ":before": index_key(before)}),
            Limit=limit,
        )
        return [deserialize(i) for i in response.get("Items", [])]

    def leave_index(self, pk: str, sk: str, index: str) -> None:
        """Take an item off a GSI2 list, unless it has moved to another list meanwhile."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=serialize({"PK": pk, "SK": sk}),
                UpdateExpression="REMOVE #GSI2PK, #GSI2SK",
                ConditionExpression="#GSI2PK = :index",
                ExpressionAttributeNames=names_in("#GSI2PK #GSI2SK"),
                ExpressionAttributeValues=serialize({":index": index}),
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    def declared_files(self, sid: str) -> list[Item]:
        items: list[Item] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :d)",
            "ExpressionAttributeValues": serialize({":pk": session_pk(sid), ":d": "D#"}),
            "ConsistentRead": True,
        }
        while True:
            response = self._ddb.query(**kwargs)
            items += [deserialize(i) for i in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def put_item(self, item: Item) -> None:
        self._ddb.put_item(TableName=self._table, Item=serialize(item))


def _chunks(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
