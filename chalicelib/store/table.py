"""The table's few primitives: get, put, conditional update, transaction, paged query."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.store.codec import (
    Item,
    deserialize,
    is_condition_failure,
    is_conflict,
    names_in,
    serialize,
    values_in,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# A transaction cancelled only because another one held an item is tried again this many times
# in all (botocore retries throttling, not TransactionConflict); then the caller sees the error.
CONFLICT_ATTEMPTS = 6
_CONFLICT_BASE_S = 0.01
BATCH_WRITE_ROUNDS = 8


class Table:
    def __init__(
        self,
        ddb: DynamoDBClient,
        name: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ddb = ddb
        self.name = name
        self._sleep = sleep

    def get(self, key: Mapping[str, str], *, consistent: bool = True) -> Item | None:
        response = self.ddb.get_item(
            TableName=self.name, Key=serialize(key), ConsistentRead=consistent
        )
        item = response.get("Item")
        return deserialize(item) if item else None

    def put(self, item: Mapping[str, Any], *, only_new: bool = False) -> bool:
        """Write an item; with only_new, False (and nothing written) when it exists already."""
        kwargs: dict[str, Any] = {"TableName": self.name, "Item": serialize(item)}
        if only_new:
            kwargs["ConditionExpression"] = "attribute_not_exists(PK)"
        try:
            self.ddb.put_item(**kwargs)
        except ClientError as exc:
            if only_new and is_condition_failure(exc):
                return False
            raise
        return True

    def update(
        self,
        key: Mapping[str, str],
        update: str,
        *,
        condition: str = "",
        values: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
    ) -> bool:
        """One UpdateItem; False when its condition failed. `names` adds placeholders for
        attribute names that are not plain words (map keys such as "session.completed")."""
        request = self.update_request(key, update, condition, values or {})
        request["ExpressionAttributeNames"].update(names or {})
        try:
            self.ddb.update_item(**request)
        except ClientError as exc:
            if condition and is_condition_failure(exc):
                return False
            raise
        return True

    def update_request(
        self, key: Mapping[str, str], update: str, condition: str, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The parameters of an UpdateItem, also usable as a transaction's Update item."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": serialize(key),
            "UpdateExpression": update,
            "ExpressionAttributeNames": names_in(update, condition),
        }
        used = values_in(values, update, condition)
        if used:
            request["ExpressionAttributeValues"] = serialize(used)
        if condition:
            request["ConditionExpression"] = condition
        return request

    def check_request(
        self, key: Mapping[str, str], condition: str, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A transaction's ConditionCheck item."""
        request = self.update_request(key, "", condition, values)
        del request["UpdateExpression"]
        return request

    def transact(self, items: Sequence[TransactWriteItemTypeDef]) -> None:
        """TransactWriteItems, tried again while it is cancelled by conflicts alone.

        Raises ClientError for anything else (a failed condition included): callers decide.
        """
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                self.ddb.transact_write_items(TransactItems=list(items))
                return
            except ClientError as exc:
                if not is_conflict(exc) or attempt == CONFLICT_ATTEMPTS - 1:
                    raise
            # Full jitter: conflicting callers spread out instead of colliding again.
            self._sleep(random.uniform(0, _CONFLICT_BASE_S * 2**attempt))

    def query(self, **kwargs: Any) -> tuple[list[Item], dict[str, Any] | None]:
        """One page: its items and the key to continue from (None at the end)."""
        response = self.ddb.query(TableName=self.name, **kwargs)
        items = [deserialize(i) for i in response.get("Items", [])]
        return items, response.get("LastEvaluatedKey")

    def query_all(self, *, max_items: int | None = None, **kwargs: Any) -> Iterator[Item]:
        """Every item of a query, page after page (up to max_items)."""
        yielded = 0
        while True:
            items, last = self.query(**kwargs)
            for item in items:
                if max_items is not None and yielded >= max_items:
                    return
                yielded += 1
                yield item
            if last is None:
                return
            kwargs["ExclusiveStartKey"] = last

    def batch_put(self, items: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(items), 25):
            requests: Any = [
                {"PutRequest": {"Item": serialize(i)}} for i in items[start : start + 25]
            ]
            pending: dict[str, Any] = {self.name: requests}
            for _ in range(BATCH_WRITE_ROUNDS):
                response = self.ddb.batch_write_item(RequestItems=pending)
                pending = dict(response.get("UnprocessedItems") or {})
                if not pending:
                    break
            if pending:
                raise RuntimeError(
                    f"DynamoDB left items unprocessed after {BATCH_WRITE_ROUNDS} batch writes"
                )
