"""The operator's numbers as CloudWatch metrics (Powertools Metrics, embedded metric format).

On AWS the sweeper, once a minute, prints what `GET /admin/stats` answers as EMF lines on stdout;
CloudWatch Logs turns them into metrics in the `chute` namespace, for dashboards and alarms
without a PutMetricData call: sessions and units by status, units finished in the last 5 minutes,
stuck work, each queue's messages (dimension `Queue`) and failures by error code (dimension
`Code`). The queues' oldest-message age is SQS's own metric already (AWS/SQS
ApproximateAgeOfOldestMessage), so it is not repeated here. Off by default (the embedded stack's
terminal would fill with JSON); the deployment turns it on (`CHUTE_OPERATOR_METRICS=true`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAMESPACE = "chute"
SERVICE = "chute"


def camel(name: str) -> str:
    """`completed_with_errors` → `CompletedWithErrors`: a metric name from a status or a key."""
    return "".join(part.title() for part in name.split("_"))


def publish_operator_metrics(stats: Mapping[str, Any]) -> int:
    """Print the operator's numbers as EMF blobs; how many were printed."""
    # Imported here: only the sweeper, and only on AWS, needs Powertools Metrics.
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    count = MetricUnit.Count
    blobs = 0

    def flushed(metrics: EphemeralMetrics) -> None:
        nonlocal blobs
        metrics.flush_metrics()
        blobs += 1

    overall = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    overall.add_metric(name="SessionsActive", unit=count, value=stats["sessions"]["active"])
    for status, n in stats["sessions"]["by_status"].items():
        overall.add_metric(name=f"Sessions{camel(status)}", unit=count, value=n)
    for status, n in stats["units"]["by_status"].items():
        overall.add_metric(name=f"Units{camel(status)}", unit=count, value=n)
    finished = stats["throughput"]["units_finished"]
    overall.add_metric(name="UnitsFinished5m", unit=count, value=finished)
    for what, n in stats["stuck"].items():
        overall.add_metric(name=f"Stuck{camel(what)}", unit=count, value=n)
    flushed(overall)
    for queue in stats["queues"]:
        metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        metrics.add_dimension(name="Queue", value=queue["name"])
        for key in ("visible", "in_flight", "delayed"):
            metrics.add_metric(name=f"Messages{camel(key)}", unit=count, value=queue[key])
        flushed(metrics)
    for code, n in stats["failures_by_code"].items():
        metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        metrics.add_dimension(name="Code", value=code)
        metrics.add_metric(name="UnitsFailedByCode", unit=count, value=n)
        flushed(metrics)
    return blobs
