"""The table's items as typed models, each with the one function that writes it as an item.

Nothing outside the store spells an attribute name: callers hold these models, the store turns
them into items and back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ConfigDict, Field

from chalicelib.modelbase import Model
from chalicelib.models import (
    TERMINAL_UNIT_STATUSES,
    Event,
    Preferences,
    SessionState,
    UnitError,
    UnitStatus,
)
from chalicelib.sources import UnitSource
from chalicelib.store.codec import Item
from chalicelib.store.keys import (
    META_SK,
    PREFS_SK,
    DueList,
    UnitRef,
    declared_file_key,
    due_pk,
    index_key,
    meta_key,
    user_pk,
)


def counter(status: UnitStatus | str) -> str:
    """The counter attribute of a status on a shard (top-level: ADD works on those only)."""
    return f"n_{UnitStatus(status).value}"


# Amounts a unit's finish adds to its shard besides the counts (a prompt's model tokens): summed
# like the counts, so the spend so far is part of the one status read.
AMOUNTS = ("tokens_in", "tokens_out")


class SessionMeta(Model):
    """The session's META item: what was asked for, and the session-level state."""

    sid: str
    owner: str
    name: str | None = None
    job_type: str
    priority: int
    options: dict[str, Any] = Field(default_factory=dict)
    # Which events reach the owner by which channel: their preferences when the session was
    # created, with the session's own choice applied (DESIGN §7).
    notify: Preferences = Field(default_factory=Preferences)
    state: SessionState = SessionState.ACTIVE
    # Why a paused session paused: "requested" (the person) or "failure_rate" (auto-pause).
    pause_reason: str | None = None
    state_changed_at: float | None = None
    auto_paused_at: float | None = None  # a session pauses itself at most once
    # How many times the session was reopened by a retry: each reopening completes again.
    completions: int = 0
    files_total: int
    files_pending: int
    total: int = 0
    version: int = 1
    created_at: float
    upload_deadline: float
    expires_at: int
    done_at: float | None = None
    # Why the input was refused as a whole (a rejected batch): the session ends with no unit.
    error: UnitError | None = None
    # Chains (chalicelib.chains): the session this one follows up on, and its follow-ups.
    parent_id: str | None = None
    children: list[str] = Field(default_factory=list)
    notified: bool = False
    # Notification events claimed (event → when) and recorded as sent, per completion (§7).
    event_claims: dict[str, float] = Field(default_factory=dict)
    events_sent: set[str] = Field(default_factory=set)

    def to_item(self, *, first_check: float) -> Item:
        """The item as created: listed as OPEN until first_check (the upload deadline)."""
        item = self.model_dump(mode="python", exclude_none=True, exclude={"events_sent"})
        return {
            **meta_key(self.sid),
            "GSI1PK": user_pk(self.owner),
            "GSI1SK": f"{int(self.created_at * 1000):014d}#{self.sid}",
            "GSI2PK": due_pk(DueList.OPEN, meta_key(self.sid)),
            "GSI2SK": index_key(first_check, self.sid),
            **item,
        }


class CounterShard(Model):
    model_config = ConfigDict(defer_build=True, extra="allow")

    remaining: int = 0
    version: int = 0
    first_done_at: float | None = None
    last_done_at: float | None = None

    def count(self, status: UnitStatus) -> int:
        return int((self.model_extra or {}).get(counter(status), 0))

    def amount(self, name: str) -> int:
        return int((self.model_extra or {}).get(name, 0))


@dataclass(frozen=True)
class SessionView:
    """META with its counter shards summed: everything a status read or a completion needs."""

    meta: SessionMeta
    counts: Mapping[UnitStatus, int]
    remaining: int
    version: int
    first_done_at: float | None
    last_done_at: float | None
    amounts: Mapping[str, int]

    @classmethod
    def of(cls, items: Sequence[Item]) -> SessionView | None:
        meta = next((i for i in items if i["SK"] == META_SK), None)
        if meta is None:
            return None
        shards = [CounterShard.model_validate(i) for i in items if i["SK"] != META_SK]
        firsts = [s.first_done_at for s in shards if s.first_done_at is not None]
        lasts = [s.last_done_at for s in shards if s.last_done_at is not None]
        session = SessionMeta.model_validate(meta)
        return cls(
            meta=session,
            counts={s: sum(shard.count(s) for shard in shards) for s in UnitStatus},
            remaining=sum(s.remaining for s in shards),
            version=session.version + sum(s.version for s in shards),
            first_done_at=min(firsts, default=None),
            last_done_at=max(lasts, default=None),
            amounts={name: sum(shard.amount(name) for shard in shards) for name in AMOUNTS},
        )

    @property
    def sid(self) -> str:
        return self.meta.sid

    def count(self, status: UnitStatus) -> int:
        return self.counts.get(status, 0)

    @property
    def finished(self) -> int:
        """Units that ran and ended (completed, failed, timed out): the throughput of the ETA."""
        done = (UnitStatus.COMPLETED, UnitStatus.FAILED, UnitStatus.TIMEOUT, UnitStatus.SKIPPED)
        return sum(self.count(s) for s in done)


