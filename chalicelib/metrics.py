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

from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.config import AdminSettings
from chalicelib.log import logger
from chalicelib.services import Services

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


# The metrics follow the sweep in the same invocation: they are skipped when less is left.
MIN_REMAINING_MS = 30_000


def publish_after_sweep(
    services: Services[AdminSettings], remaining_ms: Callable[[], int] | None
) -> bool:
    """The sweeper's last step on AWS: the operator's numbers as metrics, best effort — a failure
    or too little time left is logged, never the sweep's failure (which would raise the
    function's error alarm and have EventBridge run the sweep again)."""
    from chalicelib.stats import admin_stats

    if remaining_ms is not None and remaining_ms() < MIN_REMAINING_MS:
        logger.warning("operator metrics skipped: too little time left after the sweep")
        return False
    try:
        publish_operator_metrics(admin_stats(services))
    except Exception:
        logger.exception("operator metrics not published")
        return False
    return True
