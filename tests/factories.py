"""Builders shared by tests: sessions in the store, Lambda-shaped SQS events with unique ids."""

from __future__ import annotations

import itertools
import json
from typing import Any

from chalicelib.models import UnitSource, UnitStatus
from chalicelib.store import META_SK, Item, NewUnit, Store, declared_file_sk, meta_pk, session_pk

_message_ids = itertools.count(1)


def meta_item(sid: str, *, owner: str = "alice", files: int = 1, now: float = 1000.0) -> Item:
    return {
        "PK": meta_pk(sid),
        "SK": META_SK,
        "GSI1PK": f"U#{owner}",
        "GSI1SK": f"{int(now * 1000):014d}#{sid}",
        "sid": sid,
        "owner": owner,
        "name": None,
        "job_type": "documents",
        "priority": 5,
        "notify_on_complete": True,
        "state": "active",
        "files_total": files,
        "files_pending": files,
        "total": 0,
        "version": 1,
        "created_at": now,
        "upload_deadline": now + 900,
        "expires_at": int(now) + 86400,
    }


def declared_item(sid: str, file: int, *, name: str = "a.txt", size: int = 10) -> Item:
    return {
        "PK": session_pk(sid),
        "SK": declared_file_sk(file),
        "name": name,
        "size": size,
        "content_type": "text/plain",
        "owner": "alice",
        "job_type": "documents",
        "priority": 5,
        "expires_at": 2_000_000_000,
    }


def pending_units(file: int, count: int) -> list[NewUnit]:
    source = UnitSource(key=f"uploads/s/{file:05d}/a.zip", kind="zip_member").model_dump()
    return [
        NewUnit(file, i, f"m{i}.txt", UnitStatus.PENDING, {"source": source, "max_attempts": 3})
        for i in range(count)
    ]


def session_with_units(store: Store, sid: str, units: int, *, now: float = 1000.0) -> None:
    """A session of one zip file already fanned out into `units` pending units."""
    store.put_session(meta_item(sid, now=now), [declared_item(sid, 0, name="a.zip")])
    planned = pending_units(0, units)
    assert store.claim_file(sid, 0, planned, now)
    store.put_units(sid, planned, now, recovering=False)


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
