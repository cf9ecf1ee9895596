"""Hot keys: the write capacity the busiest DynamoDB item and the busiest index partitions take
per unit processed, projected to an aggregate rate against DynamoDB's per-partition limit.

Run: .venv/bin/python -m bench.hot_items [--units 1000] [--files 100] [--units-per-s 1000]
Two sessions go through the in-process stack (moto, chute's real handlers), one after the other:
a zip of --units tiny members (one file, many units), and --files single-document files (one unit
per file: the shape that writes the session's META item once per file). A hook on chute's
DynamoDB client sees every write; an unhooked client reads each written item just before and
just after it, so the capacity is computed by AWS's rules (bench.capacity: 1 WCU per KB of the
larger image, doubled inside a transaction; a failed condition bills the item; a cancelled
transaction bills nothing) and so are the index writes: each GSI1 and GSI2 entry put, changed or
deleted, 1 WCU per KB, charged to its index partition key (its GSI1PK / GSI2PK value).

Projection: WCU per unit × --units-per-s. With one session taking the whole rate (the worst
case for its own items — META, its counter shards — and its owner's GSI1 partition): the busiest
item and index partitions per shape, and `session_max_units_per_s`, the rate at which one session's
busiest key reaches DynamoDB's ~1,000 WCU/s per partition (an item lives in one partition). The due
lists' shards are shared by every session: with many sessions each shard takes 1/DUE_SHARDS of its
list (`gsi2_shard_wcu_per_s_many_sessions`). `within_limit`: those shards, and a one-file session
(a zip or a prompts batch, the shape one session can feed at 1,000 units/s) alone at the rate.
Each shape also reports its busiest table partition key (S#{sid}: the session's units and
files; M#{sid}: META and its counter shards), its items' writes together: far above 1,000 WCU/s
for one session at the whole rate, which DynamoDB serves by splitting a busy item collection
between partitions by sort key (the table has no local secondary index, which would forbid it);
an item cannot be split, and a list whose sort key is a time only ever grows at one end, so the
items and the due lists are what must stay under the limit.
Also reported: what each due list would take under one constant key (the sum of its shards: the
design before sharding) and META in the design before the counters were sharded (every claim,
finish and completion attempt wrote META: 3 transactional writes per unit, measured by
bench.pipeline_requests before the counter shards). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import requests
from chalice.test import Client

from bench.capacity import auth_headers, item_size, logs_to_stderr, write_units
from chalicelib.store.keys import DUE_SHARDS, DueList
from chute_cli.samples import tiny_text_zip
from infra.inprocess import REGION, InProcessStack

if TYPE_CHECKING:
    from botocore.hooks import BaseEventHooks
    from mypy_boto3_dynamodb import DynamoDBClient

PARTITION_WCU_LIMIT = 1000
UNSHARDED_META_WRITES_PER_UNIT = 3
INDEXES = {"GSI1": "GSI1PK", "GSI2": "GSI2PK"}


@dataclass
class _Write:
    key: dict[str, Any]  # the item's table key, DynamoDB JSON
    action: str  # Put, Update, Delete, ConditionCheck
    before: dict[str, Any] | None


@dataclass
class KeyWrites:
    """Write capacity per base-table item and per index partition key, from item images."""

    peek: DynamoDBClient
    item_wcu: Counter[str] = field(default_factory=Counter)
    partition_wcu: dict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter[str])
    )
    cancelled_transactions: int = 0

    def register(self, events: BaseEventHooks) -> None:
        events.register("before-parameter-build.dynamodb", self._before)
        events.register("after-call.dynamodb", self._after)

    def _image(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        item = self.peek.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def _before(
        self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        specs: list[tuple[str, dict[str, Any]]] = []
        if model.name in ("PutItem", "UpdateItem", "DeleteItem"):
            specs = [(model.name.removesuffix("Item"), params)]
        elif model.name == "TransactWriteItems":
            specs = [next(iter(entry.items())) for entry in params["TransactItems"]]
        elif model.name == "BatchWriteItem":
            for table, batch in params["RequestItems"].items():
                for request in batch:
                    put = request.get("PutRequest")
                    spec = {"TableName": table, **(put or request["DeleteRequest"])}
                    specs.append(("Put" if put else "Delete", spec))
        else:
            return
        writes = []
        for action, spec in specs:
            key = spec.get("Key") or {k: spec["Item"][k] for k in ("PK", "SK")}
            writes.append(_Write(key, action, self._image(spec["TableName"], key)))
        context["hot_writes"] = (params.get("TableName") or _table_of(params), writes)

    def _after(
        self,
        model: Any,
        parsed: dict[str, Any],
        http_response: Any,
        context: dict[str, Any],
        **_: Any,
    ) -> None:
        if "hot_writes" not in context:
            return
        table, writes = context["hot_writes"]
        transactional = model.name == "TransactWriteItems"
        code = str(parsed.get("Error", {}).get("Code", ""))
        ok = int(http_response.status_code) < 300
        if code == "TransactionCanceledException":
            self.cancelled_transactions += 1  # not billed (AWS documents no charge)
            return
        if not ok and code != "ConditionalCheckFailedException":
            return
        left = {_key_text(k) for k in _unprocessed_keys(parsed)}
        for write in writes:
            if _key_text(write.key) in left:
                continue
            after = None
            if ok and write.action not in ("Delete", "ConditionCheck"):
                after = self._image(table, write.key)
            elif write.action == "ConditionCheck" or not ok:
                after = write.before
            size = max(_size(write.before), _size(after))
            self.item_wcu[_item_name(write.key)] += write_units(size, transactional=transactional)
            if ok and write.action != "ConditionCheck":
                self._index_writes(write.before, after)

    def _index_writes(self, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        """Each index entry put, changed or deleted (both, when its key moved), 1 WCU per KB,
        charged to the partition key it is written under (projection ALL: the whole item)."""
        for index, pk in INDEXES.items():
            old = before if before and pk in before else None
            new = after if after and pk in after else None
            if old == new:
                continue
            if old is not None and new is not None and old[pk] == new[pk]:
                size = max(item_size(old), item_size(new))
                self.partition_wcu[index][new[pk]["S"]] += write_units(size)
                continue
            for entry in (old, new):
                if entry is not None:
                    self.partition_wcu[index][entry[pk]["S"]] += write_units(item_size(entry))


def _table_of(params: Mapping[str, Any]) -> str:
    if "TransactItems" in params:
        return str(next(iter(params["TransactItems"][0].values()))["TableName"])
    return str(next(iter(params["RequestItems"])))


def _unprocessed_keys(parsed: Mapping[str, Any]) -> list[dict[str, Any]]:
    keys = []
    for batch in (parsed.get("UnprocessedItems") or {}).values():
        for request in batch:
            put = request.get("PutRequest")
            keys.append({k: put["Item"][k] for k in ("PK", "SK")} if put else request["Key"])
    return keys


def _key_text(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)


def _size(image: Mapping[str, Any] | None) -> int:
    return item_size(image) if image else 0


def _item_name(key: Mapping[str, Any]) -> str:
    return f"{key['PK']['S']}|{key['SK']['S']}"


def _kind(item: str) -> str:
    """An item's kind, the session id left out: META, C07, F#…, D#…."""
    pk, sk = item.split("|", 1)
    return sk if pk.startswith("M#") else pk[:2] + sk.split("#", 1)[0] + "#…"


