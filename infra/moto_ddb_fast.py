"""Make moto's DynamoDB safe under concurrent requests, and TransactWriteItems cost O(items).

Why (moto 5.2.5, moto/dynamodb/models/__init__.py, `transact_write_items`):

* As its rollback backup it deep-copies, whole, every table an operation names (once per
  operation), and when the transaction is cancelled it puts those copies in place of the live
  tables. About 0.1 ms per item in the table, per transaction: ~1 s with 10,000 items, where the
  worker makes a transaction per unit transition.
* The moto server handles requests on many threads without any locking. That deep copy walks
  dicts other requests are changing ("dictionary changed size during iteration": HTTP 500s,
  retried by botocore), and a cancelled transaction *replaces the table* with a copy taken before
  other requests' concurrent writes, silently losing them. Cancelled conditional transitions are
  routine here (redelivered or stale messages), so the counters would drift locally.

The fix: every DynamoDB request runs under one lock (moto is pure Python; the GIL serialised the
work anyway, so nothing is lost), and transact_write_items backs up only the items its operations
name (a deep copy each, or "absent"), runs moto's own code with whole-table deep copies turned
into no-ops, and on any failure puts those items back. Validation, conditions, cancellation
reasons and the error responses stay moto's.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from types import SimpleNamespace
from typing import Any

from moto.dynamodb import models as ddb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

from infra.patching import Patches

_requests = threading.RLock()
_original_call_action = DynamoHandler.call_action
_original_transact_write_items = DynamoDBBackend.transact_write_items

Backup = tuple[Table, DynamoType, DynamoType | None, Item | None]


def _call_action(self: DynamoHandler) -> Any:
    with _requests:
        return _original_call_action(self)


def _deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    # Within moto.dynamodb.models only transact_write_items deep-copies tables; we back up items.
    return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _backups(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[Backup]:
    saved: list[Backup] = []
    for entry in transact_items:
        # A malformed operation is left to moto's own code to reject.
        with contextlib.suppress(Exception):
            (_, operation), *_ = entry.items()
            table = backend.get_table(operation["TableName"])
            keys = operation["Item"] if "Item" in operation else operation["Key"]
            hash_key, range_key = backend.get_keys_value(table, keys)
            # Updates change the stored Item in place: keep a copy, not a reference.
            item = copy.deepcopy(table.get_item(hash_key, range_key))
            saved.append((table, hash_key, range_key, item))
    return saved


def _restore(
    table: Table, hash_key: DynamoType, range_key: DynamoType | None, item: Item | None
) -> None:
    if item is None:
        table.delete_item(hash_key, range_key)
    elif range_key is not None:
        table.items[hash_key][range_key] = item
    else:
        table.items[hash_key] = item  # type: ignore[assignment]  # as moto does: untyped union


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    saved = _backups(self, transact_items)
    try:
        _original_transact_write_items(self, transact_items)
    except Exception:
        for backup in saved:
            _restore(*backup)
        raise


_PATCHES = Patches(
    (DynamoHandler, "call_action", _call_action),
    (DynamoDBBackend, "transact_write_items", _transact_write_items),
    (ddb_models, "copy", SimpleNamespace(deepcopy=_deepcopy, copy=copy.copy)),
)


def install() -> None:
    _PATCHES.apply()


def requests_lock() -> contextlib.AbstractContextManager[Any]:
    """The lock every DynamoDB request runs under: held, the table does not change."""
    return _requests


def uninstall() -> None:
    _PATCHES.revert()


def status() -> dict[str, Any]:
    return {"installed": _PATCHES.applied}
