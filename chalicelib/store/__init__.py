"""The data layer (DESIGN §2): one DynamoDB table, typed items, and one transition function.

keys — where items live · codec — DynamoDB's wire format · table — the primitives ·
items — the typed items · transitions — every status and counter change · queries — reads ·
writes — creation and due-list marks · events — notification claims ·
control — the session's state (pause, resume, cancel).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.store.control import Control
from chalicelib.store.events import Events
from chalicelib.store.queries import Queries, StartKey
from chalicelib.store.table import Table
from chalicelib.store.transitions import Outcome, Transitions, may_be_done
from chalicelib.store.writes import Writes

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["Outcome", "StartKey", "Store", "may_be_done"]


class Store(Transitions, Queries, Writes, Events, Control):
    def __init__(
        self, ddb: DynamoDBClient, table: str, *, sleep: Callable[[float], None] | None = None
    ) -> None:
        self._table = Table(ddb, table, **({"sleep": sleep} if sleep else {}))
