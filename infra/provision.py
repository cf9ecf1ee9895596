"""Create the resources of `infra.resources` in an account — the embedded moto server, empty or
restored from a snapshot (infra.snapshot): creating what exists already is a no-op."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from infra.resources import QueueSpec, Resources

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import CreateTableInputTypeDef
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CORSRuleTypeDef, QueueConfigurationTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

_CONFIG = Config(s3={"addressing_style": "path"}, retries={"mode": "standard"})


@dataclass(frozen=True)
class Provisioned:
    bucket: str
    table: str
    topic_arn: str
    queue_urls: dict[str, str]  # by queue name, DLQs included
    queue_arns: dict[str, str]

    def settings(self, resources: Resources, region: str) -> dict[str, str]:
        """chute's Settings fields (and local.json keys) that point at these resources."""
        urls = self.queue_urls
        return {
            "region": region,
            "bucket": self.bucket,
            "table": self.table,
            "topic_arn": self.topic_arn,
            "uploads_queue_url": urls[resources.uploads_queue.name],
            "work_queue_url": urls[resources.work_queue.name],
            "work_high_queue_url": urls[resources.work_high_queue.name],
            "work_dlq_url": urls[f"{resources.work_queue.name}-dlq"],
            "work_high_dlq_url": urls[f"{resources.work_high_queue.name}-dlq"],
            "uploads_dlq_url": urls[f"{resources.uploads_queue.name}-dlq"],
        }


def _create_queue(sqs: SQSClient, spec: QueueSpec, arns: dict[str, str]) -> str:
    attributes: dict[QueueAttributeNameType, str] = {
        "VisibilityTimeout": str(spec.visibility_timeout_s)
    }
    if spec.dlq_name is not None:
        redrive = {
            "deadLetterTargetArn": arns[spec.dlq_name],
            "maxReceiveCount": spec.max_receive_count,
        }
        attributes["RedrivePolicy"] = json.dumps(redrive)
    return sqs.create_queue(QueueName=spec.name, Attributes=attributes)["QueueUrl"]


def provision(
    session: boto3.Session, endpoint_url: str | None, resources: Resources
) -> Provisioned:
    sqs = session.client("sqs", endpoint_url=endpoint_url, config=_CONFIG)
    urls: dict[str, str] = {}
    arns: dict[str, str] = {}

    def remember(name: str, url: str) -> None:
        urls[name] = url
        arns[name] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    for spec in resources.queues:
        if spec.dlq_name is not None:
            # Dead letters are kept for the longest retention SQS allows, to be inspected.
            dlq = sqs.create_queue(
                QueueName=spec.dlq_name, Attributes={"MessageRetentionPeriod": "1209600"}
            )
            remember(spec.dlq_name, dlq["QueueUrl"])
        remember(spec.name, _create_queue(sqs, spec, arns))

    _provision_bucket(
        session.client("s3", endpoint_url=endpoint_url, config=_CONFIG), resources, arns
    )
    _provision_table(
        session.client("dynamodb", endpoint_url=endpoint_url, config=_CONFIG), resources
    )
    sns = session.client("sns", endpoint_url=endpoint_url, config=_CONFIG)
    topic_arn = sns.create_topic(Name=resources.topic.name)["TopicArn"]
    # Provisioning a restored stack (infra.snapshot) again must not subscribe a queue twice.
    subscribed = {
        s["Endpoint"]
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
        for s in page["Subscriptions"]
    }
    for subscription in resources.topic.subscriptions:
        if arns[subscription.queue] in subscribed:
            continue
        attributes = {}
        if subscription.filter_policy:
            policy = {name: list(values) for name, values in subscription.filter_policy.items()}
            attributes["FilterPolicy"] = json.dumps(policy)
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=arns[subscription.queue],
            Attributes=attributes,
        )
    return Provisioned(resources.bucket.name, resources.table.name, topic_arn, urls, arns)


def _provision_bucket(s3: S3Client, resources: Resources, arns: dict[str, str]) -> None:
    bucket = resources.bucket
    # A restored stack's bucket exists (infra.snapshot): its settings are put again below.
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket.name)
    if bucket.cors:
        rules: list[CORSRuleTypeDef] = [
            {
                "AllowedMethods": list(rule.methods),
                "AllowedOrigins": list(rule.origins),
                "AllowedHeaders": list(rule.headers),
                "ExposeHeaders": list(rule.expose_headers),
                "MaxAgeSeconds": rule.max_age_s,
            }
            for rule in bucket.cors
        ]
        s3.put_bucket_cors(Bucket=bucket.name, CORSConfiguration={"CORSRules": rules})
    if bucket.notifications:
        queues: list[QueueConfigurationTypeDef] = [
            {
                "QueueArn": arns[n.queue],
                "Events": list(n.events),
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": n.prefix}]}},
            }
            for n in bucket.notifications
        ]
        s3.put_bucket_notification_configuration(
            Bucket=bucket.name, NotificationConfiguration={"QueueConfigurations": queues}
        )


def _provision_table(ddb: DynamoDBClient, resources: Resources) -> None:
    table = resources.table
    indexes = table.global_indexes()
    request: CreateTableInputTypeDef = {
        "TableName": table.name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": table.attribute_definitions(),
        "KeySchema": table.key_schema(),
    }
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    try:
        ddb.create_table(**request)
    except ddb.exceptions.ResourceInUseException:
        return  # a restored stack's (infra.snapshot)
    if table.ttl_attribute:
        ddb.update_time_to_live(
            TableName=table.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )
