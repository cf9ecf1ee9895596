"""TransactWriteItems cost in moto with N items in the table, before and after infra.moto_ddb_fast.

Run: .venv/bin/python -m bench.moto_ddb_transact [--items 10000] [--repeat 3]
Prints one JSON line: median milliseconds per transaction of two updates (a unit's conditional
transition and its session counter), committed and cancelled, with moto's code ("before") and
patched ("after"). In-process moto (mock_aws): HTTP is not included.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from bench.timing import median_ms
from infra import moto_ddb_fast

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def _key(sk: str) -> dict[str, Any]:
    return {"PK": {"S": "S#bench"}, "SK": {"S": sk}}


def _transition(ddb: DynamoDBClient, ordinal: int) -> None:
    """pending → running for one unit, with the session's counters; cancelled if not pending."""
    try:
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": "chute",
                        "Key": _key(f"F#{ordinal:06d}"),
                        "UpdateExpression": "SET #s = :running",
                        "ConditionExpression": "#s = :pending",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {
                            ":running": {"S": "running"},
                            ":pending": {"S": "pending"},
                        },
                    }
                },
                {
                    "Update": {
                        "TableName": "chute",
                        "Key": _key("META"),
                        "UpdateExpression": "ADD version :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "TransactionCanceledException":
            raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    result: dict[str, float | int] = {"items": args.items}
    with mock_aws():
        ddb: DynamoDBClient = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="chute",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
        )
        for start in range(0, args.items, 25):
            batch = range(start, min(start + 25, args.items))
            ddb.batch_write_item(
                RequestItems={
                    "chute": [
                        {"PutRequest": {"Item": {**_key(f"F#{n:06d}"), "status": {"S": "pending"}}}}
                        for n in batch
                    ]
                }
            )
        ordinals = itertools.count()
        for label, switch in (
            ("before", moto_ddb_fast.uninstall),
            ("after", moto_ddb_fast.install),
        ):
            switch()
            result[f"transact_ms_{label}"] = median_ms(
                lambda: _transition(ddb, next(ordinals)), args.repeat
            )
            # Unit 0 is running by now: the same transition is cancelled and rolled back.
            result[f"cancelled_transact_ms_{label}"] = median_ms(
                lambda: _transition(ddb, 0), args.repeat
            )
        moto_ddb_fast.uninstall()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