def _list_of(partition: str) -> str:
    return partition.split("#", 1)[0]


def upload_session(client: Client, files: list[tuple[str, bytes]]) -> str:
    """Create a session of these files through the API and upload each by its presigned POST."""
    manifest = {"files": [{"name": name, "size": len(data)} for name, data in files]}
    response = client.http.post("/sessions", headers=auth_headers(), body=json.dumps(manifest))
    created = json.loads(response.body)
    for ticket, (name, data) in zip(created["uploads"], files, strict=True):
        requests.post(
            ticket["url"], data=ticket["fields"], files={"file": (name, data)}, timeout=60
        ).raise_for_status()
    return str(created["session_id"])


def measure(files: list[tuple[str, bytes]], units_per_s: float) -> dict[str, Any]:
    """One session of these files through the in-process stack: its hottest keys."""
    with InProcessStack() as stack:
        writes = KeyWrites(peek=boto3.Session(region_name=REGION).client("dynamodb"))
        writes.register(stack.app_session.events)
        with Client(stack.app.app) as client:
            sid = upload_session(client, files)
            stack.drain()
            summary = json.loads(client.http.get(f"/sessions/{sid}", headers=auth_headers()).body)
    units = int(summary["total"])

    def per_s(wcu: float) -> float:
        return round(wcu / units * units_per_s, 1)

    item, item_wcu = writes.item_wcu.most_common(1)[0]
    by_kind: dict[str, int] = {}
    for name, wcu in writes.item_wcu.items():
        by_kind[_kind(name)] = max(by_kind.get(_kind(name), 0), wcu)
    table_keys: Counter[str] = Counter()
    for name, wcu in writes.item_wcu.items():
        table_keys[name.split("|", 1)[0][:2] + "{sid}"] += wcu
    table_key, table_key_wcu = table_keys.most_common(1)[0]
    gsi1 = writes.partition_wcu["GSI1"]
    gsi2 = writes.partition_wcu["GSI2"]
    lists: dict[str, dict[str, Any]] = {}
    for partition, wcu in gsi2.items():
        entry = lists.setdefault(
            _list_of(partition), {"partitions": 0, "max_wcu_per_s": 0.0, "one_key_wcu_per_s": 0.0}
        )
        entry["partitions"] += 1
        entry["max_wcu_per_s"] = max(entry["max_wcu_per_s"], per_s(wcu))
        entry["one_key_wcu_per_s"] = round(entry["one_key_wcu_per_s"] + per_s(wcu), 1)
    (gsi1_key, gsi1_wcu), (gsi2_key, gsi2_wcu) = gsi1.most_common(1)[0], gsi2.most_common(1)[0]
    return {
        "files": len(files),
        "units": units,
        "status": summary["status"],
        "busiest_item": _kind(item),
        "busiest_item_wcu_per_unit": round(item_wcu / units, 4),
        "busiest_item_wcu_per_s": per_s(item_wcu),
        "item_wcu_per_s_by_kind": {k: per_s(v) for k, v in sorted(by_kind.items())},
        # A partition key of the table: its items together (DynamoDB splits a busy item
        # collection between partitions by sort key; an item cannot be split).
        "busiest_table_partition_key": table_key,
        "busiest_table_partition_key_wcu_per_s": per_s(table_key_wcu),
        "busiest_gsi1_partition": gsi1_key.split("#", 1)[0] + "#{owner}",
        "busiest_gsi1_partition_wcu_per_s": per_s(gsi1_wcu),
        "busiest_gsi2_partition": gsi2_key,
        "busiest_gsi2_partition_wcu_per_s": per_s(gsi2_wcu),
        "gsi2_lists": dict(sorted(lists.items())),
        "cancelled_transactions": writes.cancelled_transactions,
    }


