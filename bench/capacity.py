"""DynamoDB capacity units computed from item sizes, and the request counting the benches share.

moto answers every request with a constant ConsumedCapacity, so the units here are computed from
AWS's documented rules (DynamoDB developer guide, "Item sizes and formats" and "Read and write
operations"), applied to the items each request actually read or wrote:

- item size: attribute name UTF-8 bytes + value size; S: UTF-8 bytes; N: about 1 byte per two
  significant digits + 1; B: raw bytes; BOOL/NULL: 1; M/L: 3 bytes + 1 byte per element + the
  elements; SS/NS/BS: the sum of the elements.
- reads: GetItem/BatchGetItem round each item up to 4 KB; Query/Scan round the total of a page up
  to 4 KB, counting every item read, filtered out or not; ×0.5 when eventually consistent; ×2 for
  TransactGetItems. Reading nothing still costs the minimum (one 4 KB block).
- writes: 1 unit per KB of the larger of the item before and after (a delete: the item deleted; a
  failed condition: the existing item, at least 1); ×2 inside TransactWriteItems.

Reads are sized from the response (`Item`, `Items`, `Responses`). Where the response hides what
was read (a FilterExpression, a ProjectionExpression, Select=COUNT), an unhooked "peek" client
reads the same page again without them, so the size is exact; without a peek client the hidden part
is estimated (and counted in `approximations`). Writes are sized from item images the peek client
reads just before and just after each write (`wcu_estimated_from` says so): the request alone does
not tell an UpdateItem's item size. Those images also give the global secondary index writes
(`wcu_index`: an entry put, deleted, replaced or changed, at 1 unit per KB, never doubled).
The images are not atomic with the write: under concurrent writes to one item they may include a
neighbour's change, which moves a size by a few bytes, rarely a unit.

Run: .venv/bin/python -m bench.capacity [--files 300] [--size-mb 40] [--reads 20] [--quick]
A zip of --files documents goes through the in-process stack (HTTP API, presigned POST, fan-out,
workers); prints one JSON line with the read and write units per unit, split into fan-out and
workers, and the units of one `GET /sessions/{id}`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from botocore.hooks import BaseEventHooks
    from chalice.test import Client
    from mypy_boto3_dynamodb import DynamoDBClient

    from infra.inprocess import InProcessStack

KB = 1024
READ_BLOCK = 4 * KB
WRITE_BLOCK = KB
_LIST_OR_MAP_OVERHEAD = 3
_ELEMENT_OVERHEAD = 1
_NAME = re.compile(r"#\w+")
_VALUE = re.compile(r":\w+")
# Request parameters that hide what a Query/Scan read; the peek re-reads the page without them.
_HIDING = ("FilterExpression", "ProjectionExpression", "Select", "AttributesToGet")
_LEGACY_FILTERS = ("QueryFilter", "ScanFilter")
_WRITE_OPERATIONS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)


# ---- sizes and units -----------------------------------------------------------------------
def number_size(text: str) -> int:
    """About 1 byte per two significant digits, plus 1 (leading and trailing zeros trimmed)."""
    try:
        digits = len(Decimal(text).normalize().as_tuple().digits)
    except InvalidOperation:
        digits = len(text)
    return (digits + 1) // 2 + 1


def _binary_size(value: bytes | bytearray | str) -> int:
    # botocore hands blobs over as bytes; a str is what a caller passed and botocore would encode.
    return len(value.encode()) if isinstance(value, str) else len(value)


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one attribute value in DynamoDB JSON (``{"S": "x"}``), name excluded."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return number_size(str(data))
    if kind == "B":
        return _binary_size(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in data)
    if kind == "NS":
        return sum(number_size(str(n)) for n in data)
    if kind == "BS":
        return sum(_binary_size(b) for b in data)
    if kind == "L":
        return _LIST_OR_MAP_OVERHEAD + sum(_ELEMENT_OVERHEAD + value_size(v) for v in data)
    if kind == "M":
        return _LIST_OR_MAP_OVERHEAD + sum(
            _ELEMENT_OVERHEAD + len(name.encode()) + value_size(v) for name, v in data.items()
        )
    raise ValueError(f"not a DynamoDB attribute value type: {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """The size DynamoDB bills an item (in DynamoDB JSON) by: names plus values."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def _blocks(size: int, block: int) -> int:
    # Reading or writing nothing (a missing item, an empty page) still costs one block.
    return max(1, math.ceil(size / block))


