"""The AWS resources chute uses, declared once: local provisioning and the AWS template read it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from chalicelib.budget import UPLOADS_VISIBILITY_S, WORK_VISIBILITY_S
from chalicelib.models import Event

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import (
        AttributeDefinitionTypeDef,
        GlobalSecondaryIndexTypeDef,
        KeySchemaElementTypeDef,
    )
    from mypy_boto3_s3.literals import EventType


@dataclass(frozen=True)
class QueueSpec:
    name: str
    visibility_timeout_s: int = 30
    # Receives before SQS moves a message to `{name}-dlq`; None: no dead-letter queue.
    max_receive_count: int | None = 5

    @property
    def dlq_name(self) -> str | None:
        return None if self.max_receive_count is None else f"{self.name}-dlq"


@dataclass(frozen=True)
class CorsRule:
    methods: tuple[str, ...]
    origins: tuple[str, ...] = ("*",)
    headers: tuple[str, ...] = ("*",)
    expose_headers: tuple[str, ...] = ("ETag",)
    max_age_s: int = 3000


@dataclass(frozen=True)
class BucketNotification:
    """S3 events for keys under `prefix` are sent to the queue named `queue`."""

    queue: str
    prefix: str
    events: tuple[EventType, ...] = ("s3:ObjectCreated:*",)


@dataclass(frozen=True)
class LifecycleRule:
    """Objects under `prefix` expire this many days after they were written (on AWS; S3's
    lifecycle does not run on the embedded stack)."""

    prefix: str
    expire_days: int


@dataclass(frozen=True)
class BucketSpec:
    name: str
    cors: tuple[CorsRule, ...] = ()
    notifications: tuple[BucketNotification, ...] = ()
    lifecycle: tuple[LifecycleRule, ...] = ()


@dataclass(frozen=True)
class IndexSpec:
    name: str
    pk: str
    sk: str
    projection: Literal["ALL", "KEYS_ONLY"] = "ALL"


@dataclass(frozen=True)
class TableSpec:
    """Every key attribute is a string; billing is on demand."""

    name: str
    pk: str = "PK"
    sk: str = "SK"
    indexes: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None

    # The table's shape as CreateTable and the CloudFormation template both spell it.
    def attribute_definitions(self) -> list[AttributeDefinitionTypeDef]:
        keys = {self.pk, self.sk} | {k for i in self.indexes for k in (i.pk, i.sk)}
        return [{"AttributeName": k, "AttributeType": "S"} for k in sorted(keys)]

    def key_schema(self) -> list[KeySchemaElementTypeDef]:
        return _key_schema(self.pk, self.sk)

    def global_indexes(self) -> list[GlobalSecondaryIndexTypeDef]:
        return [
            {
                "IndexName": index.name,
                "KeySchema": _key_schema(index.pk, index.sk),
                "Projection": {"ProjectionType": index.projection},
            }
            for index in self.indexes
        ]


def _key_schema(pk: str, sk: str) -> list[KeySchemaElementTypeDef]:
    return [{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}]


@dataclass(frozen=True)
class SubscriptionSpec:
    """An SQS queue subscribed to the topic, receiving only messages whose attributes match."""

    queue: str
    filter_policy: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    subscriptions: tuple[SubscriptionSpec, ...] = ()


@dataclass(frozen=True)
class Resources:
    bucket: BucketSpec
    uploads_queue: QueueSpec
    work_queue: QueueSpec
    work_high_queue: QueueSpec
    outbox_queue: QueueSpec
    table: TableSpec
    topic: TopicSpec

    @property
    def queues(self) -> tuple[QueueSpec, ...]:
        return (self.uploads_queue, self.work_queue, self.work_high_queue, self.outbox_queue)


# How long a session's objects are kept: its items expire by TTL after `session_ttl_days`
# (CoreSettings, default 30); its objects outlive them by a day, so nothing a live session points
# at disappears first.
SESSION_DAYS = 30
OBJECT_DAYS = SESSION_DAYS + 1
# Everything chute writes to the bucket lives under one of these prefixes.
OBJECT_PREFIXES = ("uploads/", "inputs/", "plans/", "results/", "checkpoints/")


def define(*, prefix: str = "chute", bucket: str = "chute-local") -> Resources:
    # Visibility timeouts come from the one time budget (chalicelib.budget): six times the timeout
    # of the function that consumes the queue, as AWS advises.
    uploads = QueueSpec(f"{prefix}-uploads", visibility_timeout_s=UPLOADS_VISIBILITY_S)
    work = QueueSpec(f"{prefix}-work", visibility_timeout_s=WORK_VISIBILITY_S)
    work_high = QueueSpec(f"{prefix}-work-high", visibility_timeout_s=WORK_VISIBILITY_S)
    # Locally this queue stands in for email: the stack prints what lands here.
    outbox = QueueSpec(f"{prefix}-email-outbox", max_receive_count=None)
    return Resources(
        bucket=BucketSpec(
            bucket,
            # Browsers POST straight to S3 with presigned forms and fetch results from it.
            cors=(CorsRule(methods=("POST", "GET")),),
            notifications=(BucketNotification(queue=uploads.name, prefix="uploads/"),),
            lifecycle=tuple(LifecycleRule(prefix, OBJECT_DAYS) for prefix in OBJECT_PREFIXES),
        ),
        uploads_queue=uploads,
        work_queue=work,
        work_high_queue=work_high,
        outbox_queue=outbox,
        table=TableSpec(
            prefix,
            indexes=(
                IndexSpec("GSI1", "GSI1PK", "GSI1SK"),
                # Sparse: only running units carry GSI2PK, so the sweeper reads leases, not units.
                IndexSpec("GSI2", "GSI2PK", "GSI2SK"),
            ),
            ttl_attribute="expires_at",
        ),
        topic=TopicSpec(
            f"{prefix}-events",
            subscriptions=(
                # chute publishes an email only for the events a session's owner wants by
                # email; on AWS each person's subscription also filters on their user_id.
                SubscriptionSpec(outbox.name, {"event": tuple(e.value for e in Event)}),
            ),
        ),
    )


LOCAL = define()