def run(units: int, files: int, units_per_s: float) -> dict[str, Any]:
    shapes = {
        "zip": measure([("hot.zip", tiny_text_zip(units))], units_per_s),
        "files": measure(
            [(f"doc-{n:04d}.txt", b"unit %d\n" % n) for n in range(files)], units_per_s
        ),
    }
    # Many sessions: the lists' shards share the whole rate evenly (a session's own entries,
    # META on OPEN and NOTIFY, land on one shard each, different sessions on different ones).
    spread = max(
        entry["one_key_wcu_per_s"] / DUE_SHARDS
        for shape in shapes.values()
        for entry in shape["gsi2_lists"].values()
    )
    one_key = {
        name: max(
            s["gsi2_lists"].get(name, {}).get("one_key_wcu_per_s", 0.0) for s in shapes.values()
        )
        for name in sorted({n for s in shapes.values() for n in s["gsi2_lists"]})
    }
    zip_peak = _session_peak(shapes["zip"])
    return {
        "bench": "hot_items",
        "units_per_s_assumed": units_per_s,
        "partition_wcu_limit": PARTITION_WCU_LIMIT,
        "due_shards": DUE_SHARDS,
        # One session (one owner) taking the whole rate: its own items and partitions.
        "max_item_wcu_per_s": {k: s["busiest_item_wcu_per_s"] for k, s in shapes.items()},
        "max_gsi1_partition_wcu_per_s": {
            k: s["busiest_gsi1_partition_wcu_per_s"] for k, s in shapes.items()
        },
        "max_gsi2_partition_wcu_per_s": {
            k: s["busiest_gsi2_partition_wcu_per_s"] for k, s in shapes.items()
        },
        "gsi2_shard_wcu_per_s_many_sessions": round(spread, 1),
        "gsi2_one_key_wcu_per_s": one_key,
        # What one session can take before its busiest key reaches the limit.
        "session_max_units_per_s": {
            k: round(PARTITION_WCU_LIMIT * units_per_s / _session_peak(s))
            for k, s in shapes.items()
        },
        "within_limit": spread <= PARTITION_WCU_LIMIT and zip_peak <= PARTITION_WCU_LIMIT,
        "unsharded_lease_list_wcu_per_s": one_key.get(DueList.LEASE.value, 0.0),
        "unsharded_meta_wcu_per_s": UNSHARDED_META_WRITES_PER_UNIT * 2 * units_per_s,
        "shapes": shapes,
    }


def _session_peak(shape: Mapping[str, Any]) -> float:
    return float(
        max(
            shape["busiest_item_wcu_per_s"],
            shape["busiest_gsi1_partition_wcu_per_s"],
            shape["busiest_gsi2_partition_wcu_per_s"],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=1000, help="members of the zip session")
    parser.add_argument("--files", type=int, default=100, help="files of the files session")
    parser.add_argument("--units-per-s", type=float, default=1000.0)
    args = parser.parse_args()
    logs_to_stderr()
    print(json.dumps(run(args.units, args.files, args.units_per_s)))


if __name__ == "__main__":
    main()
