"""The AWS template: `chalice package`'s SAM template merged with what `infra.resources` defines.

The bucket, queues, table and topic are rendered from the same specs the embedded stack is
provisioned from, so local and AWS cannot drift apart; what exists only on AWS is added here: the
event source mappings, the Cognito user pool and the authorizer on the API's routes, the model
endpoint's key in Secrets Manager, alarms, and each function's environment and least-privilege
policy (`.chalice/policy-*.json`, rendered by `policies()`; a test keeps the files equal to it).

    python -m infra.template package [--stage prod] [--out build/package]
    python -m infra.template policies      # rewrite .chalice/policy-*.json

`package` runs `chalice package` in a copy of the project under build/chalice (chalice keeps its
Lambda wheel cache there) and writes OUT/deployment.zip and OUT/template.json.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.config import AdminSettings, CoreSettings, WorkSettings
from infra.resources import QueueSpec, Resources, define

Template = dict[str, Any]
Json = Any

ROOT = Path(__file__).resolve().parents[1]
CHALICE_DIR = ROOT / ".chalice"
# What `chalice package` reads from the project.
PROJECT_FILES = ("app.py", "requirements.txt", "chalicelib")
PACKAGE_TIMEOUT_S = 600
# Lambda's limit is 50 MB zipped; chute's goal is a small, fast-starting package.
MAX_PACKAGE_BYTES = 10 * 1024 * 1024

# The AWS side of the one definition: queue names and the table name only serve to find the
# specs (CloudFormation names the resources after the stack, so stages never collide).
AWS = define()
PREFIX = "chute"

# The page's files are public; every other route needs a Cognito user pool token.
PUBLIC_PATHS = ("/", "/static/app.js", "/static/app.css")
AUTHORIZER = "CognitoUsers"
ADMIN_GROUP = "admin"


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def get_att(name: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, attribute]}


def sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def if_(condition: str, then: Json, otherwise: Json) -> dict[str, list[Json]]:
    return {"Fn::If": [condition, then, otherwise]}


NO_VALUE = ref("AWS::NoValue")


def logical_id(name: str, kind: str) -> str:
    """`chute-work-high` → `WorkHighQueue`; `chute-work-high-dlq` → `WorkHighDlq`."""
    parts = name.removeprefix(f"{PREFIX}-").split("-")
    if parts[-1] == "dlq":
        parts, kind = parts[:-1], "Dlq"
    return "".join(p.title() for p in parts) + kind


BUCKET = "Bucket"
TABLE = "Table"
TOPIC = "EventsTopic"
ALARM_TOPIC = "AlarmTopic"
USER_POOL = "UserPool"
USER_POOL_CLIENT = "UserPoolClient"
SECRET = "ModelApiKeySecret"
# The bucket's name is spelled out, not generated: its CORS rule names the API's origin, and the
# API's role and environment name the bucket; a Ref each way would be a cycle.
BUCKET_NAME = sub("chute-${Stage}-${AWS::AccountId}-${AWS::Region}")
BUCKET_ARN = sub("arn:${AWS::Partition}:s3:::chute-${Stage}-${AWS::AccountId}-${AWS::Region}")
API_ORIGIN = "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}"


@dataclass(frozen=True)
class Function:
    """One of chalice's Lambda functions: its logical id in chalice's template, its name in
    .chalice/config.json, and the settings it reads (hence its environment)."""

    key: str
    logical_id: str
    chalice_name: str
    settings: type[CoreSettings]
    # Settings fields it does not get: the API serves no model calls, and its own URL would make
    # the API depend on itself.
    without: tuple[str, ...] = ()

    @property
    def role(self) -> str:
        """chalice's logical id of the function's role (its own, as its policy file is)."""
        return "ApiHandlerRole" if self is API else f"{self.logical_id}Role"

    @property
    def policy_file(self) -> str:
        return f"policy-{self.key}.json"


API = Function(
    "api",
    "APIHandler",
    "api_handler",
    AdminSettings,
    without=(
        "public_url",
        "model_base_url",
        "model",
        "model_api_key_secret_arn",
        "operator_metrics",
    ),
)
ON_UPLOAD = Function("on_upload", "OnUpload", "on_upload", WorkSettings)
WORKER = Function("worker", "Worker", "worker", WorkSettings)
# The sweeper reads the operator's view too (AdminSettings: every queue) for its metrics.
SWEEPER = Function("sweeper", "Sweeper", "sweeper", AdminSettings, without=("email_topic_arn",))
FUNCTIONS = (API, ON_UPLOAD, WORKER, SWEEPER)


@dataclass(frozen=True)
class QueueMapping:
    """An SQS event source mapping: `function` consumes `queue`."""

    logical_id: str
    function: Function
    queue: QueueSpec
    batch_size: int
    window_s: int
    max_concurrency_parameter: str


# work-high is drained first: its mapping may run twice as many workers as work's and has no
# batching window, and work's own cap leaves that share free however deep work is.
MAPPINGS = (
    # One upload per invocation: a large zip's fan-out may take minutes and must not hold others.
    QueueMapping("OnUploadFromUploads", ON_UPLOAD, AWS.uploads_queue, 1, 0, "UploadsConcurrency"),
    QueueMapping("WorkerFromWork", WORKER, AWS.work_queue, 10, 1, "WorkConcurrency"),
    QueueMapping("WorkerFromWorkHigh", WORKER, AWS.work_high_queue, 10, 0, "WorkHighConcurrency"),
)

PARAMETERS: Template = {
    "Stage": {
        "Type": "String",
        "Default": "prod",
        "AllowedPattern": "^[a-z0-9-]{1,20}$",
        "Description": "Names the bucket: chute-STAGE-ACCOUNT-REGION.",
    },
    "NotificationEmail": {
        "Type": "String",
        "Default": "",
        "Description": "The operator's address: subscribed (after confirming) to the alarms.",
    },
    "AllowedOrigins": {
        "Type": "String",
        "Default": "",
        "Description": "Origins besides the API's own that may use the bucket, comma-separated.",
    },
    "ModelBaseUrl": {
        "Type": "String",
        "Default": "https://api.openai.com/v1",
        "Description": "An OpenAI-compatible endpoint that answers prompts rows.",
    },
    "Model": {
        "Type": "String",
        "Default": "gpt-4o-mini",
        "MinLength": 1,
        "Description": "The endpoint's model, or bedrock:MODEL_ID for Amazon Bedrock Converse.",
    },
    "ModelApiKey": {
        "Type": "String",
        "Default": "",
        "NoEcho": True,
        "Description": "The endpoint's key, kept in Secrets Manager (empty: no key).",
    },
    "UploadsConcurrency": {
        "Type": "Number",
        "Default": 5,
        "MinValue": 2,
        "MaxValue": 1000,
        "Description": "Fan-outs at once (the uploads queue's maximum concurrency).",
    },
    "WorkConcurrency": {
        "Type": "Number",
        "Default": 10,
        "MinValue": 2,
        "MaxValue": 1000,
        "Description": "Workers at once on the work queue.",
    },
    "WorkHighConcurrency": {
        "Type": "Number",
        "Default": 20,
        "MinValue": 2,
        "MaxValue": 1000,
        "Description": "Workers at once on the work-high queue (drained first).",
    },
    "OldestMessageAlarmSeconds": {
        "Type": "Number",
        "Default": 900,
        "MinValue": 60,
        "Description": "Alarm when a queue's oldest message is older than this.",
    },
}

CONDITIONS: Template = {
    "HasNotificationEmail": {"Fn::Not": [{"Fn::Equals": [ref("NotificationEmail"), ""]}]},
    "HasAllowedOrigins": {"Fn::Not": [{"Fn::Equals": [ref("AllowedOrigins"), ""]}]},
    "HasModelApiKey": {"Fn::Not": [{"Fn::Equals": [ref("ModelApiKey"), ""]}]},
    "UsesBedrock": {
        "Fn::Equals": [{"Fn::Select": [0, {"Fn::Split": [":", ref("Model")]}]}, "bedrock"]
    },
}


def _queue_ids(resources: Resources) -> dict[str, str]:
    """Logical id by queue name, DLQs included; the email outbox is the embedded stack's
    stand-in for email and is not deployed."""
    ids: dict[str, str] = {}
    for spec in resources.queues:
        if spec is resources.outbox_queue:
            continue
        ids[spec.name] = logical_id(spec.name, "Queue")
        if spec.dlq_name is not None:
            ids[spec.dlq_name] = logical_id(spec.dlq_name, "Queue")
    return ids


def field_values(resources: Resources) -> dict[str, Json]:
    """What each settings field is on AWS (fields not here keep their defaults)."""
    q = _queue_ids(resources)
    return {
        "region": ref("AWS::Region"),
        "bucket": BUCKET_NAME,
        "table": ref(TABLE),
        "topic_arn": ref(TOPIC),
        "uploads_queue_url": ref(q[resources.uploads_queue.name]),
        "work_queue_url": ref(q[resources.work_queue.name]),
        "work_high_queue_url": ref(q[resources.work_high_queue.name]),
        "uploads_dlq_url": ref(q[f"{resources.uploads_queue.name}-dlq"]),
        "work_dlq_url": ref(q[f"{resources.work_queue.name}-dlq"]),
        "work_high_dlq_url": ref(q[f"{resources.work_high_queue.name}-dlq"]),
        "model_base_url": ref("ModelBaseUrl"),
        "model": ref("Model"),
        "model_api_key_secret_arn": if_("HasModelApiKey", ref(SECRET), NO_VALUE),
        "public_url": sub(API_ORIGIN + "/api/"),
        # The API subscribes each person who wants email to the events topic.
        "email_topic_arn": ref(TOPIC),
        # The sweeper prints the operator's numbers as CloudWatch EMF metrics each run.
        "operator_metrics": "true",
        # The API reads who is calling from the Cognito authorizer's claims, never local tokens.
        "auth_mode": "cognito",
    }


def environment(function: Function, resources: Resources) -> dict[str, Json]:
    values = field_values(resources)
    return {
        f"CHUTE_{name.upper()}": values[name]
        for name in function.settings.model_fields
        if name in values and name not in function.without
    }


# ---- resources ---------------------------------------------------------------------------------
def _bucket(resources: Resources) -> Template:
    spec = resources.bucket
    uploads_queue = _queue_ids(resources)[resources.uploads_queue.name]
    origins = if_(
        "HasAllowedOrigins",
        {"Fn::Split": [",", sub(API_ORIGIN + ",${AllowedOrigins}")]},
        [sub(API_ORIGIN)],
    )
    policy_id = f"{uploads_queue}Policy"
    return {
        BUCKET: {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            # S3 checks that it may send to the queue when the notification is configured.
            "DependsOn": [policy_id],
            "Properties": {
                "BucketName": BUCKET_NAME,
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                    ]
                },
                "CorsConfiguration": {
                    "CorsRules": [
                        {
                            "AllowedMethods": list(rule.methods),
                            "AllowedOrigins": origins,
                            "AllowedHeaders": list(rule.headers),
                            "ExposedHeaders": list(rule.expose_headers),
                            "MaxAge": rule.max_age_s,
                        }
                        for rule in spec.cors
                    ]
                },
                "LifecycleConfiguration": {
                    "Rules": [
                        {
                            "Id": f"expire-{rule.prefix.rstrip('/')}",
                            "Status": "Enabled",
                            "Prefix": rule.prefix,
                            "ExpirationInDays": rule.expire_days,
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                        }
                        for rule in spec.lifecycle
                    ]
                },
                "NotificationConfiguration": {
                    "QueueConfigurations": [
                        {
                            "Event": event,
                            "Queue": get_att(_queue_ids(resources)[n.queue], "Arn"),
                            "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": n.prefix}]}},
                        }
                        for n in spec.notifications
                        for event in n.events
                    ]
                },
            },
        },
        policy_id: {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [ref(uploads_queue)],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "BucketSendsUploads",
                            "Effect": "Allow",
                            "Principal": {"Service": "s3.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": get_att(uploads_queue, "Arn"),
                            "Condition": {
                                "ArnEquals": {"aws:SourceArn": BUCKET_ARN},
                                "StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")},
                            },
                        }
                    ],
                },
            },
        },
    }


def _queues(resources: Resources) -> Template:
    ids = _queue_ids(resources)
    out: Template = {}
    for spec in resources.queues:
        if spec.name not in ids:
            continue
        properties: Template = {
            "VisibilityTimeout": spec.visibility_timeout_s,
            "SqsManagedSseEnabled": True,
        }
        if spec.dlq_name is not None:
            out[ids[spec.dlq_name]] = {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    # Dead letters are kept for the longest retention SQS allows, to be inspected.
                    "MessageRetentionPeriod": 1209600,
                    "SqsManagedSseEnabled": True,
                },
            }
            properties["RedrivePolicy"] = {
                "deadLetterTargetArn": get_att(ids[spec.dlq_name], "Arn"),
                "maxReceiveCount": spec.max_receive_count,
            }
        out[ids[spec.name]] = {"Type": "AWS::SQS::Queue", "Properties": properties}
    return out


def _table(resources: Resources) -> Template:
    table = resources.table
    properties: Template = {
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": table.attribute_definitions(),
        "KeySchema": table.key_schema(),
        "GlobalSecondaryIndexes": table.global_indexes(),
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True},
    }
    if table.ttl_attribute:
        properties["TimeToLiveSpecification"] = {
            "AttributeName": table.ttl_attribute,
            "Enabled": True,
        }
    return {
        TABLE: {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": properties,
        }
    }


def _topics() -> Template:
    # No address is subscribed to the events topic here: each person who wants email gets their
    # own subscription, filtered on their user_id, made by the API (chalicelib.subscriptions).
    return {
        TOPIC: {
            "Type": "AWS::SNS::Topic",
            "Properties": {"KmsMasterKeyId": "alias/aws/sns"},
        },
        # Not encrypted: CloudWatch cannot publish to a topic under the AWS managed SNS key, and
        # an alarm says only which queue or function is in trouble.
        ALARM_TOPIC: {"Type": "AWS::SNS::Topic", "Properties": {}},
        "AlarmEmailSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasNotificationEmail",
            "Properties": {
                "TopicArn": ref(ALARM_TOPIC),
                "Protocol": "email",
                "Endpoint": ref("NotificationEmail"),
            },
        },
    }


def _cognito() -> Template:
    return {
        USER_POOL: {
            "Type": "AWS::Cognito::UserPool",
            "Properties": {
                "UserPoolName": sub("chute-${Stage}"),
                "UsernameAttributes": ["email"],
                "AutoVerifiedAttributes": ["email"],
                "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
                "Policies": {
                    "PasswordPolicy": {
                        "MinimumLength": 12,
                        "RequireLowercase": True,
                        "RequireUppercase": True,
                        "RequireNumbers": True,
                        "RequireSymbols": False,
                    }
                },
            },
        },
        USER_POOL_CLIENT: {
            "Type": "AWS::Cognito::UserPoolClient",
            "Properties": {
                "UserPoolId": ref(USER_POOL),
                "GenerateSecret": False,
                "ExplicitAuthFlows": [
                    "ALLOW_USER_SRP_AUTH",
                    "ALLOW_USER_PASSWORD_AUTH",
                    "ALLOW_REFRESH_TOKEN_AUTH",
                ],
                "PreventUserExistenceErrors": "ENABLED",
            },
        },
        "AdminGroup": {
            "Type": "AWS::Cognito::UserPoolGroup",
            "Properties": {
                "GroupName": ADMIN_GROUP,
                "UserPoolId": ref(USER_POOL),
                "Description": "chute's operators: /admin/stats and the DLQ redrive.",
            },
        },
    }


def _secret() -> Template:
    return {
        SECRET: {
            "Type": "AWS::SecretsManager::Secret",
            "Condition": "HasModelApiKey",
            "Properties": {
                "Description": "The model endpoint's API key, read by the worker.",
                "SecretString": ref("ModelApiKey"),
            },
        }
    }


def _event_source_mappings(resources: Resources) -> Template:
    ids = _queue_ids(resources)
    return {
        m.logical_id: {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "EventSourceArn": get_att(ids[m.queue.name], "Arn"),
                "FunctionName": ref(m.function.logical_id),
                "BatchSize": m.batch_size,
                "MaximumBatchingWindowInSeconds": m.window_s,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "ScalingConfig": {"MaximumConcurrency": ref(m.max_concurrency_parameter)},
            },
        }
        for m in MAPPINGS
    }


def _alarm(metric: str, namespace: str, dimension: str, value: Json, threshold: Json) -> Template:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": [{"Name": dimension, "Value": value}],
            "Statistic": "Maximum" if namespace == "AWS/SQS" else "Sum",
            "Period": 60,
            "EvaluationPeriods": 1 if namespace == "AWS/SQS" else 5,
            "DatapointsToAlarm": 1,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [ref(ALARM_TOPIC)],
        },
    }


def _alarms(resources: Resources) -> Template:
    ids = _queue_ids(resources)
    out: Template = {}
    for spec in resources.queues:
        if spec.name not in ids:
            continue
        queue = ids[spec.name]
        out[f"{queue}OldestMessageAlarm"] = _alarm(
            "ApproximateAgeOfOldestMessage",
            "AWS/SQS",
            "QueueName",
            get_att(queue, "QueueName"),
            ref("OldestMessageAlarmSeconds"),
        )
        if spec.dlq_name is not None:
            dlq = ids[spec.dlq_name]
            # Any dead letter is an alarm: the sweeper fails its unit, someone should look why.
            out[f"{dlq}DepthAlarm"] = _alarm(
                "ApproximateNumberOfMessagesVisible",
                "AWS/SQS",
                "QueueName",
                get_att(dlq, "QueueName"),
                1,
            )
    for function in FUNCTIONS:
        out[f"{function.logical_id}ErrorsAlarm"] = _alarm(
            "Errors", "AWS/Lambda", "FunctionName", ref(function.logical_id), 1
        )
    return out


def own_resources(resources: Resources) -> Template:
    return {
        **_bucket(resources),
        **_queues(resources),
        **_table(resources),
        **_topics(),
        **_cognito(),
        **_secret(),
        **_event_source_mappings(resources),
        **_alarms(resources),
    }


# ---- policies ------------------------------------------------------------------------------------
def _objects(*prefixes: str) -> list[Json]:
    return [
        sub(
            f"arn:${{AWS::Partition}}:s3:::chute-${{Stage}}-${{AWS::AccountId}}-${{AWS::Region}}"
            f"/{p}*"
        )
        for p in prefixes
    ]


def _statement(sid: str, actions: Sequence[str], resource: Json, **extra: Json) -> Template:
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": resource, **extra}


# What Lambda's event source mapping does with the function's role (AWS's
# AWSLambdaSQSQueueExecutionRole); chute itself never changes a message's visibility.
_CONSUME = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]


def policies(resources: Resources = AWS) -> dict[str, Template]:
    """Each function's policy: only what its code calls, on only its resources."""
    q = {name: get_att(logical, "Arn") for name, logical in _queue_ids(resources).items()}
    work_queues = [q[resources.work_queue.name], q[resources.work_high_queue.name]]
    dlqs = [q[f"{s.name}-dlq"] for s in resources.queues if s.dlq_name and s.name in q]
    table_arn = get_att(TABLE, "Arn")
    table = [table_arn, *(sub(f"${{Table.Arn}}/index/{i.name}") for i in resources.table.indexes)]
    item_actions = [
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:BatchWriteItem",
    ]
    logs = _statement(
        "Logs",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        sub(
            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
            "log-group:/aws/lambda/${AWS::StackName}-*"
        ),
    )
    common = [
        logs,
        _statement("Table", item_actions, table),
        # Without it a missing object reads as 403, not 404 (a unit's expired source).
        _statement("ListBucket", ["s3:ListBucket"], BUCKET_ARN),
        _statement("SendWork", ["sqs:SendMessage"], work_queues),
        _statement("PublishEvents", ["sns:Publish"], ref(TOPIC)),
    ]
    read, write = "s3:GetObject", ["s3:PutObject", "s3:AbortMultipartUpload"]
    # The operator's view (chalicelib.stats): every queue's depth and oldest-message age.
    operator = [
        _statement("QueueDepths", ["sqs:GetQueueAttributes"], list(q.values())),
        # CloudWatch has no resource-level permission for this action: "*" is the only resource.
        _statement("QueueMetrics", ["cloudwatch:GetMetricStatistics"], "*"),
    ]
    statements: dict[str, list[Template]] = {
        "api": [
            *common,
            # Presigned POSTs are signed with the API's role; exports are written and presigned.
            _statement("WriteUploadsAndExports", write, _objects("uploads/", "results/")),
            # Exports read the results, and a prompts export each row's input (the rows file under
            # inputs/, or the inline batch under uploads/).
            _statement("ReadForExports", [read], _objects("results/", "inputs/", "uploads/")),
            *operator,
            # Each person's email subscription to the events topic (chalicelib.subscriptions).
            _statement("SubscribeEmail", ["sns:Subscribe"], ref(TOPIC)),
            # Authorised against the subscription's ARN or its topic's: both are named.
            _statement(
                "KeepEmailSubscriptions",
                ["sns:Unsubscribe", "sns:SetSubscriptionAttributes"],
                [ref(TOPIC), sub("${EventsTopic}:*")],
            ),
        ],
        "on_upload": [
            *common,
            _statement("ConsumeUploads", _CONSUME, q[resources.uploads_queue.name]),
            _statement("ReadSources", [read], _objects("uploads/", "inputs/", "plans/")),
            _statement("WritePlans", write, _objects("inputs/", "plans/")),
        ],
        "worker": [
            *common,
            _statement("ConsumeWork", _CONSUME, work_queues),
            _statement(
                "ReadSources",
                [read],
                _objects("uploads/", "inputs/", "plans/", "results/", "checkpoints/"),
            ),
            # A follow-up session's input is written at its own upload key (chains).
            _statement(
                "WriteResults", write, _objects("results/", "checkpoints/", "uploads/", "plans/")
            ),
            _statement("ReadModelKey", ["secretsmanager:GetSecretValue"], ref(SECRET)),
            _statement(
                "InvokeBedrock",
                ["bedrock:InvokeModel"],
                [
                    sub("arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/*"),
                    sub(
                        "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:"
                        "inference-profile/*"
                    ),
                ],
            ),
        ],
        "sweeper": [
            *common,
            # It reads and deletes dead letters itself; nothing polls the DLQs for it.
            _statement("ReadDeadLetters", ["sqs:ReceiveMessage", "sqs:DeleteMessage"], dlqs),
            _statement(
                "ReadSources", [read], _objects("uploads/", "inputs/", "plans/", "results/")
            ),
            _statement("WritePlans", write, _objects("inputs/", "plans/", "uploads/")),
            # It reads the operator's view each run, for the EMF metrics (chalicelib.metrics).
            *operator,
        ],
    }
    conditional = {"ReadModelKey": "HasModelApiKey", "InvokeBedrock": "UsesBedrock"}
    return {
        key: {
            "Version": "2012-10-17",
            "Statement": [
                if_(conditional[s["Sid"]], s, NO_VALUE) if s["Sid"] in conditional else s
                for s in body
            ],
        }
        for key, body in statements.items()
    }


