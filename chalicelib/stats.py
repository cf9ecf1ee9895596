"""The operator's view (`GET /admin/stats`, DESIGN §8): the queues, the sessions under way and
their units, throughput, failures by code, and what is stuck — without scanning the table.

How each is read, and what it costs:
- queues: one GetQueueAttributes per queue and dead-letter queue; the age of the oldest message
  is SQS's CloudWatch metric (ApproximateAgeOfOldestMessage, the last 5 minutes' maximum), null
  where there is none (the embedded stack has no CloudWatch metrics for its queues);
- sessions under way: GSI2's OPEN list (every session not yet done), then one Query of each
  session's META partition (at most MAX_SESSIONS): their status, their units per status;
- throughput over the last 5 minutes: from those sessions' counters — the units finished since
  the window began, taken as each session's finished units over its time since its first finish
  (exact for a session that began finishing within the window, an average rate otherwise);
- failures by code: the failed and timed-out units of those sessions (a filtered Query of each
  session that has any, at most MAX_FAILED_UNITS read in all);
- stuck: GSI2's lists read past their due time — leases run out and not yet given back, retries
  whose message is overdue, files claimed whose units were not all sent.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from chalicelib.budget import FANOUT_GRACE_S, STUCK_GRACE_S
from chalicelib.config import AdminSettings
from chalicelib.models import UnitStatus
from chalicelib.notify import failed_units
from chalicelib.services import Services
from chalicelib.sessions import session_status
from chalicelib.store.items import SessionMeta, SessionView
from chalicelib.store.keys import DueList

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType

WINDOW_S = 300.0
MAX_SESSIONS = 500
MAX_FAILED_UNITS = 5_000
MAX_LISTED = 10_000
_QUEUE_ATTRIBUTES: list[QueueAttributeNameType] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def admin_stats(services: Services[AdminSettings]) -> dict[str, Any]:
    now = services.clock.now()
    views = _active_sessions(services)
    return {
        "generated_at": now,
        "queues": [_queue(services, name, url, now) for name, url in _queue_urls(services)],
        "sessions": {
            "active": len(views),
            "by_status": dict(Counter(session_status(v).value for v in views)),
            "truncated": len(views) >= MAX_SESSIONS,
        },
        "units": {
            "by_status": {
                s.value: sum(v.count(s) for v in views)
                for s in UnitStatus
                if any(v.count(s) for v in views)
            }
        },
        "throughput": {
            "window_s": WINDOW_S,
            "units_finished": round(sum(_finished_in_window(v, now) for v in views)),
        },
        "failures_by_code": _failures_by_code(services, views),
        "stuck": {
            "leases_expired": _count(services, DueList.LEASE, now - STUCK_GRACE_S),
            "retries_overdue": _count(services, DueList.RETRY, now),
            "fanouts_unsent": _count(services, DueList.FANOUT, now - FANOUT_GRACE_S),
        },
    }


def _queue_urls(services: Services[AdminSettings]) -> list[tuple[str, str]]:
    s = services.settings
    urls = [
        s.uploads_queue_url,
        s.work_queue_url,
        s.work_high_queue_url,
        s.uploads_dlq_url,
        s.work_dlq_url,
        s.work_high_dlq_url,
    ]
    return [(url.rstrip("/").rsplit("/", 1)[-1], url) for url in urls if url]


def _queue(services: Services[AdminSettings], name: str, url: str, now: float) -> dict[str, Any]:
    attributes = services.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=_QUEUE_ATTRIBUTES)[
        "Attributes"
    ]
    return {
        "name": name,
        "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        "oldest_age_s": _oldest_age_s(services, name, now),
    }


def _oldest_age_s(services: Services[AdminSettings], name: str, now: float) -> float | None:
    from datetime import UTC, datetime

    try:
        points = services.aws_client("cloudwatch").get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": name}],
            StartTime=datetime.fromtimestamp(now - WINDOW_S, UTC),
            EndTime=datetime.fromtimestamp(now, UTC),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
    except Exception:  # no metrics to read (no permission, no CloudWatch): not known
        return None
    return max((float(p["Maximum"]) for p in points), default=None)


def _active_sessions(services: Services[AdminSettings]) -> list[SessionView]:
    views = []
    for item in services.store.due(DueList.OPEN, max_items=MAX_SESSIONS):
        view = services.store.load_session(SessionMeta.model_validate(item).sid)
        if view is not None and view.meta.done_at is None:
            views.append(view)
    return views


def _finished_in_window(view: SessionView, now: float) -> float:
    first, finished = view.first_done_at, view.finished
    if first is None or not finished:
        return 0.0
    if first >= now - WINDOW_S:
        return float(finished)
    last = view.last_done_at or first
    if last < now - WINDOW_S:
        return 0.0
    return finished * WINDOW_S / max(now - first, WINDOW_S)


def _failures_by_code(
    services: Services[AdminSettings], views: list[SessionView]
) -> dict[str, int]:
    codes: Counter[str] = Counter()
    budget = MAX_FAILED_UNITS
    for view in views:
        if budget <= 0:
            break
        failures = failed_units(services, view, limit=budget)
        budget -= len(failures)
        codes.update(f.code for f in failures)
    return dict(codes.most_common())


def _count(services: Services[AdminSettings], due_list: DueList, before: float) -> int:
    return sum(1 for _ in services.store.due(due_list, before, max_items=MAX_LISTED))
