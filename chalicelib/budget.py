"""The time budget, defined once: function timeouts, queue visibility, leases.

Everything that must agree about time derives from here — the Lambda timeouts in
.chalice/config.json (a test checks they match), the queues' visibility timeouts in
infra/resources.py, the local dispatcher's timeouts and the worker's leases.
"""

from __future__ import annotations

WORKER_TIMEOUT_S = 300
UPLOAD_TIMEOUT_S = 900
SWEEPER_TIMEOUT_S = 300
API_TIMEOUT_S = 30

# AWS advises a queue visibility timeout of at least six times the consuming function's timeout,
# so that a batch's retries by the Lambda service fit inside one visibility period.
VISIBILITY_FACTOR = 6
WORK_VISIBILITY_S = VISIBILITY_FACTOR * WORKER_TIMEOUT_S
UPLOADS_VISIBILITY_S = VISIBILITY_FACTOR * UPLOAD_TIMEOUT_S

# A unit's lease never outlives the invocation that holds it: a worker killed at its timeout
# leaves a lease that runs out right after, far inside the message's visibility, so the next
# delivery (or the sweeper) finds it expired. Heartbeats renew it up to the same bound.
LEASE_MARGIN_S = 5.0
# A unit is not started with less time than this left in the invocation: its message is handed
# back for another invocation instead.
MIN_START_S = 10.0
# The sweeper acts on a unit this long after its lease ran out (SQS would have redelivered its
# message by then, unless the message was lost), and resends a requeued unit's message this long
# after it was due.
STUCK_GRACE_S = 120.0
# A claimed file whose units were not all sent this long after the claim is finished by the
# sweeper (the fan-out that claimed it crashed and its message is gone).
FANOUT_GRACE_S = float(UPLOAD_TIMEOUT_S + 60)
# An unfinished session is looked at again this often: completion that no finisher claimed.
RECHECK_S = 300.0
# A notification claim older than this, never recorded as sent, may be claimed again. Longer than
# a publish can take with the SNS client's retries.
NOTIFY_CLAIM_S = 120.0
