"""Capacity-unit accounting (bench.capacity) against the rules and examples of AWS's DynamoDB
developer guide ("Item sizes and formats", "Read and write operations"), and the counter's hooks
on moto in-process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bench.capacity import (
    CapacityCounter,
    item_size,
    number_size,
    read_units,
    write_units,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KB = 1024


# ---- item sizes ----------------------------------------------------------------------------
def test_a_string_costs_its_name_and_value_in_utf8_bytes() -> None:
    assert item_size({"Name": {"S": "abc"}}) == 4 + 3
    assert item_size({"é": {"S": "日本"}}) == 2 + 6


def test_a_number_costs_a_byte_per_two_significant_digits_plus_one() -> None:
    assert number_size("12345") == 4  # 5 digits → 3, + 1
    assert number_size("0.00100") == 2  # leading and trailing zeros trimmed: 1 digit
    assert number_size("1E+5") == 2
    assert number_size("-12.5") == 3
    assert item_size({"n": {"N": "12345"}}) == 1 + 4


def test_binary_bool_and_null_sizes() -> None:
    assert item_size({"b": {"B": b"\x00\x01\x02"}}) == 1 + 3
    assert item_size({"t": {"BOOL": True}, "z": {"NULL": True}}) == (1 + 1) + (1 + 1)


def test_lists_and_maps_cost_3_bytes_plus_1_per_element() -> None:
    assert item_size({"m": {"M": {}}}) == 1 + 3
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert item_size({"m": {"M": {"a": {"S": "x"}}}}) == 1 + 3 + (1 + 1 + 1)
    nested = {"m": {"M": {"in": {"L": [{"BOOL": False}]}}}}
    assert item_size(nested) == 1 + 3 + (1 + 2 + (3 + 1 + 1))


def test_sets_cost_the_sum_of_their_elements() -> None:
    assert item_size({"ss": {"SS": ["a", "bc"]}}) == 2 + 3
    assert item_size({"ns": {"NS": ["1", "12345"]}}) == 2 + (2 + 4)
    assert item_size({"bs": {"BS": [b"ab", b"c"]}}) == 2 + 3


# ---- units: the guide's examples -----------------------------------------------------------
def test_get_item_of_3500_bytes_is_one_unit_or_half_eventually_consistent() -> None:
    assert read_units([3500], consistent=True, per_item=True) == 1
    assert read_units([3500], consistent=False, per_item=True) == 0.5


def test_an_8_kb_item_is_2_units_1_eventually_consistent_4_transactional() -> None:
    assert read_units([8 * KB], consistent=True, per_item=True) == 2
    assert read_units([8 * KB], consistent=False, per_item=True) == 1
    assert read_units([8 * KB], consistent=True, per_item=True, transactional=True) == 4


def test_batch_get_rounds_each_item_so_1_5_and_6_5_kb_cost_12_kb() -> None:
    sizes = [int(1.5 * KB), int(6.5 * KB)]
    assert read_units(sizes, consistent=True, per_item=True) == 3


def test_a_query_rounds_the_page_total_so_40_8_kb_costs_44_kb() -> None:
    sizes = [int(40.8 * KB) // 10] * 10
    assert read_units(sizes, consistent=True, per_item=False) == 11
    assert read_units(sizes, consistent=False, per_item=False) == 5.5


def test_a_query_of_1500_items_of_64_bytes_costs_96_kb() -> None:
    assert read_units([64] * 1500, consistent=True, per_item=False) == 24


def test_reading_nothing_still_costs_the_minimum() -> None:
    assert read_units([0], consistent=False, per_item=True) == 0.5
    assert read_units([], consistent=True, per_item=False) == 1


def test_writes_round_each_item_up_to_1_kb_and_double_in_a_transaction() -> None:
    assert write_units(500) == 1
    assert write_units(int(1.5 * KB)) == 2
    assert write_units(500) + write_units(int(3.5 * KB)) == 5  # a BatchWriteItem: 1 KB + 4 KB
    assert write_units(2 * KB, transactional=True) == 4


# ---- the counter on moto -------------------------------------------------------------------
@pytest.fixture
def tables(aws: boto3.Session) -> tuple[DynamoDBClient, DynamoDBClient]:
    """A hooked client and an unhooked one (the peek), both on moto; table "t" with a GSI."""
    peek: DynamoDBClient = boto3.Session(region_name="us-east-1").client("dynamodb")
    peek.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("PK", "SK", "G")
        ],
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "GSI",
                "KeySchema": [{"AttributeName": "G", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    hooked: DynamoDBClient = boto3.Session(region_name="us-east-1").client("dynamodb")
    return hooked, peek


def _item(sk: str, padding: int, **extra: Any) -> dict[str, Any]:
    return {"PK": {"S": "p"}, "SK": {"S": sk}, "body": {"S": "x" * padding}, **extra}


def _counted(hooked: DynamoDBClient, peek: DynamoDBClient | None) -> CapacityCounter:
    counter = CapacityCounter(peek=peek)
    counter.register(hooked.meta.events)
    return counter


def test_reads_are_sized_from_the_items_returned(
    tables: tuple[DynamoDBClient, DynamoDBClient],
) -> None:
    hooked, peek = tables
    peek.put_item(TableName="t", Item=_item("a", 5000))  # 2 blocks of 4 KB
    counter = _counted(hooked, peek)
    key = {"PK": {"S": "p"}, "SK": {"S": "a"}}
    hooked.get_item(TableName="t", Key=key)
    hooked.get_item(TableName="t", Key=key, ConsistentRead=True)
    hooked.get_item(TableName="t", Key={"PK": {"S": "p"}, "SK": {"S": "missing"}})
    usage = counter.snapshot().by_operation["GetItem"]
    assert (usage.requests, usage.rcu) == (3, 1 + 2 + 0.5)


def test_a_projection_does_not_make_a_read_cheaper(
    tables: tuple[DynamoDBClient, DynamoDBClient],
) -> None:
    hooked, peek = tables
    peek.put_item(TableName="t", Item=_item("a", 5000))  # 2 blocks of 4 KB
    key = {"PK": {"S": "p"}, "SK": {"S": "a"}}
    with_peek, without_peek = _counted(hooked, peek), _counted(hooked, None)
    hooked.get_item(TableName="t", Key=key, ProjectionExpression="PK")
    assert with_peek.snapshot().by_operation["GetItem"].rcu == 1
    estimated = without_peek.snapshot()
    assert estimated.by_operation["GetItem"].rcu == 0.5  # only what came back could be sized
    assert estimated.approximations["projected_items_sized_as_returned"] == 1


def test_a_filtered_query_costs_every_item_it_read(
    tables: tuple[DynamoDBClient, DynamoDBClient],
) -> None:
    hooked, peek = tables
    for n in range(10):
        peek.put_item(TableName="t", Item=_item(f"u{n}", 1000))  # ~10 KB read in all
    counter = _counted(hooked, peek)
    hooked.query(
        TableName="t",
        KeyConditionExpression="PK = :p",
        FilterExpression="body = :nothing",
        ExpressionAttributeValues={":p": {"S": "p"}, ":nothing": {"S": "-"}},
    )
    snapshot = counter.snapshot()
    assert snapshot.by_operation["Query"].rcu == 1.5  # 3 blocks of 4 KB, eventually consistent
    assert snapshot.approximations["query_pages_sized_by_peek"] == 1


def test_without_a_peek_client_a_filtered_query_is_estimated_and_says_so(
    tables: tuple[DynamoDBClient, DynamoDBClient],
) -> None:
    hooked, peek = tables
    for n in range(4):
        peek.put_item(TableName="t", Item=_item(f"u{n}", 3000))
    counter = _counted(hooked, None)
    hooked.query(
        TableName="t",
        KeyConditionExpression="PK = :p",
        FilterExpression="SK = :one",
        ExpressionAttributeValues={":p": {"S": "p"}, ":one": {"S": "u1"}},
        ConsistentRead=True,
    )
    snapshot = counter.snapshot()
    assert snapshot.by_operation["Query"].rcu == 3  # 4 items of ~3 KB: 12 KB
    assert snapshot.approximations["query_pages_estimated_from_returned_items"] == 1


def test_an_update_costs_the_larger_of_the_item_before_and_after(
    tables: tuple[DynamoDBClient, DynamoDBClient],
) -> None:
    hooked, peek = tables
    peek.put_item(TableName="t", Item=_item("a", 100))
    counter = _counted(hooked, peek)
    hooked.update_item(
        TableName="t",
        Key={"PK": {"S": "p"}, "SK": {"S": "a"}},
        UpdateExpression="SET body = :big",
        ExpressionAttributeValues={":big": {"S": "y" * 2100}},  # after: ~2.1 KB → 3 units
    )
    hooked.update_item(
        TableName="t",
        Key={"PK": {"S": "p"}, "SK": {"S": "a"}},
        UpdateExpression="SET body = :small",
        ExpressionAttributeValues={":small": {"S": "z"}},  # before is the larger: 3 units
    )
    assert counter.snapshot().by_operation["UpdateItem"].wcu == 3 + 3


def test_a_failed_condition_still_costs_the_existing_item(
    tables: tuple[DynamoDBClient, DynamoDBClient],
) -> None:
    hooked, peek = tables
    peek.put_item(TableName="t", Item=_item("a", 1500))  # 2 units
    counter = _counted(hooked, peek)
    with pytest.raises(ClientError):
        hooked.put_item(
            TableName="t", Item=_item("a", 10), ConditionExpression="attribute_not_exists(PK)"
        )
    assert counter.snapshot().by_operation["PutItem"].wcu == 2


def test_batch_write_rounds_each_item_so_500_bytes_and_3_5_kb_cost_5(
    tables: tuple[DynamoDBClient, DynamoDBClient],
) -> None:
    hooked, peek = tables
    counter = _counted(hooked, peek)
    hooked.batch_write_item(
        RequestItems={
            "t": [
                {"PutRequest": {"Item": _item("a", 480)}},
                {"PutRequest": {"Item": _item("b", int(3.5 * KB) - 20)}},
            ]
        }
    )
    assert counter.snapshot().by_operation["BatchWriteItem"].wcu == 5


def test_a_transaction_costs_twice_and_a_cancelled_one_is_kept_apart(
    tables: tuple[DynamoDBClient, DynamoDBClient],
) -> None:
    hooked, peek = tables
    peek.put_item(TableName="t", Item=_item("a", 10))
    counter = _counted(hooked, peek)

    def transact(condition: str) -> None:
        hooked.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": _item("b", 1500)}},  # 2 units, x2
                {
                    "Update": {
                        "TableName": "t",
                        "Key": {"PK": {"S": "p"}, "SK": {"S": "a"}},
                        "UpdateExpression": "SET n = :one",
                        "ConditionExpression": condition,
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },  # 1 unit, x2
            ]
        )

    transact("attribute_exists(PK)")
    with pytest.raises(ClientError):
        transact("attribute_not_exists(PK)")
    snapshot = counter.snapshot()
    assert snapshot.by_operation["TransactWriteItems"].requests == 2
    assert snapshot.by_operation["TransactWriteItems"].wcu == 2 * (2 + 1)
    assert snapshot.approximations["cancelled_transactions"] == 1


def test_index_writes_follow_an_item_into_and_out_of_a_sparse_index(
    tables: tuple[DynamoDBClient, DynamoDBClient],
) -> None:
    hooked, peek = tables
    peek.put_item(TableName="t", Item=_item("a", 10))
    counter = _counted(hooked, peek)
    key = {"PK": {"S": "p"}, "SK": {"S": "a"}}
    hooked.update_item(  # enters the index: a put
        TableName="t",
        Key=key,
        UpdateExpression="SET G = :g",
        ExpressionAttributeValues={":g": {"S": "one"}},
    )
    hooked.update_item(  # its index key changes: a delete and a put
        TableName="t",
        Key=key,
        UpdateExpression="SET G = :g",
        ExpressionAttributeValues={":g": {"S": "two"}},
    )
    hooked.update_item(TableName="t", Key=key, UpdateExpression="REMOVE G")  # leaves: a delete
    usage = counter.snapshot().by_operation["UpdateItem"]
    assert (usage.wcu, usage.wcu_index) == (3, 1 + 2 + 1)


def test_snapshots_subtract_to_the_usage_between_them(
    tables: tuple[DynamoDBClient, DynamoDBClient],
) -> None:
    hooked, peek = tables
    counter = _counted(hooked, peek)
    hooked.put_item(TableName="t", Item=_item("a", 10))
    before = counter.snapshot()
    hooked.get_item(TableName="t", Key={"PK": {"S": "p"}, "SK": {"S": "a"}})
    between = counter.snapshot() - before
    assert set(between.by_operation) == {"GetItem"}
    assert between.total().rcu == 0.5
