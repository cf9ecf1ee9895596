"""The embedded stack's AWS state on disk: moto's backends pickled to `.chute/state/`, and put
back when the stack starts again, so sessions (and their queued messages) survive a restart.

Runs inside the moto child process (infra.moto_server), where the backends live. What is kept is
everything chute's resources hold — S3 objects, DynamoDB items, SQS messages with their
visibility, SNS subscriptions — as moto holds it, so a message in flight at the stop comes back
once its visibility timeout has passed, exactly as after a crash on AWS.

A snapshot taken while requests are being served is not one instant across services: the
DynamoDB table is copied under the lock every DynamoDB request takes (infra.moto_ddb_fast), so the
table itself is consistent, while the queues are copied a moment later. `clean` says the stack had
stopped its handlers first; after an unclean one the stack runs chute's recovery
(chalicelib.recovery), which sends what a message lost in between would have carried.
"""

from __future__ import annotations

import contextlib
import copyreg
import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any

SERVICES = ("s3", "dynamodb", "sqs", "sns")
FORMAT = 1
ATTEMPTS = 5


def _reduce_lock(_lock: Any) -> tuple[Any, tuple[()]]:
    return threading.Lock, ()


def _reduce_rlock(_lock: Any) -> tuple[Any, tuple[()]]:
    return threading.RLock, ()


def _reduce_condition(_condition: Any) -> tuple[Any, tuple[()]]:
    return threading.Condition, ()


def _register_reducers() -> None:
    """Locks and conditions in moto's objects (SQS queues) are pickled as new, unheld ones."""
    copyreg.pickle(type(threading.Lock()), _reduce_lock)
    copyreg.pickle(type(threading.RLock()), _reduce_rlock)
    copyreg.pickle(threading.Condition, _reduce_condition)


def _backend(name: str) -> Any:
    from moto.backends import get_backend

    return get_backend(name)  # type: ignore[call-overload]


def _pickled(name: str) -> bytes:
    """One service's state; retried when a request changed it mid-copy."""
    from infra.moto_ddb_fast import requests_lock

    for attempt in range(ATTEMPTS):
        try:
            # The table is copied under the lock every DynamoDB request takes: one instant.
            with requests_lock() if name == "dynamodb" else contextlib.nullcontext():
                return pickle.dumps(dict(_backend(name)), protocol=pickle.HIGHEST_PROTOCOL)
        except RuntimeError:  # "dictionary changed size during iteration"
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(0.01)
    raise AssertionError("unreachable")


def _index_buckets(s3: Any) -> None:
    """moto finds a bucket's account through an index kept beside its backends, not in them:
    without it a restored bucket is unknown, and creating it again replaces it with an empty
    one (moto 5.2.5, moto/s3/models.py, `S3BackendDict.bucket_accounts`)."""
    s3.bucket_accounts.clear()
    for account, partitions in s3.items():
        for partition, backend in partitions.items():
            for bucket in backend.buckets:
                s3.bucket_accounts[bucket] = (partition, account)


def save(path: Path, *, clean: bool) -> dict[str, Any]:
    """Write every service's state to `path` (atomically); what was written."""
    _register_reducers()
    started = time.monotonic()
    state = {name: _pickled(name) for name in SERVICES}
    payload = {"format": FORMAT, "clean": clean, "saved_at": time.time(), "services": state}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as out:
        pickle.dump(payload, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    return {
        "bytes": path.stat().st_size,
        "seconds": round(time.monotonic() - started, 3),
        "clean": clean,
    }


def restore(path: Path) -> dict[str, Any] | None:
    """Put a snapshot's state into moto's backends (before the server serves anything); what
    was restored, or None when there is no snapshot (or one this version cannot read)."""
    if not path.exists():
        return None
    _register_reducers()
    started = time.monotonic()
    try:
        with open(path, "rb") as source:
            payload = pickle.load(source)  # our own file, written by save()
        if payload.get("format") != FORMAT:
            raise ValueError(f"snapshot format {payload.get('format')!r}")
        states = {name: pickle.loads(payload["services"][name]) for name in SERVICES}
    except Exception as exc:  # a damaged snapshot, or one of another moto: start empty
        kept = path.with_name(f"{path.name}.unreadable")
        os.replace(path, kept)
        return {"error": f"{type(exc).__name__}: {exc}", "kept_at": str(kept)}
    for name, state in states.items():
        backend = _backend(name)
        backend.clear()
        backend.update(state)
    _index_buckets(_backend("s3"))
    return {
        "clean": bool(payload["clean"]),
        "saved_at": payload["saved_at"],
        "seconds": round(time.monotonic() - started, 3),
    }
