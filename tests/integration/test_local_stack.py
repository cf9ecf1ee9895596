"""The embedded stack, driven from outside; and the moto fixes compared with moto's own code.

This module doubles as the stack's Chalice app (`app_module=__name__`): a ping route and handlers
that record what the dispatcher hands them, so these tests do not depend on the real app.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from chalice.app import Chalice
from moto import mock_aws
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.sqs import models as sqs_models

from chalicelib.auth import verify_token
from chalicelib.budget import UPLOADS_VISIBILITY_S
from infra import moto_ddb_fast, moto_routing_fast, moto_sqs_fast
from infra.local import LocalStack, PortInUse, main
from infra.testing import post_form, wait_for

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

REPO = Path(__file__).resolve().parents[2]

app = Chalice(app_name="chute-test")


@app.route("/ping")
def ping() -> dict[str, str]:
    return {"pong": "yes"}


uploads: queue.Queue[tuple[dict[str, Any], Any]] = queue.Queue()
work: queue.Queue[dict[str, Any]] = queue.Queue()


def on_upload(event: dict[str, Any], context: Any) -> dict[str, Any]:
    uploads.put((event, context))
    return {"batchItemFailures": []}


def worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failed = []
    for record in event["Records"]:
        work.put(record)
        if record["body"].startswith("fail"):
            failed.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failed}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("stack"), api_port=0, app_module=__name__) as running:
        yield running


class Clients:
    """AWS clients pointed at a stack, as a tool outside the process would make them."""

    def __init__(self, info: dict[str, Any]) -> None:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=info["region"]
        )
        url, config = info["aws_endpoint_url"], Config(s3={"addressing_style": "path"})
        self.sqs: SQSClient = session.client("sqs", endpoint_url=url, config=config)
        self.s3: S3Client = session.client("s3", endpoint_url=url, config=config)
        self.sns: SNSClient = session.client("sns", endpoint_url=url, config=config)
        self.ddb: DynamoDBClient = session.client("dynamodb", endpoint_url=url, config=config)


@pytest.fixture(scope="module")
def aws(stack: LocalStack) -> Clients:
    return Clients(stack.info)


def drain(q: queue.Queue[Any]) -> list[Any]:
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items


def test_start_writes_local_json_and_serves_the_app_on_a_free_port(stack: LocalStack) -> None:
    info = json.loads((stack.state_dir / "local.json").read_text())

    assert info == stack.info
    assert info["api_url"].startswith("http://127.0.0.1:")
    with urllib.request.urlopen(info["api_url"] + "/ping", timeout=10) as response:
        assert json.load(response) == {"pong": "yes"}
    key_path = Path(info["token_key_path"])
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert verify_token(key_path.read_text().strip(), info["token"], now=time.time()) == "dev"


def test_resources_are_provisioned(stack: LocalStack, aws: Clients) -> None:
    sqs, ddb, s3 = aws.sqs, aws.ddb, aws.s3
    info = stack.info

    for url in (info["work_queue_url"], info["work_high_queue_url"], info["uploads_queue_url"]):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["maxReceiveCount"] == 5
        assert redrive["deadLetterTargetArn"].endswith(url.rsplit("/", 1)[1] + "-dlq")
    visibility = sqs.get_queue_attributes(
        QueueUrl=info["uploads_queue_url"], AttributeNames=["VisibilityTimeout"]
    )
    assert visibility["Attributes"]["VisibilityTimeout"] == str(UPLOADS_VISIBILITY_S)
    table = ddb.describe_table(TableName="chute")["Table"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"GSI1", "GSI2"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = ddb.describe_time_to_live(TableName="chute")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    cors = s3.get_bucket_cors(Bucket="chute-local")["CORSRules"]
    assert set(cors[0]["AllowedMethods"]) == {"POST", "GET"}
    assert cors[0]["AllowedOrigins"] == ["*"]


def test_presigned_post_upload_reaches_on_upload_through_the_bucket_notification(
    aws: Clients,
) -> None:
    key = "uploads/s-1/00000/hello world.txt"
    form = aws.s3.generate_presigned_post(
        Bucket="chute-local",
        Key=key,
        Fields={"Content-Type": "text/plain"},
        Conditions=[{"Content-Type": "text/plain"}, ["content-length-range", 1, 100]],
        ExpiresIn=900,
    )

    status = post_form(form["url"], form["fields"], "hello world.txt", b"hello", "text/plain")

    assert status in (200, 201, 204)

    def upload_record() -> tuple[dict[str, Any], Any, Any] | None:
        for event, context in drain(uploads):
            for record in event["Records"]:
                for s3_record in json.loads(record["body"]).get("Records", []):  # not TestEvent
                    if unquote_plus(s3_record["s3"]["object"]["key"]) == key:
                        return record, s3_record, context
        return None

    record, s3_record, context = wait_for(upload_record, what="the upload's S3 event")
    assert record["eventSourceARN"].endswith(":chute-uploads")
    assert s3_record["eventName"].startswith("ObjectCreated:")
    assert s3_record["s3"]["object"]["size"] == 5
    assert context.function_name == "chute-dev-on_upload"


def test_worker_failures_stay_in_flight_and_successes_are_deleted(
    stack: LocalStack, aws: Clients
) -> None:
    sqs = aws.sqs
    url = stack.info["work_queue_url"]
    drain(work)
    sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(["ok-1", "fail", "ok-2"])],
    )

    def seen() -> set[str] | None:
        bodies = {r["body"] for r in list(work.queue)}
        return bodies if bodies >= {"ok-1", "fail", "ok-2"} else None

    wait_for(seen, what="the worker to see all three messages")

    def depths() -> tuple[str, str] | None:
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        in_flight = attributes["ApproximateNumberOfMessagesNotVisible"]
        return (attributes["ApproximateNumberOfMessages"], in_flight) if in_flight == "1" else None

    # (visible, in flight): nothing left to receive, only the failed message awaiting its retry.
    assert wait_for(depths, what="only the failed message in flight") == ("0", "1")


def test_events_matching_the_email_filter_land_in_the_outbox(
    stack: LocalStack, aws: Clients
) -> None:
    sns = aws.sns
    outbox = Path(stack.info["outbox_path"])

    def publish(event: str, subject: str) -> None:
        sns.publish(
            TopicArn=stack.info["topic_arn"],
            Subject=subject,
            Message=f"{subject}\nsecond line",
            MessageAttributes={"event": {"DataType": "String", "StringValue": event}},
        )

    # SNS delivers to SQS during Publish: the filtered-out one would be there before the other.
    publish("session.heartbeat", "Not for email")  # no event chute sends
    publish("session.completed", "Upload finished")

    def entries() -> list[dict[str, Any]] | None:
        lines = outbox.read_text().splitlines() if outbox.exists() else []
        found = [json.loads(line) for line in lines]
        return found if any(e["subject"] == "Upload finished" for e in found) else None

    found = wait_for(entries, what="the outbox entry")
    entry = next(e for e in found if e["subject"] == "Upload finished")
    assert entry["message"] == "Upload finished\nsecond line"
    assert entry["attributes"] == {"event": "session.completed"}
    assert isinstance(entry["received_at"], float)
    assert all(e["subject"] != "Not for email" for e in found)


def test_a_second_stack_on_the_same_api_port_fails_with_a_clear_message(
    stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = int(stack.info["api_url"].rsplit(":", 1)[1])
    expected = (
        f"Port {port} is already in use — is `make run` already running? "
        "Stop it or set CHUTE_API_PORT."
    )

    with pytest.raises(PortInUse) as raised:
        LocalStack(tmp_path, api_port=port, app_module=__name__).start()
    assert str(raised.value) == expected

    assert main(["--root", str(tmp_path), "--api-port", str(port)]) == 2
    assert capsys.readouterr().err.strip() == expected
    assert not (tmp_path / ".chute" / "local.json").exists()


def test_the_moto_fixes_are_installed_in_the_moto_process(stack: LocalStack) -> None:
    assert stack.moto is not None
    status = stack.moto.status()

    assert status["dynamodb"]["installed"] is True
    assert status["routing"]["installed"] is True
    assert status["sqs"]["installed"] is True
    assert set(status["sqs"]["fast_queues"]) >= {
        "chute-uploads",
        "chute-work",
        "chute-work-high",
        "chute-email-outbox",
        "chute-work-dlq",
    }


def test_sigterm_stops_make_run_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(Path(__file__).parent)])
    command = [sys.executable, "-m", "infra.local", "--root", str(tmp_path), "--api-port", "0"]
    process = subprocess.Popen(
        [*command, "--app", Path(__file__).stem],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    info_path = tmp_path / ".chute" / "local.json"
    try:
        info = wait_for(
            lambda: json.loads(info_path.read_text()) if info_path.exists() else None,
            timeout_s=60,
            what="local.json",
        )
        with urllib.request.urlopen(info["api_url"] + "/ping", timeout=10) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)

    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert info["token"] in out
    assert not info_path.exists()
    host, port = info["aws_endpoint_url"].removeprefix("http://").split(":")
    with pytest.raises(ConnectionRefusedError):  # the moto child process is gone
        socket.create_connection((host, int(port)), timeout=2).close()


# --- infra.moto_sqs_fast: the same script against moto's code and the patched code ---------


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _sqs_script(sqs: SQSClient, clock: FrozenClock) -> list[Any]:
    """Visibility, delay, receive counts, redrive, deletes and attribute filtering, observed."""
    trace: list[Any] = []
    dlq = sqs.create_queue(QueueName="script-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    q = sqs.create_queue(
        QueueName="script", Attributes={"VisibilityTimeout": "30", "RedrivePolicy": redrive}
    )["QueueUrl"]
    handles: dict[str, list[str]] = {}

    def receive(url: str, **extra: Any) -> list[tuple[str, int]]:
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
            **extra,
        ).get("Messages", [])
        for m in messages:
            handles.setdefault(m["Body"], []).append(m["ReceiptHandle"])
        return [(m["Body"], int(m["Attributes"]["ApproximateReceiveCount"])) for m in messages]

    def depths(url: str) -> tuple[str, ...]:
        names: list[QueueAttributeNameType] = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateNumberOfMessagesNotVisible",
        ]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return tuple(attributes[n] for n in names)

    def error_code(action: Any) -> str | None:
        try:
            action()
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return None

    sqs.send_message(QueueUrl=q, MessageBody="a")
    sqs.send_message(QueueUrl=q, MessageBody="b", DelaySeconds=10)
    sqs.send_message(QueueUrl=q, MessageBody="c")
    trace += [depths(q), receive(q), depths(q), receive(q)]
    clock.advance(10)  # b's delay is over
    trace += [receive(q)]
    sqs.delete_message(QueueUrl=q, ReceiptHandle=handles["c"][0])
    clock.advance(21)  # a's visibility timeout (30 s) is over; b's (received at 10 s) is not
    trace += [receive(q)]
    sqs.change_message_visibility(QueueUrl=q, ReceiptHandle=handles["a"][-1], VisibilityTimeout=0)
    clock.advance(0.001)
    # a has been received maxReceiveCount times: this receive moves it to the DLQ.
    trace += [receive(q), depths(q), receive(dlq)]
    # A handle from before the redrive still deletes the message, as in moto.
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=handles["a"][0])
    sqs.delete_message(QueueUrl=q, ReceiptHandle=handles["b"][0])
    trace += [error_code(lambda: sqs.delete_message(QueueUrl=q, ReceiptHandle=handles["b"][0]))]
    trace += [error_code(lambda: sqs.delete_message(QueueUrl=q, ReceiptHandle="bogus"))]
    clock.advance(100)
    trace += [receive(q), depths(q), depths(dlq)]
    sqs.send_message(
        QueueUrl=q,
        MessageBody="d",
        MessageAttributes={
            "event": {"DataType": "String", "StringValue": "x"},
            "other": {"DataType": "String", "StringValue": "y"},
        },
    )
    filtered = sqs.receive_message(QueueUrl=q, MessageAttributeNames=["event"], VisibilityTimeout=0)
    trace += [sorted(filtered["Messages"][0].get("MessageAttributes", {}))]
    # Two receives with visibility 0 (the message stays visible), then the redrive on the third.
    trace += [receive(q, VisibilityTimeout=0), receive(q), depths(q), receive(dlq)]
    sqs.send_message(QueueUrl=q, MessageBody="e")
    sqs.purge_queue(QueueUrl=q)
    trace += [depths(q), receive(q)]
    return trace


EXPECTED_TRACE = [
    ("2", "1", "0"),
    [("a", 1), ("c", 1)],
    ("0", "1", "2"),
    [],
    [("b", 1)],
    [("a", 2)],
    [],
    ("0", "0", "1"),
    [("a", 3)],
    None,  # deleting twice is fine
    "ReceiptHandleIsInvalid",
    [],
    ("0", "0", "0"),
    ("0", "0", "0"),
    ["event"],
    [("d", 2)],
    [],
    ("0", "0", "0"),
    [("d", 3)],
    ("0", "0", "0"),
    [],
]


@pytest.mark.parametrize("patched", [False, True], ids=["moto", "moto_sqs_fast"])
def test_fast_sqs_keeps_moto_semantics(patched: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FrozenClock()
    monkeypatch.setattr(sqs_models, "unix_time", lambda dt=None: clock.now)
    monkeypatch.setattr(sqs_models, "unix_time_millis", lambda dt=None: clock.now * 1000)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # Other tests in this process (the in-process stack) may have left the fix installed.
    if patched:
        moto_sqs_fast.install()
    else:
        moto_sqs_fast.uninstall()
    try:
        with mock_aws():
            trace = _sqs_script(boto3.client("sqs", region_name="us-east-1"), clock)
            assert moto_sqs_fast.status()["fast_queues"] == (
                ["script", "script-dlq"] if patched else []
            )
    finally:
        moto_sqs_fast.uninstall()

    assert trace == EXPECTED_TRACE


def test_fifo_queues_keep_moto_code() -> None:
    moto_sqs_fast.install()
    try:
        with mock_aws():
            sqs = boto3.client(
                "sqs",
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            url = sqs.create_queue(
                QueueName="ordered.fifo",
                Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
            )["QueueUrl"]
            for body in ("1", "1", "2"):  # the second "1" is a duplicate
                sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g")
            bodies = [
                m["Body"]
                for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
            ]
            assert moto_sqs_fast.status()["fast_queues"] == []
    finally:
        moto_sqs_fast.uninstall()
    assert bodies == ["1", "2"]


# --- infra.moto_ddb_fast: transactions against moto's code and the patched code ---------------


def _ddb_script(ddb: DynamoDBClient) -> list[Any]:
    """Committed and cancelled transactions, and what the table holds after each."""
    ddb.create_table(
        TableName="t",
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
    for sk, status in (("META", "active"), ("F#1", "pending"), ("F#2", "running")):
        ddb.put_item(TableName="t", Item={"PK": {"S": "S#1"}, "SK": {"S": sk}, "s": {"S": status}})

    def key(sk: str) -> dict[str, Any]:
        return {"PK": {"S": "S#1"}, "SK": {"S": sk}}

    def transition(sk: str, old: str, new: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": "t",
                "Key": key(sk),
                "UpdateExpression": "SET s = :new",
                "ConditionExpression": "s = :old",
                "ExpressionAttributeValues": {":new": {"S": new}, ":old": {"S": old}},
            }
        }

    bump = {
        "Update": {
            "TableName": "t",
            "Key": key("META"),
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }

    def transact(*items: Any) -> Any:
        try:
            ddb.transact_write_items(TransactItems=list(items))
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons", [])
            return exc.response["Error"]["Code"], [r.get("Code") for r in reasons]
        return "ok"

    def table() -> list[dict[str, str]]:
        items = ddb.scan(TableName="t")["Items"]
        return sorted(
            ({k: str(next(iter(v.values()))) for k, v in i.items()} for i in items),
            key=lambda i: i["SK"],
        )

    trace: list[Any] = [transact(bump, transition("F#1", "pending", "running")), table()]
    # The META update applies first; the stale transition fails: both must be undone.
    trace += [transact(bump, transition("F#1", "pending", "running")), table()]
    new_item = {"Put": {"TableName": "t", "Item": {**key("F#3"), "s": {"S": "pending"}}}}
    gone = {"Delete": {"TableName": "t", "Key": key("F#2")}}
    replaced = {"Put": {"TableName": "t", "Item": {**key("META"), "s": {"S": "replaced"}}}}
    trace += [transact(new_item, gone, replaced, transition("F#1", "done", "x")), table()]
    trace += [transact(bump, bump), table()]  # two operations on one item
    return trace


EXPECTED_DDB_TRACE = [
    "ok",
    [
        {"PK": "S#1", "SK": "F#1", "s": "running"},
        {"PK": "S#1", "SK": "F#2", "s": "running"},
        {"PK": "S#1", "SK": "META", "n": "1", "s": "active"},
    ],
    ("TransactionCanceledException", ["None", "ConditionalCheckFailed"]),
    [
        {"PK": "S#1", "SK": "F#1", "s": "running"},
        {"PK": "S#1", "SK": "F#2", "s": "running"},
        {"PK": "S#1", "SK": "META", "n": "1", "s": "active"},
    ],
    ("TransactionCanceledException", ["None", "None", "None", "ConditionalCheckFailed"]),
    [
        {"PK": "S#1", "SK": "F#1", "s": "running"},
        {"PK": "S#1", "SK": "F#2", "s": "running"},
        {"PK": "S#1", "SK": "META", "n": "1", "s": "active"},
    ],
    ("ValidationException", []),
    [
        {"PK": "S#1", "SK": "F#1", "s": "running"},
        {"PK": "S#1", "SK": "F#2", "s": "running"},
        {"PK": "S#1", "SK": "META", "n": "1", "s": "active"},
    ],
]


@pytest.mark.parametrize("patched", [False, True], ids=["moto", "moto_ddb_fast"])
def test_fast_transactions_keep_moto_semantics(patched: bool) -> None:
    if patched:
        moto_ddb_fast.install()
    try:
        with mock_aws():
            session = boto3.Session(
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                region_name="us-east-1",
            )
            trace = _ddb_script(session.client("dynamodb"))
    finally:
        moto_ddb_fast.uninstall()

    assert trace == EXPECTED_DDB_TRACE


def test_cached_routing_picks_the_backends_moto_picks() -> None:
    hosts = [
        None,
        "moto_api",
        "sqs",
        "sqs.us-east-1.amazonaws.com",
        "s3.amazonaws.com",
        "chute-local.s3.amazonaws.com",
        "dynamodb.us-east-1.amazonaws.com",
        "sns.us-east-1.amazonaws.com",
        "127.0.0.1:5000",
    ]
    application = DomainDispatcherApplication(create_backend_app)
    expected = [application.get_backend_for_host(host) for host in hosts]
    moto_routing_fast.install()
    try:
        twice = [[application.get_backend_for_host(host) for host in hosts] for _ in range(2)]
    finally:
        moto_routing_fast.uninstall()

    assert twice == [expected, expected]
    assert expected[3:8] == ["sqs", "s3", "s3", "dynamodb", "sns"]
