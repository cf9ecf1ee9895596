"""Hot items: how many writes the busiest single DynamoDB item takes per unit processed.

Run: .venv/bin/python -m bench.hot_items [--units 1000] [--units-per-s 1000]
One session of --units tiny zip members goes through the in-process stack; a hook on chute's
DynamoDB client counts every write request per item key (each item of a TransactWriteItems or
BatchWriteItem counts once; transactional writes cost at least 2 WCU each). DynamoDB serves at most
about 1,000 WCU/s per item, so at an aggregate --units-per-s (100 workers at ~10 units/s each is
1,000) the busiest item needs `writes per unit × WCU per write × units/s`. Reported: the busiest
item and its projected WCU/s, META's share, and the same projection for the unsharded design,
where every claim, finish and completion attempt wrote META (3 writes per unit, measured by
bench.pipeline_requests before the counters were sharded). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

import requests
from chalice.test import Client

from bench.capacity import auth_headers, logs_to_stderr
from chute_cli.samples import tiny_text_zip
from infra.inprocess import InProcessStack

ITEM_WCU_LIMIT = 1000
UNSHARDED_META_WRITES_PER_UNIT = 3


class ItemWrites:
    def __init__(self) -> None:
        self.writes: Counter[str] = Counter()
        self.transactional: Counter[str] = Counter()

    def count(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        if operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((action, spec),) = entry.items()
                if action != "ConditionCheck":
                    self._add(spec.get("Key") or spec["Item"], transactional=True)
        elif operation in ("UpdateItem", "DeleteItem"):
            self._add(params["Key"])
        elif operation == "PutItem":
            self._add(params["Item"])
        elif operation == "BatchWriteItem":
            for requests_ in params["RequestItems"].values():
                for request in requests_:
                    put = request.get("PutRequest")
                    self._add(put["Item"] if put else request["DeleteRequest"]["Key"])

    def _add(self, item: dict[str, Any], *, transactional: bool = False) -> None:
        key = f"{item['PK']['S']}|{item['SK']['S']}"
        self.writes[key] += 1
        if transactional:
            self.transactional[key] += 1


def run(units: int, units_per_s: float) -> dict[str, Any]:
    counter = ItemWrites()
    with InProcessStack() as stack:
        stack.app_session.events.register("before-parameter-build.dynamodb", counter.count)
        data = tiny_text_zip(units)
        headers = auth_headers()
        manifest = {"files": [{"name": "hot.zip", "size": len(data)}]}
        with Client(stack.app.app) as client:
            created = json.loads(
                client.http.post("/sessions", headers=headers, body=json.dumps(manifest)).body
            )
            ticket = created["uploads"][0]
            requests.post(ticket["url"], data=ticket["fields"], files={"file": data}, timeout=60)
            stack.drain()
    busiest, busiest_writes = counter.writes.most_common(1)[0]
    meta = next((n for key, n in counter.writes.items() if key.endswith("|META")), 0)

    def wcu_per_s(writes: int, transactional: int) -> float:
        # Small items: 1 WCU per write, 2 inside a transaction.
        return round((writes + transactional) / units * units_per_s, 1)

    busiest_wcu = wcu_per_s(busiest_writes, counter.transactional[busiest])
    unsharded = UNSHARDED_META_WRITES_PER_UNIT * 2 * units_per_s
    return {
        "bench": "hot_items",
        "units": units,
        "units_per_s_assumed": units_per_s,
        "busiest_item": busiest.split("|", 1)[1],
        "busiest_writes_per_unit": round(busiest_writes / units, 4),
        "busiest_item_wcu_per_s": busiest_wcu,
        "meta_writes_per_unit": round(meta / units, 4),
        "item_wcu_limit": ITEM_WCU_LIMIT,
        "within_limit": busiest_wcu <= ITEM_WCU_LIMIT,
        "unsharded_meta_wcu_per_s": unsharded,
        "unsharded_within_limit": unsharded <= ITEM_WCU_LIMIT,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--units-per-s", type=float, default=1000.0)
    args = parser.parse_args()
    logs_to_stderr()
    print(json.dumps(run(args.units, args.units_per_s)))


if __name__ == "__main__":
    main()
