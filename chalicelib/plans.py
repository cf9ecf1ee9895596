"""A file's plan — the units the fan-out made of it — written down before the file is claimed.

The claim records the plan's digest and where it is: inline on the declared-file item when small,
else an S3 object named by the digest, so two planners racing on one file can never mix plans.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from chalicelib.modelbase import Model
from chalicelib.models import UnitError
from chalicelib.store.items import DeclaredFile, PlanRecord, UnitItem

if TYPE_CHECKING:
    from chalicelib.config import CoreSettings
    from chalicelib.services import Services

# Plans up to this size ride on the declared-file item (DynamoDB items hold 400 KB).
INLINE_PLAN_BYTES = 32 * 1024


class Plan(Model):
    units: list[UnitItem]
    # The input refused as a whole (a bad batch file): no units, and the session ends `rejected`.
    rejected: UnitError | None = None


def save_plan(services: Services[CoreSettings], declared: DeclaredFile, plan: Plan) -> PlanRecord:
    body = plan.model_dump_json(exclude_none=True)
    digest = hashlib.sha256(body.encode()).hexdigest()[:32]
    if len(body) <= INLINE_PLAN_BYTES:
        return PlanRecord(digest=digest, inline=body)
    key = f"plans/{declared.sid}/{declared.file:05d}.{digest}.json"
    services.s3.put_object(
        Bucket=services.settings.bucket, Key=key, Body=body.encode(), ContentType="application/json"
    )
    return PlanRecord(digest=digest, key=key)


def load_plan(services: Services[CoreSettings], record: PlanRecord) -> Plan:
    if record.inline is not None:
        return Plan.model_validate_json(record.inline)
    assert record.key is not None, "a plan is inline or in S3"
    body = services.s3.get_object(Bucket=services.settings.bucket, Key=record.key)["Body"].read()
    return Plan.model_validate_json(body)
