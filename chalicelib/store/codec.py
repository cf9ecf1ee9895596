"""DynamoDB's wire format both ways, expression placeholders, and reading a cancelled write."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

Item = dict[str, Any]

_NAME = re.compile(r"#(\w+)")
_VALUE = re.compile(r":(\w+)")
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; give callers ints and floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return {_plain(v) for v in value}
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


def names_in(*expressions: str) -> dict[str, str]:
    """ExpressionAttributeNames for every ``#name`` used: no reserved-word surprises (total, …)."""
    return {f"#{name}": name for e in expressions for name in _NAME.findall(e)}


def values_in(values: Mapping[str, Any], *expressions: str) -> Item:
    """The ExpressionAttributeValues the expressions use (DynamoDB refuses unused ones)."""
    used = {f":{name}" for e in expressions for name in _VALUE.findall(e)}
    return {k: v for k, v in values.items() if k in used}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def cancellation_codes(exc: ClientError) -> list[str]:
    """Per transaction item: why it was cancelled ("None" for items that were fine)."""
    reasons = exc.response.get("CancellationReasons", [])
    return [str(r.get("Code", "None")) for r in reasons]


def is_condition_failure(exc: ClientError) -> bool:
    code = error_code(exc)
    if code == "ConditionalCheckFailedException":
        return True
    return code == "TransactionCanceledException" and (
        "ConditionalCheckFailed" in cancellation_codes(exc)
    )


def is_conflict(exc: ClientError) -> bool:
    """Another transaction held an item (botocore does not retry these): worth trying again."""
    code = error_code(exc)
    if code == "TransactionConflictException":
        return True
    codes = cancellation_codes(exc)
    return (
        code == "TransactionCanceledException"
        and "ConditionalCheckFailed" not in codes
        and "TransactionConflict" in codes
    )


def failed_items(exc: ClientError) -> set[int]:
    """Positions of the transaction items whose condition failed."""
    return {i for i, code in enumerate(cancellation_codes(exc)) if code == "ConditionalCheckFailed"}
