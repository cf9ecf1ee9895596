"""Where every item lives: partition and sort keys, counter shards and the sparse due lists.

A session's META item and its COUNTER_SHARDS counter items share a partition of their own
(PK M#{sid}; SK META, C00 …), apart from the session's units (PK S#{sid}). Each unit always
counts on the same shard, so no per-unit write touches META and no single item takes every
transition (DynamoDB allows ~1,000 WCU/s per item). A status read is one Query of that small
partition, whatever the number of units.

Each due list is spread over DUE_SHARDS partitions of GSI2 (`LEASE#00` … `LEASE#15`): with one
constant key, every claim of every session would write one GSI partition, and DynamoDB throttles
the table's writes when an index partition falls behind (~1,000 WCU/s each). An item's shard is
fixed by a hash of its table key, so rewriting it (a heartbeat, a reschedule) lands on the same
shard; readers read every shard, and the unsharded key items were written under before sharding.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

COUNTER_SHARDS = 16
# Shards of each GSI2 due list. At 1,000 units/s the lease list takes ~2,000 index writes/s
# (on and off per unit; bench.hot_items measures it): ~125 per shard, an eighth of the limit.
DUE_SHARDS = 16
META_SK = "META"
PREFS_SK = "PREFS"


class DueList(StrEnum):
    """GSI2 is sparse: only items something must come back to carry its keys, sorted by when."""

    OPEN = "OPEN"  # sessions not yet done: upload deadline, then completion reconciliation
    NOTIFY = "NOTIFY"  # done sessions whose notification is not yet recorded as sent
    FANOUT = "FANOUT"  # declared files claimed by a fan-out whose work was not yet all sent
    LEASE = "LEASE"  # running units, by lease expiry
    RETRY = "RETRY"  # units requeued for another attempt, by when its message is overdue
    DEAD = "DEAD"  # units failed as dead letters, until an operator re-drives them (redrive)


def due_shard(key: Mapping[str, str]) -> int:
    """The due-list shard of the item with this table key: the same for every write of it."""
    return zlib.crc32(f"{key['PK']}|{key['SK']}".encode()) % DUE_SHARDS


def due_pk(due_list: DueList, key: Mapping[str, str]) -> str:
    """The GSI2 partition key the item with this table key is listed under on `due_list`."""
    return f"{due_list.value}#{due_shard(key):02d}"


def due_pks(due_list: DueList) -> list[str]:
    """Every partition of a due list a reader must read: its shards, then the unsharded key
    that items listed before sharding still carry (until their next move re-lists them)."""
    return [f"{due_list.value}#{shard:02d}" for shard in range(DUE_SHARDS)] + [due_list.value]


def index_key(when: float, *parts: str) -> str:
    return "#".join([f"{when:017.3f}", *parts])


def meta_pk(sid: str) -> str:
    return f"M#{sid}"


def counter_sk(shard: int) -> str:
    return f"C{shard:02d}"


def session_pk(sid: str) -> str:
    return f"S#{sid}"


def unit_sk(file: int, index: int) -> str:
    # File ordinal first, then member/row index: a Query on the session returns input order.
    return f"F#{file:05d}#{index:06d}"


def declared_file_sk(file: int) -> str:
    return f"D#{file:05d}"


def user_pk(owner: str) -> str:
    return f"U#{owner}"


def ordinal_of(file: int, index: int) -> str:
    return f"{file:05d}-{index:06d}"


def shard_of(file: int, index: int) -> int:
    return zlib.crc32(unit_sk(file, index).encode()) % COUNTER_SHARDS


@dataclass(frozen=True)
class UnitRef:
    """One unit of one session: what every transition is addressed to."""

    sid: str
    file: int
    index: int

    @property
    def key(self) -> dict[str, str]:
        return {"PK": session_pk(self.sid), "SK": unit_sk(self.file, self.index)}

    @property
    def shard(self) -> int:
        return shard_of(self.file, self.index)

    @property
    def ordinal(self) -> str:
        return ordinal_of(self.file, self.index)


def meta_key(sid: str) -> dict[str, str]:
    return {"PK": meta_pk(sid), "SK": META_SK}


def shard_key(sid: str, shard: int) -> dict[str, str]:
    return {"PK": meta_pk(sid), "SK": counter_sk(shard)}


def declared_file_key(sid: str, file: int) -> dict[str, str]:
    return {"PK": session_pk(sid), "SK": declared_file_sk(file)}