def read_units(
    sizes: Iterable[int], *, consistent: bool, per_item: bool, transactional: bool = False
) -> float:
    """Read units for items of these sizes: per item (GetItem, BatchGetItem, TransactGetItems) or
    one rounding of their total (a Query or Scan page)."""
    sizes = list(sizes)
    blocks = (
        sum(_blocks(s, READ_BLOCK) for s in sizes) if per_item else _blocks(sum(sizes), READ_BLOCK)
    )
    if transactional:
        return 2.0 * blocks
    return float(blocks) if consistent else blocks / 2


def write_units(size: int, *, transactional: bool = False) -> int:
    """Write units for one item write of this size (the larger of before and after)."""
    return _blocks(size, WRITE_BLOCK) * (2 if transactional else 1)


# ---- the counter ---------------------------------------------------------------------------
@dataclass
class Usage:
    """Requests and capacity units of one operation (or of everything)."""

    requests: int = 0
    rcu: float = 0.0
    wcu: float = 0.0  # the table's items
    wcu_index: float = 0.0  # global secondary index entries

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.requests + other.requests,
            self.rcu + other.rcu,
            self.wcu + other.wcu,
            self.wcu_index + other.wcu_index,
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.requests - other.requests,
            self.rcu - other.rcu,
            self.wcu - other.wcu,
            self.wcu_index - other.wcu_index,
        )

    def as_dict(self, per: float = 1.0) -> dict[str, float]:
        return {
            "requests": round(self.requests / per, 3),
            "rcu": round(self.rcu / per, 3),
            "wcu": round(self.wcu / per, 3),
            "wcu_index": round(self.wcu_index / per, 3),
        }


@dataclass
class CapacitySnapshot:
    by_operation: dict[str, Usage] = field(default_factory=dict)
    approximations: Counter[str] = field(default_factory=Counter)

    def total(self) -> Usage:
        return sum(self.by_operation.values(), Usage())

    def __sub__(self, earlier: CapacitySnapshot) -> CapacitySnapshot:
        return CapacitySnapshot(
            {
                op: usage - earlier.by_operation.get(op, Usage())
                for op, usage in self.by_operation.items()
                if usage != earlier.by_operation.get(op)
            },
            self.approximations - earlier.approximations,
        )

    def as_dict(self, per: float = 1.0) -> dict[str, Any]:
        return {
            **self.total().as_dict(per),
            "by_operation": {op: u.as_dict(per) for op, u in sorted(self.by_operation.items())},
            "approximations": dict(sorted(self.approximations.items())),
        }


@dataclass(frozen=True)
class _Index:
    name: str
    keys: tuple[str, ...]
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    included: tuple[str, ...]


@dataclass(frozen=True)
class _Table:
    keys: tuple[str, ...]
    indexes: tuple[_Index, ...]


@dataclass
class _Target:
    """One item a write request touches, and what it looked like before."""

    table: str
    key: dict[str, Any]
    action: str  # Put, Update, Delete, ConditionCheck
    request_item: dict[str, Any] | None
    before: dict[str, Any] | None = None


