"""Builders shared by tests: sessions in the store, Lambda-shaped SQS events with unique ids."""

from __future__ import annotations

import itertools
import json
from typing import Any

from chalicelib.models import UnitStatus
from chalicelib.plans import Plan
from chalicelib.sources import ZipMemberSource
from chalicelib.store import Store
from chalicelib.store.items import DeclaredFile, PlanRecord, SessionMeta, UnitItem

_message_ids = itertools.count(1)


def meta(sid: str, *, owner: str = "alice", files: int = 1, now: float = 1000.0) -> SessionMeta:
    return SessionMeta(
        sid=sid,
        owner=owner,
        job_type="documents",
        priority=5,
        files_total=files,
        files_pending=files,
        created_at=now,
        upload_deadline=now + 900,
        expires_at=int(now) + 86400,
    )


def declared(sid: str, file: int, *, name: str = "a.txt", size: int = 10) -> DeclaredFile:
    return DeclaredFile(
        sid=sid,
        file=file,
        name=name,
        size=size,
        content_type="text/plain",
        owner="alice",
        job_type="documents",
        priority=5,
        expires_at=2_000_000_000,
    )


def pending_units(sid: str, file: int, count: int, *, now: float = 1000.0) -> list[UnitItem]:
    source = ZipMemberSource(key=f"uploads/{sid}/{file:05d}/a.zip")
    return [
        UnitItem(
            sid=sid,
            file=file,
            index=i,
            name=f"m{i}.txt",
            status=UnitStatus.PENDING,
            max_attempts=3,
            source=source,
            created_at=now,
        )
        for i in range(count)
    ]


def plan_record(units: list[UnitItem]) -> PlanRecord:
    return PlanRecord(digest="test", inline=Plan(units=units).model_dump_json(exclude_none=True))


def claim(store: Store, sid: str, file: int, units: list[UnitItem], now: float = 1000.0) -> bool:
    return store.claim_file(sid, file, units, plan=plan_record(units), now=now, due=now + 960)


def session_with_units(store: Store, sid: str, units: int, *, now: float = 1000.0) -> None:
    """A session of one zip file already fanned out into `units` pending units."""
    store.put_session(meta(sid, now=now), [declared(sid, 0, name="a.zip")], first_check=now + 1800)
    planned = pending_units(sid, 0, units, now=now)
    assert claim(store, sid, 0, planned, now)
    store.put_units(planned, recovering=False)


def sqs_event(bodies: list[str], *, queue: str = "chute-work") -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"msg-{next(_message_ids)}",
                "receiptHandle": "rh",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def s3_event_body(key: str, size: int) -> str:
    return json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Post",
                    "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": size}},
                }
            ]
        }
    )
