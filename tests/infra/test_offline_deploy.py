"""`make deploy`, offline: the packaged template translated from SAM and created as a stack in
moto's CloudFormation (infra.offline_deploy); the resources exist with their settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.cloudformation.parsing import resource_class_from_type

from chalicelib.budget import UPLOADS_VISIBILITY_S, WORK_VISIBILITY_S
from infra.offline_deploy import BRIDGED, Deployed, deploy, translate
from infra.provision import provision
from infra.resources import LOCAL
from tests.infra.conftest import Packaged

EMAIL = "ops@example.com"


@dataclass(frozen=True)
class Stack:
    session: boto3.Session
    deployed: Deployed

    def id(self, logical: str) -> str:
        return self.deployed.physical[logical]


@pytest.fixture(scope="module")
def stack(packaged: Packaged) -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.setenv(name, "testing")
        with mock_aws():
            session = boto3.Session(region_name="us-east-1")
            deployed = deploy(
                packaged.template,
                session,
                "chute-prod",
                {"NotificationEmail": EMAIL, "ModelApiKey": "sk-test"},
                deployment_zip=packaged.deployment_zip,
            )
            yield Stack(session, deployed)


def test_moto_creates_every_type_but_the_bridged_ones(packaged: Packaged) -> None:
    types = {
        r["Type"]
        for r in translate(packaged.template, boto3.Session(region_name="us-east-1"), "s3://a/b")[
            "Resources"
        ].values()
    }
    unsupported = {t for t in types if resource_class_from_type(t) is None}

    # moto creates deployments, but not of an API whose methods the bridge makes after the stack.
    assert unsupported == set(BRIDGED) - {"AWS::ApiGateway::Deployment"}


def test_the_stack_is_created_with_its_outputs(stack: Stack) -> None:
    outputs = stack.deployed.outputs
    bucket = "chute-prod-123456789012-us-east-1"

    assert outputs["BucketName"] == bucket
    assert outputs["EndpointURL"] == (
        f"https://{outputs['RestAPIId']}.execute-api.us-east-1.amazonaws.com/api/"
    )
    assert outputs["UserPoolId"] == stack.id("UserPool")
    assert outputs["TableName"] == stack.id("Table")


def test_the_bucket_is_private_encrypted_and_notifies_the_uploads_queue(stack: Stack) -> None:
    s3 = stack.session.client("s3")
    bucket = stack.deployed.outputs["BucketName"]
    uploads_arn = stack.session.client("sqs").get_queue_attributes(
        QueueUrl=stack.id("UploadsQueue"), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    (queue,) = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    (cors,) = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]

    assert (queue["QueueArn"], queue["Events"]) == (uploads_arn, ["s3:ObjectCreated:*"])
    assert queue["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "uploads/"}]
    assert sorted(r["Filter"]["Prefix"] if "Filter" in r else r["Prefix"] for r in rules) == [
        "checkpoints/",
        "inputs/",
        "plans/",
        "results/",
        "uploads/",
    ]
    assert cors["AllowedOrigins"] == [stack.deployed.outputs["EndpointURL"].removesuffix("/api/")]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_queues_have_their_visibility_redrive_and_the_uploads_policy(stack: Stack) -> None:
    sqs = stack.session.client("sqs")

    def attributes(logical: str) -> dict[str, str]:
        answer = sqs.get_queue_attributes(QueueUrl=stack.id(logical), AttributeNames=["All"])
        return {str(k): v for k, v in answer["Attributes"].items()}

    uploads, work, high = (attributes(q) for q in ("UploadsQueue", "WorkQueue", "WorkHighQueue"))
    (statement,) = json.loads(uploads["Policy"])["Statement"]

    assert [int(q["VisibilityTimeout"]) for q in (uploads, work, high)] == [
        UPLOADS_VISIBILITY_S,
        WORK_VISIBILITY_S,
        WORK_VISIBILITY_S,
    ]
    assert json.loads(work["RedrivePolicy"]) == {
        "deadLetterTargetArn": attributes("WorkDlq")["QueueArn"],
        "maxReceiveCount": 5,
    }
    assert statement["Condition"]["ArnEquals"] == {
        "aws:SourceArn": "arn:aws:s3:::chute-prod-123456789012-us-east-1"
    }


def test_the_table_has_both_indexes_on_demand(stack: Stack) -> None:
    table = stack.session.client("dynamodb").describe_table(TableName=stack.id("Table"))["Table"]

    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert sorted(i["IndexName"] for i in table["GlobalSecondaryIndexes"]) == ["GSI1", "GSI2"]


def test_functions_have_their_environment_and_roles(stack: Stack) -> None:
    functions = stack.session.client("lambda")
    worker = functions.get_function(FunctionName=stack.id("Worker"))["Configuration"]
    api = functions.get_function(FunctionName=stack.id("APIHandler"))["Configuration"]
    variables = worker["Environment"]["Variables"]

    assert (worker["Handler"], worker["Timeout"], worker["MemorySize"]) == ("app.worker", 300, 1024)
    assert variables["CHUTE_WORK_QUEUE_URL"] == stack.id("WorkQueue")
    assert variables["CHUTE_MODEL_API_KEY_SECRET_ARN"] == stack.id("ModelApiKeySecret")
    assert variables["CHUTE_BUCKET"] == "chute-prod-123456789012-us-east-1"
    assert worker["Role"].endswith(f"/{stack.id('WorkerRole')}")
    assert "CHUTE_MODEL" not in api["Environment"]["Variables"]


def test_event_source_mappings_report_batch_item_failures(stack: Stack) -> None:
    mappings = stack.session.client("lambda").list_event_source_mappings()["EventSourceMappings"]
    by_function = sorted(
        (m["FunctionArn"].rsplit(":", 1)[1].split("-")[2], m["BatchSize"]) for m in mappings
    )

    assert by_function == [("OnUpload", 1), ("Worker", 10), ("Worker", 10)]


def test_the_user_pool_has_the_admin_group_and_the_api_its_authorizer(stack: Stack) -> None:
    idp = stack.session.client("cognito-idp")
    apigateway = stack.session.client("apigateway")
    api_id = stack.deployed.outputs["RestAPIId"]
    groups = idp.list_groups(UserPoolId=stack.id("UserPool"))["Groups"]
    (authorizer,) = apigateway.get_authorizers(restApiId=api_id)["items"]
    resources = {r["path"]: r for r in apigateway.get_resources(restApiId=api_id)["items"]}

    def authorization(path: str, method: str) -> str:
        answer = apigateway.get_method(
            restApiId=api_id, resourceId=resources[path]["id"], httpMethod=method
        )
        return str(answer["authorizationType"])

    assert [g["GroupName"] for g in groups] == ["admin"]
    assert authorizer["providerARNs"] == [
        idp.describe_user_pool(UserPoolId=stack.id("UserPool"))["UserPool"]["Arn"]
    ]
    assert authorization("/", "GET") == "NONE"
    assert authorization("/static/app.js", "GET") == "NONE"
    assert authorization("/sessions", "POST") == "COGNITO_USER_POOLS"
    assert authorization("/sessions/{sid}", "OPTIONS") == "NONE"
    assert authorization("/admin/stats", "GET") == "COGNITO_USER_POOLS"


def test_alarms_and_the_operators_alarm_subscription_exist(stack: Stack) -> None:
    alarms = stack.session.client("cloudwatch").describe_alarms()["MetricAlarms"]
    subscriptions = stack.session.client("sns").list_subscriptions()["Subscriptions"]

    assert len(alarms) == 10
    assert {a["AlarmActions"][0] for a in alarms} == {stack.id("AlarmTopic")}
    assert [(s["TopicArn"], s["Protocol"], s["Endpoint"]) for s in subscriptions] == [
        (stack.id("AlarmTopic"), "email", EMAIL)
    ]


def test_the_deployed_stack_and_the_embedded_stacks_provisioning_agree(stack: Stack) -> None:
    """Both come from infra/resources.py: the settings each side can compare are equal."""
    local = provision(stack.session, None, LOCAL)
    sqs, ddb = stack.session.client("sqs"), stack.session.client("dynamodb")
    s3 = stack.session.client("s3")

    def queue(url: str) -> tuple[str, int | None]:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes.get("RedrivePolicy", "{}"))
        return attributes["VisibilityTimeout"], redrive.get("maxReceiveCount")

    def table(name: str) -> tuple[Any, ...]:
        described = ddb.describe_table(TableName=name)["Table"]
        indexes = sorted(
            (i["IndexName"], str(i["KeySchema"]), str(i["Projection"]))
            for i in described["GlobalSecondaryIndexes"]
        )
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        return (
            str(described["KeySchema"]),
            sorted(str(a) for a in described["AttributeDefinitions"]),
            indexes,
            ttl.get("AttributeName"),
        )

    def notification(bucket: str) -> list[tuple[str, str]]:
        configured = s3.get_bucket_notification_configuration(Bucket=bucket)
        return [(str(q["Events"]), str(q["Filter"])) for q in configured["QueueConfigurations"]]

    for name, logical in (
        (LOCAL.uploads_queue.name, "UploadsQueue"),
        (LOCAL.work_queue.name, "WorkQueue"),
        (LOCAL.work_high_queue.name, "WorkHighQueue"),
    ):
        assert queue(local.queue_urls[name]) == queue(stack.id(logical)), name
    assert table(local.table) == table(stack.id("Table"))
    assert notification(local.bucket) == notification(stack.deployed.outputs["BucketName"])


def test_the_table_expires_sessions_and_keeps_point_in_time_recovery(stack: Stack) -> None:
    ddb = stack.session.client("dynamodb")
    ttl = ddb.describe_time_to_live(TableName=stack.id("Table"))["TimeToLiveDescription"]
    backups = ddb.describe_continuous_backups(TableName=stack.id("Table"))

    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    recovery = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"


def test_the_events_topic_and_the_queues_are_encrypted(stack: Stack) -> None:
    sns, sqs = stack.session.client("sns"), stack.session.client("sqs")
    topic = sns.get_topic_attributes(TopicArn=stack.id("EventsTopic"))["Attributes"]
    queues = [
        sqs.get_queue_attributes(QueueUrl=stack.id(q), AttributeNames=["SqsManagedSseEnabled"])[
            "Attributes"
        ]["SqsManagedSseEnabled"]
        for q in ("UploadsQueue", "UploadsDlq", "WorkQueue", "WorkDlq", "WorkHighQueue")
    ]

    assert topic["KmsMasterKeyId"] == "alias/aws/sns"
    assert queues == ["true"] * 5