def write_policies(directory: Path = CHALICE_DIR) -> list[Path]:
    written = []
    for function in FUNCTIONS:
        path = directory / function.policy_file
        path.write_text(json.dumps(policies()[function.key], indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


# ---- the merge -----------------------------------------------------------------------------------
def _authorize_routes(api: Template) -> None:
    """Every route but the page's files (and CORS preflights, which carry no token) needs a
    Cognito user pool token. Attached here rather than in app.py: chalice's local gateway would
    try to read the local HMAC tokens as JWTs."""
    body = api["Properties"]["DefinitionBody"]
    body.setdefault("securityDefinitions", {})[AUTHORIZER] = {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
        "x-amazon-apigateway-authtype": "cognito_user_pools",
        "x-amazon-apigateway-authorizer": {
            "type": "cognito_user_pools",
            "providerARNs": [get_att(USER_POOL, "Arn")],
        },
    }
    for path, methods in body["paths"].items():
        if path in PUBLIC_PATHS:
            continue
        for method, operation in methods.items():
            if method != "options":
                operation["security"] = [{AUTHORIZER: []}]
    # What API Gateway answers itself, in chute's error shape (infra/localapi.py does the same
    # locally): no route is a 404, never a 403 that quotes the Authorization header.
    body["x-amazon-apigateway-gateway-responses"] = {
        kind: {
            "statusCode": status,
            # So that a browser's page may read the error of a cross-origin call.
            "responseParameters": {
                "gatewayresponse.header.Access-Control-Allow-Origin": "'*'",
            },
            "responseTemplates": {
                "application/json": json.dumps(
                    {"error": {"code": code, "message": message, "details": {}}}
                )
            },
        }
        for kind, status, code, message in (
            ("MISSING_AUTHENTICATION_TOKEN", "404", "route_not_found", "There is no such route."),
            ("UNAUTHORIZED", "401", "unauthorized", "Send a valid Cognito token."),
            ("ACCESS_DENIED", "403", "forbidden", "Access denied."),
        )
    }


def render(chalice: Template, resources: Resources = AWS) -> Template:
    """chalice's SAM template with chute's resources, parameters, environment and authorizer."""
    template = deepcopy(chalice)
    template["Description"] = "chute: serverless background processing of large uploads"
    template["Parameters"] = deepcopy(PARAMETERS)
    template["Conditions"] = deepcopy(CONDITIONS)
    ours = own_resources(resources)
    clash = sorted(set(ours) & set(template["Resources"]))
    if clash:
        raise ValueError(f"chalice's template already has {', '.join(clash)}")
    template["Resources"].update(ours)
    for function in FUNCTIONS:
        properties = template["Resources"][function.logical_id]["Properties"]
        variables = properties.setdefault("Environment", {}).setdefault("Variables", {})
        variables.update(environment(function, resources))
    _authorize_routes(template["Resources"]["RestAPI"])
    template["Outputs"].update(
        {
            "BucketName": {"Value": BUCKET_NAME},
            "TableName": {"Value": ref(TABLE)},
            "EventsTopicArn": {"Value": ref(TOPIC)},
            "UserPoolId": {"Value": ref(USER_POOL)},
            "UserPoolClientId": {"Value": ref(USER_POOL_CLIENT)},
        }
    )
    return template


# ---- packaging -----------------------------------------------------------------------------------
class PackageError(RuntimeError):
    pass


def _copy_project(project: Path) -> None:
    """The files chalice packages, copied fresh; chalice's wheel cache (.chalice/deployments)
    stays between runs."""
    (project / ".chalice").mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source, target = ROOT / name, project / name
        if target.is_dir():
            shutil.rmtree(target)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    for source in [CHALICE_DIR / "config.json", *sorted(CHALICE_DIR.glob("policy-*.json"))]:
        shutil.copy2(source, project / ".chalice" / source.name)


def chalice_package(stage: str, out: Path, *, project: Path = ROOT / "build" / "chalice") -> Path:
    """`chalice package` of the project into out; chalice's SAM template's path."""
    out = out.resolve()  # chalice runs in the project's copy
    project.parent.mkdir(parents=True, exist_ok=True)
    # One packaging at a time per copy (two test workers, or make package beside the tests).
    with (project.parent / f".{project.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _chalice_package(stage, out, project)


def _chalice_package(stage: str, out: Path, project: Path) -> Path:
    _copy_project(project)
    if out.exists():
        shutil.rmtree(out)
    chalice = Path(sys.executable).with_name("chalice")
    # chalice wants a region even to package; nothing is deployed.
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    command = [str(chalice), "package", "--stage", stage, "--pkg-format", "cloudformation"]
    try:
        done = subprocess.run(
            [*command, str(out)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=PACKAGE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise PackageError(
            f"chalice package took more than {PACKAGE_TIMEOUT_S} s: it downloads Lambda (manylinux)"
            " wheels from PyPI on the first run; is PyPI reachable?"
        ) from exc
    if done.returncode != 0 or not (out / "sam.json").exists():
        said = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise PackageError(
            f"chalice package exited {done.returncode} (it needs Lambda wheels from PyPI for "
            "requirements.txt): " + " | ".join(said)
        )
    return out / "sam.json"


# Lists the package's modules that `import app` loads, and those every chalicelib module loads
# (what the handlers import when first called); run inside the unpacked package.
_LOADED = """
import importlib, json, pkgutil, sys
import app, chalicelib
for found in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
    importlib.import_module(found.name)
root = sys.argv[1]
print(json.dumps(sorted(
    m.__file__ for m in list(sys.modules.values())
    if getattr(m, "__file__", None) and m.__file__.startswith(root) and m.__file__.endswith(".py")
)))
"""


def add_bytecode(archive: Path, runtime: str) -> int:
    """Add compiled bytecode for every module of the package that `import app` or a handler
    loads; the number of modules. Lambda's /var/task is read-only and chalice ships sources only, so
    without it each cold start compiles them all again (measured: 4.3x `import boto3` instead of
    2.4x). Compiled by this interpreter, which must be the runtime's version; unchecked-hash
    .pyc files are used whatever the files' timestamps after unzipping."""
    here = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if runtime != here:
        raise PackageError(f"the functions run {runtime}, but this is {here}: no bytecode")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        with zipfile.ZipFile(archive) as package:
            package.extractall(root)
        env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run(
            [sys.executable, "-c", _LOADED, str(root)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise PackageError(f"import app failed in the package: {done.stderr.strip()}")
        sources = [Path(name) for name in json.loads(done.stdout)]
        with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as package:
            for source in sources:
                compiled = Path(importlib.util.cache_from_source(str(source)))
                py_compile.compile(
                    str(source),
                    cfile=str(compiled),
                    doraise=True,
                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                )
                package.write(compiled, str(compiled.relative_to(root)))
    return len(sources)


def package(stage: str, out: Path) -> Path:
    """deployment.zip and template.json in out; the template's path."""
    out = out.resolve()
    sam = json.loads(chalice_package(stage, out).read_text(encoding="utf-8"))
    add_bytecode(out / "deployment.zip", sam["Resources"][API.logical_id]["Properties"]["Runtime"])
    size = (out / "deployment.zip").stat().st_size
    if size > MAX_PACKAGE_BYTES:
        raise PackageError(f"deployment.zip is {size / 2**20:.1f} MB, more than 10 MB")
    path = out / "template.json"
    path.write_text(json.dumps(render(sam), indent=1) + "\n", encoding="utf-8")
    (out / "sam.json").unlink()
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.template", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    packaging = commands.add_parser("package", help="deployment.zip and template.json")
    packaging.add_argument("--stage", default="prod")
    packaging.add_argument("--out", type=Path, default=ROOT / "build" / "package")
    commands.add_parser("policies", help="rewrite .chalice/policy-*.json from policies()")
    args = parser.parse_args(argv)
    if args.command == "policies":
        for path in write_policies():
            print(path.relative_to(ROOT))
        return 0
    try:
        path = package(args.stage, args.out)
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = (args.out / "deployment.zip").stat().st_size
    print(f"{path} ({len(json.loads(path.read_text())['Resources'])} resources)")
    print(f"{args.out / 'deployment.zip'} ({size / 2**20:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