class CapacityCounter:
    """Read and write units of every DynamoDB request made through the clients it is registered
    on. `peek` must be a client whose events are not hooked (another boto3 Session), pointing at
    the same DynamoDB; without it, hidden reads are estimated and writes sized from the request.
    """

    def __init__(self, peek: DynamoDBClient | None = None) -> None:
        self._peek = peek
        self._tables: dict[str, _Table] = {}
        self._lock = threading.Lock()
        self._usage: dict[str, Usage] = {}
        self._approximations: Counter[str] = Counter()

    @property
    def wcu_estimated_from(self) -> str:
        if self._peek is None:
            return "request items only (UpdateItem/DeleteItem/ConditionCheck counted as 1 KB)"
        return "final item sizes: each item's image read before and after the write"

    def register(self, events: BaseEventHooks) -> None:
        """Hook a boto3 Session's (before its clients exist) or a client's events."""
        # Not before-call: that one carries the serialized HTTP request, not the parameters.
        events.register("before-parameter-build.dynamodb", self._before_request)
        events.register("after-call.dynamodb", self._after_request)

    def snapshot(self) -> CapacitySnapshot:
        with self._lock:
            return CapacitySnapshot(
                {op: Usage(**vars(u)) for op, u in self._usage.items()},
                Counter(self._approximations),
            )

    # ---- hooks -------------------------------------------------------------------------------
    def _before_request(
        self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        # after-call does not carry the request: reads need ConsistentRead and the expressions.
        context["chute_capacity_params"] = params
        if model.name in _WRITE_OPERATIONS:
            targets = self._write_targets(model.name, params)
            if self._peek is not None:
                for target in targets:
                    target.before = self._image(target.table, target.key)
            context["chute_capacity_targets"] = targets

    def _after_request(
        self,
        model: Any,
        parsed: dict[str, Any],
        http_response: Any,
        context: dict[str, Any],
        **_: Any,
    ) -> None:
        operation: str = model.name
        params: dict[str, Any] = context.get("chute_capacity_params") or {}
        ok = int(http_response.status_code) < 300
        usage = Usage(requests=1)
        if operation in _WRITE_OPERATIONS:
            targets: list[_Target] = context.get("chute_capacity_targets", [])
            usage += self._write_usage(operation, parsed, targets, ok=ok)
        elif ok:
            usage.rcu = self._read_units(operation, params, parsed)
        with self._lock:
            self._usage[operation] = self._usage.get(operation, Usage()) + usage

    def _note(self, what: str, n: int = 1) -> None:
        with self._lock:
            self._approximations[what] += n

    # ---- reads -------------------------------------------------------------------------------
    def _read_units(self, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> float:
        consistent = bool(params.get("ConsistentRead", False))
        if operation == "GetItem":
            item = parsed.get("Item") or {}
            if item and "ProjectionExpression" in params:
                if self._peek is None:
                    self._note("projected_items_sized_as_returned")
                else:
                    item = self._image(params["TableName"], params["Key"]) or item
            return read_units([item_size(item)], consistent=consistent, per_item=True)
        if operation == "BatchGetItem":
            units = 0.0
            for table, items in (parsed.get("Responses") or {}).items():
                wanted = params.get("RequestItems", {}).get(table, {})
                if "ProjectionExpression" in wanted:
                    self._note("projected_items_sized_as_returned", len(items))
                units += read_units(
                    [item_size(i) for i in items],
                    consistent=bool(wanted.get("ConsistentRead", False)),
                    per_item=True,
                )
            return units
        if operation == "TransactGetItems":
            sizes = [item_size(r.get("Item") or {}) for r in parsed.get("Responses") or []]
            return read_units(sizes, consistent=True, per_item=True, transactional=True)
        if operation in ("Query", "Scan"):
            return read_units(
                self._page_sizes(operation, params, parsed), consistent=consistent, per_item=False
            )
        return 0.0

    def _page_sizes(
        self, operation: str, params: dict[str, Any], parsed: dict[str, Any]
    ) -> list[int]:
        """Sizes of every item this Query/Scan page read, including those filtered out."""
        items = parsed.get("Items") or []
        scanned = int(parsed.get("ScannedCount", len(items)))
        shaped = any(p in params for p in ("ProjectionExpression", "Select", "AttributesToGet"))
        if scanned == len(items) and not shaped:
            return [item_size(i) for i in items]
        if self._peek is not None and not any(p in params for p in _LEGACY_FILTERS):
            return [item_size(i) for i in self._peek_page(operation, params)]
        # No way to see what was read: the returned items' mean size stands in for the rest.
        self._note("query_pages_estimated_from_returned_items")
        sizes = [item_size(i) for i in items]
        mean = sum(sizes) / len(sizes) if sizes else 0.0
        return sizes + [round(mean)] * max(0, scanned - len(sizes))

    def _peek_page(self, operation: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        assert self._peek is not None
        request = {k: v for k, v in params.items() if k not in _HIDING}
        if "IndexName" in params:
            # What the index holds is what the read is billed by.
            request["Select"] = "ALL_PROJECTED_ATTRIBUTES"
        # DynamoDB rejects names and values no remaining expression uses.
        remaining = " ".join(
            str(request.get(e, "")) for e in ("KeyConditionExpression", "ConditionExpression")
        )
        if "ExpressionAttributeNames" in request:
            used = set(_NAME.findall(remaining))
            names = {k: v for k, v in request["ExpressionAttributeNames"].items() if k in used}
            request["ExpressionAttributeNames"] = names
        if "ExpressionAttributeValues" in request:
            used = set(_VALUE.findall(remaining))
            values = {k: v for k, v in request["ExpressionAttributeValues"].items() if k in used}
            request["ExpressionAttributeValues"] = values
        request = {k: v for k, v in request.items() if v != {}}
        self._note(f"{operation.lower()}_pages_sized_by_peek")
        call = self._peek.query if operation == "Query" else self._peek.scan
        return list(call(**request).get("Items", []))

    # ---- writes ------------------------------------------------------------------------------
    def _write_targets(self, operation: str, params: dict[str, Any]) -> list[_Target]:
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            action = operation.removesuffix("Item")
            return [self._target(params["TableName"], action, params)]
        if operation == "BatchWriteItem":
            targets = []
            for table, requests in params.get("RequestItems", {}).items():
                for request in requests:
                    if "PutRequest" in request:
                        targets.append(self._target(table, "Put", request["PutRequest"]))
                    else:
                        targets.append(self._target(table, "Delete", request["DeleteRequest"]))
            return targets
        targets = []
        for entry in params.get("TransactItems", []):
            ((action, spec),) = entry.items()
            targets.append(self._target(spec["TableName"], action, spec))
        return targets

    def _target(self, table: str, action: str, spec: dict[str, Any]) -> _Target:
        item = spec.get("Item")
        return _Target(table, spec["Key"] if item is None else self._key(table, item), action, item)

    def _key(self, table: str, item: Mapping[str, Any]) -> dict[str, Any]:
        # Without the peek client the key schema is unknown: the whole item stands for its key.
        keys = self._table(table).keys if self._peek is not None else tuple(item)
        return {k: item[k] for k in keys if k in item}

    def _unprocessed(self, parsed: Mapping[str, Any]) -> set[tuple[str, str]]:
        """(table, key) of the BatchWriteItem requests DynamoDB left undone: not billed."""
        left: set[tuple[str, str]] = set()
        for table, requests in (parsed.get("UnprocessedItems") or {}).items():
            for request in requests:
                put = request.get("PutRequest")
                key = self._key(table, put["Item"]) if put else request["DeleteRequest"]["Key"]
                left.add((table, _key_text(key)))
        return left

    def _write_usage(
        self, operation: str, parsed: dict[str, Any], targets: Sequence[_Target], *, ok: bool
    ) -> Usage:
        usage = Usage()
        transactional = operation == "TransactWriteItems"
        code = str(parsed.get("Error", {}).get("Code", ""))
        if not ok and code == "TransactionCanceledException":
            # AWS documents no charge for a cancelled transaction; kept out of the totals, with
            # an estimate (the prepare phase: one standard write per item) beside them.
            self._note("cancelled_transactions")
            estimate = sum(write_units(self._size(t.before)) for t in targets)
            self._note("wcu_cancelled_transactions_estimate", estimate)
            return usage
        if not ok and code != "ConditionalCheckFailedException":
            return usage  # validation errors, throttling: nothing written, nothing billed
        unprocessed = self._unprocessed(parsed)
        for target in targets:
            if (target.table, _key_text(target.key)) in unprocessed:
                continue
            if not ok or target.action == "ConditionCheck":
                # A failed condition bills the existing item (at least 1 unit); a ConditionCheck
                # in a transaction bills the item it checked.
                usage.wcu += write_units(self._size(target.before), transactional=transactional)
                continue
            after = self._after_image(target)
            size = max(self._size(target.before), self._size(after))
            usage.wcu += write_units(size, transactional=transactional)
            if self._peek is not None:
                usage.wcu_index += self._index_units(target.table, target.before, after)
        return usage

    def _after_image(self, target: _Target) -> dict[str, Any] | None:
        if target.action == "Delete":
            return None
        if self._peek is not None:
            return self._image(target.table, target.key)
        if target.request_item is None:
            self._note("writes_sized_without_item_images")
        return target.request_item

    @staticmethod
    def _size(image: Mapping[str, Any] | None) -> int:
        return item_size(image) if image else 0

    def _index_units(
        self, table: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> int:
        """Index writes for one item write: an entry put, deleted, changed, or (its keys
        changed) deleted and put again."""
        spec = self._table(table)
        units = 0
        for index in spec.indexes:
            old = _index_entry(index, spec.keys, before)
            new = _index_entry(index, spec.keys, after)
            if old == new:
                continue
            if old is None or new is None:
                units += write_units(item_size(old or new or {}))
            elif all(old[k] == new[k] for k in index.keys):
                units += write_units(max(item_size(old), item_size(new)))
            else:
                units += write_units(item_size(old)) + write_units(item_size(new))
        return units

    # ---- the peek client ---------------------------------------------------------------------
    def _image(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        assert self._peek is not None
        item = self._peek.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def _table(self, name: str) -> _Table:
        if name not in self._tables:
            assert self._peek is not None
            described = self._peek.describe_table(TableName=name)["Table"]
            self._tables[name] = _Table(
                keys=tuple(k["AttributeName"] for k in described["KeySchema"]),
                indexes=tuple(
                    _Index(
                        name=g["IndexName"],
                        keys=tuple(k["AttributeName"] for k in g["KeySchema"]),
                        projection=g["Projection"].get("ProjectionType", "ALL"),
                        included=tuple(g["Projection"].get("NonKeyAttributes", [])),
                    )
                    for g in described.get("GlobalSecondaryIndexes", [])
                ),
            )
        return self._tables[name]


def _index_entry(
    index: _Index, table_keys: Sequence[str], item: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """What the index holds for this item (None: the item is not in this sparse index)."""
    if item is None or not all(k in item for k in index.keys):
        return None
    if index.projection == "ALL":
        return dict(item)
    kept = {*table_keys, *index.keys, *(index.included if index.projection == "INCLUDE" else ())}
    return {k: v for k, v in item.items() if k in kept}


def _key_text(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=repr)


# ---- request counting ----------------------------------------------------------------------
class RequestCounter:
    """Counts requests per (service, operation), the bytes S3 GetObject returned and, once
    registered with `register`, the seconds spent in requests per service."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.s3_bytes_read = 0
        self.seconds: Counter[str] = Counter()
        self._lock = threading.Lock()

    def register(self, events: BaseEventHooks) -> None:
        events.register("before-call", self.before_call)
        events.register("after-call", self.after_call)
        events.register("after-call.s3.GetObject", self.after_get)

    def before_call(self, event_name: str, context: dict[str, Any] | None = None, **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        with self._lock:
            self.calls[f"{service}.{operation}"] += 1
        if context is not None:
            context["chute_request_started"] = time.perf_counter()

    def after_call(self, event_name: str, context: dict[str, Any], **_: Any) -> None:
        started = context.get("chute_request_started")
        if started is not None:
            with self._lock:
                self.seconds[event_name.split(".", 2)[1]] += time.perf_counter() - started

    def after_get(self, parsed: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.s3_bytes_read += int(parsed.get("ContentLength", 0))

    def by_service(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for name, count in self.calls.items():
            totals[name.split(".", 1)[0]] += count
        return dict(totals)

    def snapshot(self) -> tuple[Counter[str], int]:
        with self._lock:
            return Counter(self.calls), self.s3_bytes_read


# ---- shared by the benches -----------------------------------------------------------------
def logs_to_stderr() -> None:
    """chute logs JSON lines to stdout, as Lambda wants; a bench's stdout is its one result line.

    The app is imported first: Chalice(app_name="chute") adds a stdout handler (and sets the level
    to ERROR) on the logger of that name, the one Powertools uses, unless it finds one there.
    """
    import importlib

    from chalicelib.log import logger

    importlib.import_module("app")
    for handler in logging.getLogger(logger.name).handlers:
        # Only handlers writing to stdout: others (a test runner's capture handlers) stay put.
        stream = getattr(handler, "stream", None)
        if isinstance(handler, logging.StreamHandler) and stream in (sys.stdout, sys.__stdout__):
            handler.setStream(sys.stderr)


def auth_headers(user: str = "bench") -> dict[str, str]:
    """Headers of a signed-in client of the in-process stack."""
    from chalicelib.auth import issue_token
    from infra.inprocess import TOKEN_KEY

    token = issue_token(TOKEN_KEY, user, time.time())
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def upload_in_process(client: Client, name: str, data: bytes) -> str:
    """Create a one-file session through the API and upload the file with its presigned POST,
    as a browser would; the session id. moto (in this process) receives the POST."""
    import requests

    manifest = {"files": [{"name": name, "size": len(data), "content_type": "application/zip"}]}
    response = client.http.post("/sessions", headers=auth_headers(), body=json.dumps(manifest))
    if response.status_code != 201:
        raise RuntimeError(f"POST /sessions answered {response.status_code}: {response.body!r}")
    created = json.loads(response.body)
    ticket = created["uploads"][0]
    requests.post(
        ticket["url"], data=ticket["fields"], files={"file": (name, data)}, timeout=600
    ).raise_for_status()
    return str(created["session_id"])


def get_summary(client: Client, sid: str) -> dict[str, Any]:
    response = client.http.get(f"/sessions/{sid}", headers=auth_headers())
    if response.status_code != 200:
        raise RuntimeError(f"GET /sessions/{sid} answered {response.status_code}")
    summary: dict[str, Any] = json.loads(response.body)
    return summary


# ---- the bench -----------------------------------------------------------------------------
def run(zip_path: Path, *, reads: int) -> dict[str, Any]:
    import boto3
    from chalice.test import Client

    from infra.inprocess import REGION, InProcessStack

    with InProcessStack() as stack:
        # An unhooked client of the same (mocked) DynamoDB sizes what requests do not show.
        capacity = CapacityCounter(peek=boto3.Session(region_name=REGION).client("dynamodb"))
        capacity.register(stack.app_session.events)
        with Client(stack.app.app) as client:
            sid = upload_in_process(client, zip_path.name, zip_path.read_bytes())
            return _measure(stack, client, capacity, sid, reads)


def _measure(
    stack: InProcessStack, client: Client, capacity: CapacityCounter, sid: str, reads: int
) -> dict[str, Any]:
    started = time.perf_counter()
    before_fanout = capacity.snapshot()
    stack.drain("on_upload")
    after_fanout = capacity.snapshot()
    stack.drain()
    after_workers = capacity.snapshot()
    elapsed_s = time.perf_counter() - started
    summary = get_summary(client, sid)
    before_reads = capacity.snapshot()
    for _ in range(reads):
        get_summary(client, sid)
    status_read = capacity.snapshot() - before_reads
    units = int(summary["total"])
    fanout = after_fanout - before_fanout
    workers = after_workers - after_fanout
    return {
        "bench": "capacity",
        "units": units,
        "status": summary["status"],
        "per_unit": {
            "fanout": fanout.as_dict(per=units),
            "workers": workers.as_dict(per=units),
            "all": (after_workers - before_fanout).as_dict(per=units),
        },
        "status_read": status_read.as_dict(per=reads),
        "wcu_estimated_from": capacity.wcu_estimated_from,
        "rcu_rules": "GetItem per item, Query per page rounded to 4 KB; x0.5 eventually consistent",
        "elapsed_s": round(elapsed_s, 2),
    }


def main(argv: Sequence[str] | None = None) -> None:
    import tempfile
    from pathlib import Path

    from chute_cli.samples import make_documents_zip

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--size-mb", type=float, default=40.0)
    parser.add_argument("--reads", type=int, default=20, help="status reads to average")
    parser.add_argument("--quick", action="store_true", help="12 files, 1 MiB, 5 reads")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.size_mb, args.reads = 12, 1.0, 5
    logs_to_stderr()
    with tempfile.TemporaryDirectory() as scratch:
        sample = make_documents_zip(
            Path(scratch) / "bench.zip", files=args.files, size_mb=args.size_mb, corrupt=0
        )
        print(json.dumps(run(sample.path, reads=args.reads)))


if __name__ == "__main__":
    main()
