"""The AWS template as `make package` writes it: what each resource is configured to do, what each
function may do, and that cfn-lint finds nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bench import cold_start
from chalicelib.budget import (
    API_TIMEOUT_S,
    SWEEPER_TIMEOUT_S,
    UPLOAD_TIMEOUT_S,
    VISIBILITY_FACTOR,
    WORKER_TIMEOUT_S,
)
from chalicelib.config import CoreSettings
from chalicelib.jobs import BUILT_IN
from infra import template
from infra.resources import OBJECT_DAYS, SESSION_DAYS
from infra.template import (
    API,
    CHALICE_DIR,
    FUNCTIONS,
    ON_UPLOAD,
    SWEEPER,
    WORKER,
    Function,
    PackageError,
    policies,
)
from tests.infra.conftest import Packaged

QUEUES = ("UploadsQueue", "WorkQueue", "WorkHighQueue")
DLQS = ("UploadsDlq", "WorkDlq", "WorkHighDlq")
ARN = {name: {"Fn::GetAtt": [name, "Arn"]} for name in (*QUEUES, *DLQS)}


def _statements(packaged: Packaged, function: Function) -> list[dict[str, Any]]:
    (policy,) = packaged.properties(function.role)["Policies"]
    statements: list[dict[str, Any]] = []
    for statement in policy["PolicyDocument"]["Statement"]:
        # A statement that applies under a condition: {"Fn::If": [cond, statement, NoValue]}.
        statements.append(statement["Fn::If"][1] if "Fn::If" in statement else statement)
    return statements


def _grants(packaged: Packaged, function: Function) -> dict[str, list[Any]]:
    """Every action the function may take → the resources it may take it on."""
    grants: dict[str, list[Any]] = {}
    for statement in _statements(packaged, function):
        resources = statement["Resource"]
        for action in statement["Action"]:
            grants.setdefault(action, []).extend(
                resources if isinstance(resources, list) else [resources]
            )
    return grants


def test_cfn_lint_finds_nothing(packaged: Packaged) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(packaged.template_path)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert (done.returncode, done.stdout) == (0, "")


def test_the_deployment_package_is_small_and_carries_no_sdk_or_dev_tools(
    packaged: Packaged,
) -> None:
    with zipfile.ZipFile(packaged.deployment_zip) as archive:
        top = {name.split("/", 1)[0] for name in archive.namelist()}

    assert packaged.deployment_zip.stat().st_size <= 10 * 1024 * 1024
    assert {"app.py", "chalicelib", "pydantic", "aws_lambda_powertools"} <= top
    assert top.isdisjoint({"boto3", "botocore", "moto", "pytest", "mypy", "ruff", "infra", "tests"})


def test_each_function_deploys_the_time_budgets_timeout(packaged: Packaged) -> None:
    timeouts = {f.key: packaged.properties(f.logical_id)["Timeout"] for f in FUNCTIONS}

    assert timeouts == {
        "api": API_TIMEOUT_S,
        "on_upload": UPLOAD_TIMEOUT_S,
        "worker": WORKER_TIMEOUT_S,
        "sweeper": SWEEPER_TIMEOUT_S,
    }


@pytest.mark.parametrize(
    ("queue", "consumer"),
    [("UploadsQueue", ON_UPLOAD), ("WorkQueue", WORKER), ("WorkHighQueue", WORKER)],
)
def test_a_queue_hides_a_message_six_times_its_consumers_timeout_and_dead_letters_it_late(
    packaged: Packaged, queue: str, consumer: Function
) -> None:
    properties = packaged.properties(queue)
    max_attempts = max(BUILT_IN.get(n).max_attempts for n in BUILT_IN.names)

    assert properties["VisibilityTimeout"] == (
        VISIBILITY_FACTOR * packaged.properties(consumer.logical_id)["Timeout"]
    )
    assert properties["RedrivePolicy"]["deadLetterTargetArn"] == ARN[queue.replace("Queue", "Dlq")]
    assert properties["RedrivePolicy"]["maxReceiveCount"] >= max_attempts + 2
    assert properties["SqsManagedSseEnabled"] is True


def test_dead_letter_queues_are_encrypted_and_keep_messages_14_days(packaged: Packaged) -> None:
    for dlq in DLQS:
        assert packaged.properties(dlq) == {
            "MessageRetentionPeriod": 1209600,
            "SqsManagedSseEnabled": True,
        }


def test_event_source_mappings_report_partial_failures_and_drain_work_high_first(
    packaged: Packaged,
) -> None:
    mappings = {
        logical: r["Properties"]
        for logical, r in packaged.template["Resources"].items()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    parameters = packaged.template["Parameters"]

    assert {
        logical: (
            p["EventSourceArn"],
            p["FunctionName"],
            p["BatchSize"],
            p["MaximumBatchingWindowInSeconds"],
            p["FunctionResponseTypes"],
            p["ScalingConfig"],
        )
        for logical, p in mappings.items()
    } == {
        "OnUploadFromUploads": (
            ARN["UploadsQueue"],
            {"Ref": "OnUpload"},
            1,
            0,
            ["ReportBatchItemFailures"],
            {"MaximumConcurrency": {"Ref": "UploadsConcurrency"}},
        ),
        "WorkerFromWork": (
            ARN["WorkQueue"],
            {"Ref": "Worker"},
            10,
            1,
            ["ReportBatchItemFailures"],
            {"MaximumConcurrency": {"Ref": "WorkConcurrency"}},
        ),
        "WorkerFromWorkHigh": (
            ARN["WorkHighQueue"],
            {"Ref": "Worker"},
            10,
            0,
            ["ReportBatchItemFailures"],
            {"MaximumConcurrency": {"Ref": "WorkHighConcurrency"}},
        ),
    }
    assert (
        parameters["WorkHighConcurrency"]["Default"] == 2 * parameters["WorkConcurrency"]["Default"]
    )


def test_the_bucket_is_private_encrypted_and_expires_every_prefix(packaged: Packaged) -> None:
    properties = packaged.properties("Bucket")
    rules = properties["LifecycleConfiguration"]["Rules"]

    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert {(r["Prefix"], r["ExpirationInDays"], r["Status"]) for r in rules} == {
        (prefix, OBJECT_DAYS, "Enabled")
        for prefix in ("uploads/", "inputs/", "plans/", "results/", "checkpoints/")
    }
    assert CoreSettings.model_fields["session_ttl_days"].default == SESSION_DAYS


def test_the_bucket_allows_browsers_only_from_the_apis_origin_and_configured_ones(
    packaged: Packaged,
) -> None:
    (rule,) = packaged.properties("Bucket")["CorsConfiguration"]["CorsRules"]
    api_origin = "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}"

    assert rule["AllowedMethods"] == ["POST", "GET"]
    assert rule["AllowedOrigins"] == {
        "Fn::If": [
            "HasAllowedOrigins",
            {"Fn::Split": [",", {"Fn::Sub": api_origin + ",${AllowedOrigins}"}]},
            [{"Fn::Sub": api_origin}],
        ]
    }


def test_uploads_notify_the_uploads_queue_which_lets_only_this_bucket_send(
    packaged: Packaged,
) -> None:
    bucket = packaged.resource("Bucket")
    policy = packaged.properties("UploadsQueuePolicy")
    (statement,) = policy["PolicyDocument"]["Statement"]

    assert bucket["Properties"]["NotificationConfiguration"] == {
        "QueueConfigurations": [
            {
                "Event": "s3:ObjectCreated:*",
                "Queue": ARN["UploadsQueue"],
                "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "uploads/"}]}},
            }
        ]
    }
    assert bucket["DependsOn"] == ["UploadsQueuePolicy"]
    assert policy["Queues"] == [{"Ref": "UploadsQueue"}]
    assert (statement["Principal"], statement["Action"], statement["Resource"]) == (
        {"Service": "s3.amazonaws.com"},
        "sqs:SendMessage",
        ARN["UploadsQueue"],
    )
    assert statement["Condition"]["ArnEquals"] == {
        "aws:SourceArn": {
            "Fn::Sub": "arn:${AWS::Partition}:s3:::chute-${Stage}-${AWS::AccountId}-${AWS::Region}"
        }
    }


def test_the_table_is_on_demand_with_both_indexes_ttl_and_point_in_time_recovery(
    packaged: Packaged,
) -> None:
    properties = packaged.properties("Table")

    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert [(i["IndexName"], i["KeySchema"]) for i in properties["GlobalSecondaryIndexes"]] == [
        (name, [{"AttributeName": f"{name}PK", "KeyType": "HASH"},
                {"AttributeName": f"{name}SK", "KeyType": "RANGE"}])
        for name in ("GSI1", "GSI2")
    ]  # fmt: skip
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert packaged.resource("Table")["DeletionPolicy"] == "Retain"


def test_events_are_encrypted_and_only_alarms_go_to_the_operators_address(
    packaged: Packaged,
) -> None:
    subscriptions = {
        logical: r
        for logical, r in packaged.template["Resources"].items()
        if r["Type"] == "AWS::SNS::Subscription"
    }

    assert packaged.properties("EventsTopic") == {"KmsMasterKeyId": "alias/aws/sns"}
    # People's own subscriptions are made by the API; nobody reads everyone's events.
    assert list(subscriptions) == ["AlarmEmailSubscription"]
    assert subscriptions["AlarmEmailSubscription"]["Condition"] == "HasNotificationEmail"
    assert subscriptions["AlarmEmailSubscription"]["Properties"]["TopicArn"] == {
        "Ref": "AlarmTopic"
    }


def test_the_sweeper_runs_every_minute(packaged: Packaged) -> None:
    events = packaged.properties("Sweeper")["Events"]

    assert events == {
        "SweeperEvent": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}
    }


def test_alarms_watch_dead_letters_queue_age_and_function_errors(packaged: Packaged) -> None:
    alarms = {
        logical: r["Properties"]
        for logical, r in packaged.template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }

    watched = {(a["MetricName"], json.dumps(a["Dimensions"][0]["Value"])) for a in alarms.values()}

    assert watched == {
        *(("ApproximateNumberOfMessagesVisible", f'{{"Fn::GetAtt": ["{q}", "QueueName"]}}')
          for q in DLQS),
        *(("ApproximateAgeOfOldestMessage", f'{{"Fn::GetAtt": ["{q}", "QueueName"]}}')
          for q in QUEUES),
        *(("Errors", f'{{"Ref": "{f.logical_id}"}}') for f in FUNCTIONS),
    }  # fmt: skip
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms.values())


def test_every_route_but_the_pages_files_needs_a_cognito_token(packaged: Packaged) -> None:
    import app

    body = packaged.properties("RestAPI")["DefinitionBody"]
    secured = {
        (path, method.upper())
        for path, methods in body["paths"].items()
        for method, operation in methods.items()
        if operation.get("security") == [{"CognitoUsers": []}]
    }
    routes = {(path, method) for path, entries in app.app.routes.items() for method in entries}
    page = {("/", "GET"), ("/static/app.js", "GET"), ("/static/app.css", "GET")}

    assert ("/sessions", "POST") in routes
    assert page <= routes
    assert secured == {(path, method) for path, method in routes if path not in dict(page)}
    assert body["securityDefinitions"]["CognitoUsers"]["x-amazon-apigateway-authorizer"] == {
        "type": "cognito_user_pools",
        "providerARNs": [{"Fn::GetAtt": ["UserPool", "Arn"]}],
    }


def test_the_user_pool_has_an_admin_group(packaged: Packaged) -> None:
    assert packaged.properties("AdminGroup") == {
        "GroupName": "admin",
        "UserPoolId": {"Ref": "UserPool"},
        "Description": "chute's operators: /admin/stats and the DLQ redrive.",
    }
    assert packaged.properties("UserPoolClient")["UserPoolId"] == {"Ref": "UserPool"}


def test_the_model_key_lives_in_secrets_manager_and_only_the_worker_reads_it(
    packaged: Packaged,
) -> None:
    secret = packaged.resource("ModelApiKeySecret")
    readers = {f.key for f in FUNCTIONS if "secretsmanager:GetSecretValue" in _grants(packaged, f)}

    assert secret["Properties"]["SecretString"] == {"Ref": "ModelApiKey"}
    assert packaged.template["Parameters"]["ModelApiKey"]["NoEcho"] is True
    assert readers == {"worker"}
    assert _grants(packaged, WORKER)["secretsmanager:GetSecretValue"] == [
        {"Ref": "ModelApiKeySecret"}
    ]
    assert packaged.properties("Worker")["Environment"]["Variables"][
        "CHUTE_MODEL_API_KEY_SECRET_ARN"
    ] == {"Fn::If": ["HasModelApiKey", {"Ref": "ModelApiKeySecret"}, {"Ref": "AWS::NoValue"}]}


def test_the_policy_files_are_the_rendered_policies(packaged: Packaged) -> None:
    for function in FUNCTIONS:
        on_disk = json.loads((CHALICE_DIR / function.policy_file).read_text(encoding="utf-8"))
        (deployed,) = packaged.properties(function.role)["Policies"]

        assert on_disk == policies()[function.key]
        assert deployed["PolicyDocument"] == on_disk
        assert packaged.properties(function.logical_id)["Role"] == {
            "Fn::GetAtt": [function.role, "Arn"]
        }


def test_no_policy_grants_every_action_or_any_resource_but_cloudwatchs_metric_read(
    packaged: Packaged,
) -> None:
    for function in FUNCTIONS:
        for action, resources in _grants(packaged, function).items():
            assert "*" not in action, (function.key, action)
            if action != "cloudwatch:GetMetricStatistics":
                assert "*" not in resources, (function.key, action)


def test_each_function_may_take_only_the_actions_its_code_calls(packaged: Packaged) -> None:
    common = {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:BatchWriteItem",
        "s3:ListBucket",
        "sqs:SendMessage",
        "sns:Publish",
    }
    s3 = {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}
    consume = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    operator = {"sqs:GetQueueAttributes", "cloudwatch:GetMetricStatistics"}

    assert {f.key: set(_grants(packaged, f)) for f in FUNCTIONS} == {
        "api": common
        | s3
        | operator
        | {"sns:Subscribe", "sns:Unsubscribe", "sns:SetSubscriptionAttributes"},
        "on_upload": common | s3 | consume,
        "worker": common | s3 | consume | {"secretsmanager:GetSecretValue", "bedrock:InvokeModel"},
        "sweeper": common | s3 | operator | {"sqs:ReceiveMessage", "sqs:DeleteMessage"},
    }


def test_queue_permissions_name_only_the_queues_each_function_uses(packaged: Packaged) -> None:
    work = [ARN["WorkQueue"], ARN["WorkHighQueue"]]
    api, on_upload = _grants(packaged, API), _grants(packaged, ON_UPLOAD)
    worker, sweeper = _grants(packaged, WORKER), _grants(packaged, SWEEPER)

    assert [g["sqs:SendMessage"] for g in (api, on_upload, worker, sweeper)] == [work] * 4
    assert sorted(map(str, api["sqs:GetQueueAttributes"])) == sorted(map(str, ARN.values()))
    assert sorted(map(str, sweeper["sqs:GetQueueAttributes"])) == sorted(map(str, ARN.values()))
    assert on_upload["sqs:ReceiveMessage"] == [ARN["UploadsQueue"]]
    assert worker["sqs:ReceiveMessage"] == work
    assert sweeper["sqs:ReceiveMessage"] == [ARN[q] for q in DLQS]
    assert sweeper["sqs:DeleteMessage"] == [ARN[q] for q in DLQS]


def test_object_permissions_follow_the_prefixes_each_function_touches(packaged: Packaged) -> None:
    def prefixes(function: Function, action: str) -> set[str]:
        return {
            r["Fn::Sub"].rsplit("}/", 1)[1].removesuffix("*")
            for r in _grants(packaged, function)[action]
        }

    assert prefixes(API, "s3:PutObject") == {"uploads/", "results/"}
    # Exports read results, and a prompts export each row's input (inputs/ or the inline batch).
    assert prefixes(API, "s3:GetObject") == {"results/", "inputs/", "uploads/"}
    assert prefixes(ON_UPLOAD, "s3:GetObject") == {"uploads/", "inputs/", "plans/"}
    assert prefixes(ON_UPLOAD, "s3:PutObject") == {"inputs/", "plans/"}
    assert prefixes(WORKER, "s3:PutObject") == {"results/", "checkpoints/", "uploads/", "plans/"}
    assert prefixes(SWEEPER, "s3:PutObject") == {"inputs/", "plans/", "uploads/"}


def test_each_functions_environment_is_a_valid_settings_of_its_kind(
    packaged: Packaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    for function in FUNCTIONS:
        variables = packaged.properties(function.logical_id)["Environment"]["Variables"]
        for name, value in variables.items():
            # Each CloudFormation reference stands for a string at deploy time.
            monkeypatch.setenv(name, value if isinstance(value, str) else f"<{name}>")
        settings = function.settings()
        for name in variables:
            monkeypatch.delenv(name)

        assert settings.bucket == "<CHUTE_BUCKET>", function.key
        assert variables["CHUTE_TABLE"] == {"Ref": "Table"}
        assert variables["POWERTOOLS_SERVICE_NAME"] == "chute"


def test_the_api_gets_every_queue_and_no_model_settings(packaged: Packaged) -> None:
    variables = packaged.properties("APIHandler")["Environment"]["Variables"]

    assert set(variables) == {
        "POWERTOOLS_SERVICE_NAME",
        "CHUTE_REGION",
        "CHUTE_BUCKET",
        "CHUTE_TABLE",
        "CHUTE_TOPIC_ARN",
        "CHUTE_UPLOADS_QUEUE_URL",
        "CHUTE_WORK_QUEUE_URL",
        "CHUTE_WORK_HIGH_QUEUE_URL",
        "CHUTE_UPLOADS_DLQ_URL",
        "CHUTE_WORK_DLQ_URL",
        "CHUTE_WORK_HIGH_DLQ_URL",
        "CHUTE_EMAIL_TOPIC_ARN",
        "CHUTE_AUTH_MODE",
    }


def test_only_the_api_keeps_email_subscriptions_and_only_the_sweeper_prints_metrics(
    packaged: Packaged,
) -> None:
    api = _grants(packaged, API)
    variables = {
        f.key: packaged.properties(f.logical_id)["Environment"]["Variables"] for f in FUNCTIONS
    }

    assert api["sns:Subscribe"] == [{"Ref": "EventsTopic"}]
    assert api["sns:Unsubscribe"] == [{"Ref": "EventsTopic"}, {"Fn::Sub": "${EventsTopic}:*"}]
    assert {k for k, v in variables.items() if "CHUTE_EMAIL_TOPIC_ARN" in v} == {"api"}
    assert {k for k, v in variables.items() if v.get("CHUTE_OPERATOR_METRICS") == "true"} == {
        "sweeper"
    }
    assert variables["sweeper"]["CHUTE_UPLOADS_QUEUE_URL"] == {"Ref": "UploadsQueue"}
    # Who calls is read from the Cognito authorizer's claims on AWS, never from local tokens.
    assert variables["api"]["CHUTE_AUTH_MODE"] == "cognito"


def test_the_package_ships_bytecode_so_a_cold_start_compiles_nothing(packaged: Packaged) -> None:
    with zipfile.ZipFile(packaged.deployment_zip) as archive:
        names = set(archive.namelist())
    measured = cold_start.measure_package_imports(packaged.deployment_zip, runs=1)

    tag = sys.implementation.cache_tag  # the functions' runtime is this interpreter's version
    assert f"__pycache__/app.{tag}.pyc" in names
    assert f"chalicelib/__pycache__/worker.{tag}.pyc" in names
    assert f"pydantic/__pycache__/main.{tag}.pyc" in names
    # Lambda's /var/task is read-only: without it every module is compiled at each cold start.
    assert measured["import_app_without_bytecode_s"] > measured["import_app_s"] > 0


def test_api_gateways_own_answers_use_chutes_error_shape(packaged: Packaged) -> None:
    body = packaged.properties("RestAPI")["DefinitionBody"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    missing = responses["MISSING_AUTHENTICATION_TOKEN"]

    assert {kind: r["statusCode"] for kind, r in responses.items()} == {
        "MISSING_AUTHENTICATION_TOKEN": "404",
        "UNAUTHORIZED": "401",
        "ACCESS_DENIED": "403",
    }
    assert json.loads(missing["responseTemplates"]["application/json"])["error"]["code"] == (
        "route_not_found"
    )


def test_a_package_that_chalice_cannot_build_fails_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_pypi(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], 1, "", "Could not install dependencies:\npydantic")

    def too_slow(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired("chalice", 600)

    monkeypatch.setattr(subprocess, "run", no_pypi)
    with pytest.raises(PackageError, match=r"exited 1 \(it needs Lambda wheels from PyPI"):
        template.chalice_package("prod", tmp_path / "out", project=tmp_path / "project")
    monkeypatch.setattr(subprocess, "run", too_slow)
    with pytest.raises(PackageError, match="is PyPI reachable"):
        template.chalice_package("prod", tmp_path / "out", project=tmp_path / "project")