class PlanRecord(Model):
    """Which plan a file's claim counted: inline, or the S3 object holding it."""

    digest: str
    inline: str | None = None
    key: str | None = None


class DeclaredFile(Model):
    """One manifest entry, and how far its fan-out got."""

    sid: str
    file: int
    name: str
    size: int
    content_type: str
    owner: str
    job_type: str
    priority: int
    expires_at: int
    # Set once, by whoever claimed the file (the fan-out, or the sweeper for a missing upload).
    fanned_out_at: float | None = None
    units: int | None = None
    plan: PlanRecord | None = None
    units_sent: bool = False

    def to_item(self) -> Item:
        return {**declared_file_key(self.sid, self.file), **self.model_dump(exclude_none=True)}


class UnitItem(Model):
    """One unit: a file, a zip member or a row, and where its processing stands."""

    sid: str
    file: int
    index: int
    name: str
    status: UnitStatus
    attempt: int = 0
    max_attempts: int
    content_type: str = "application/octet-stream"
    size: int | None = None
    archive: str | None = None  # the zip it came from
    source: UnitSource | None = None  # None: failed or skipped at fan-out, nothing to read
    stage: str | None = None
    progress: float = 0.0
    error: UnitError | None = None
    retryable: bool = False
    lease_until: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: int | None = None
    retry_delay_s: int | None = None
    result_key: str | None = None
    result: dict[str, Any] | None = None
    checkpoint: Any = None
    # A checkpoint too large for the item, in S3 (chalicelib.unitrun).
    checkpoint_key: str | None = None
    created_at: float
    expires_at: int | None = None

    @property
    def ref(self) -> UnitRef:
        return UnitRef(self.sid, self.file, self.index)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_UNIT_STATUSES

    def to_item(self) -> Item:
        item = self.model_dump(mode="python", exclude_none=True)
        if self.terminal and self.finished_at is None:
            item["finished_at"] = self.created_at
        return {**self.ref.key, **item}


class UnitPatch(Model):
    """What a transition may set on a unit besides its status and attempt, which the transition
    itself decides. A field left out is not written; a field set to None is removed."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    stage: str | None = None
    progress: float | None = None
    lease_until: float | None = None
    started_at: float | None = None
    duration_ms: int | None = None
    error: UnitError | None = None
    retryable: bool | None = None
    retry_delay_s: int | None = None
    result_key: str | None = None
    result: dict[str, Any] | None = None
    checkpoint: Any = None
    checkpoint_key: str | None = None

    def sets(self) -> dict[str, Any]:
        dumped = self.model_dump(mode="python", include=self.model_fields_set)
        return {k: v for k, v in dumped.items() if v is not None}

    def removes(self) -> list[str]:
        return [k for k in sorted(self.model_fields_set) if getattr(self, k) is None]


class EmailSubscription(Model):
    """A person's email subscription to the events topic, as chute made it (on AWS)."""

    address: str
    arn: str
    # The events its filter policy lets through (with the person's user_id).
    events: list[str]


class PreferencesItem(Model):
    """A person's notification preferences (DESIGN §7): `U#{owner}`, `PREFS`."""

    owner: str
    preferences: Preferences
    subscription: EmailSubscription | None = None

    def to_item(self) -> Item:
        return {
            "PK": user_pk(self.owner),
            "SK": PREFS_SK,
            **self.model_dump(mode="json", exclude_none=True),
        }


class NotificationItem(Model):
    """One in-app notification. Its key is fixed by the completion it tells of, so a re-send
    overwrites the same item instead of adding another."""

    owner: str
    session_id: str
    event: str
    subject: str
    message: str
    created_at: float  # the completion's done_at
    expires_at: int

    def to_item(self) -> Item:
        # Events of one instant sort in the order they happen (started before completed).
        rank = next((i for i, e in enumerate(Event) if e.value == self.event), 99)
        sk = f"N#{int(self.created_at * 1000):014d}#{self.session_id}#{rank:02d}#{self.event}"
        return {"PK": user_pk(self.owner), "SK": sk, **self.model_dump()}
