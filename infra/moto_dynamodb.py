"""Make the embedded DynamoDB keep AWS's promises under concurrency, and stay fast with many items.

moto 5.2.5 (``DynamoDBBackend.transact_write_items``) differs from AWS in two ways that matter to
chute's counting (DESIGN §2), measured here and covered by tests/unit/test_moto_dynamodb.py:

1. It takes no lock. Two concurrent conditional writes can both pass their condition, so two
   workers could both "win" the completion claim. AWS makes each item write atomic.
2. Before a transaction it ``deepcopy``s every table it touches and, if any condition fails,
   puts the *whole copy* back. That costs O(table size) per transaction (the ≈50 transactions/s of
   DESIGN §8 at a few hundred items, far fewer at 10,000), and a cancelled transaction silently
   erases every write other threads made in between.

The fix lives here, in the local stack, not in chalicelib/: one lock around every DynamoDB request,
and a transaction that checks all conditions first and only then writes, keeping just the touched
items for a rollback if a write itself fails.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler

_LOCK = threading.RLock()
_OPS = frozenset({"ConditionCheck", "Put", "Delete", "Update"})
_installed = False


def install() -> None:
    """Patch moto in this process (idempotent)."""
    global _installed
    with _LOCK:
        if _installed:
            return
        original_call = DynamoHandler.call_action

        @functools.wraps(original_call)
        def call_action(self: DynamoHandler) -> Any:
            with _LOCK:
                return original_call(self)

        DynamoHandler.call_action = call_action  # type: ignore[method-assign]
        DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
        _installed = True


def installed() -> bool:
    return _installed


def _key_of(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    planned: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    errors: list[Any] = []
    # Pass 1: every condition against the current state, writing nothing.
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(entry.items()))
        if op_type not in _OPS:
            raise ValueError("Unsupported transaction operation")
        key = _key_of(self, op_type, op)
        identity = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        planned.append((op_type, op, key))
        current = self.get_item(op["TableName"], key)
        condition = op.get("ConditionExpression")
        passed = condition is None or get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        ).expr(current)
        if passed:
            errors.append((None, None, None))
            continue
        old = None
        if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
            old = current.to_json()["Attributes"]
        errors.append(("ConditionalCheckFailed", ConditionalCheckFailed().message, old))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    # Pass 2: apply, remembering only the touched items in case a write itself is invalid.
    backups = [
        (op["TableName"], key, copy.deepcopy(self.get_item(op["TableName"], key)))
        for _, op, key in planned
    ]
    try:
        for op_type, op, key in planned:
            _apply(self, op_type, op, key)
    except Exception:
        for table_name, key, item in backups:
            _restore(self, table_name, key, item)
        raise


def _apply(backend: DynamoDBBackend, op_type: str, op: dict[str, Any], key: dict[str, Any]) -> None:
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    if op_type == "Put":
        backend.put_item(
            op["TableName"],
            op["Item"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )
    elif op_type == "Delete":
        backend.delete_item(op["TableName"], key)
    elif op_type == "Update":
        backend.update_item(
            op["TableName"],
            key,
            update_expression=op["UpdateExpression"],
            expression_attribute_names=names or {},
            expression_attribute_values=values or {},
        )


def _restore(backend: DynamoDBBackend, table_name: str, key: dict[str, Any], item: Any) -> None:
    table = backend.get_table(table_name)
    hash_key, range_key = backend.get_keys_value(table, key)
    table.delete_item(hash_key, range_key)
    if item is not None:
        backend.put_item(table_name, item.to_json()["Attributes"])
