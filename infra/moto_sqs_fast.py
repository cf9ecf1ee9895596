"""Make moto's standard SQS queues cost O(batch) per request instead of O(queue depth).

Why moto 5.2.5 is slow (moto/sqs/models.py):

* Every time check is `moto.core.utils.unix_time_millis()`: ~6 µs (datetime arithmetic plus an
  import statement per call). `Message.visible` and `Message.delayed` each make one.
* `Queue.messages` (the receivable messages) filters *every* stored message through both, and the
  three `ApproximateNumberOf…` attributes scan every message the same way.
* `SQSBackend.receive_message` scans `queue.messages`, then for *each message it returns* checks
  the retention period through `get_queue_attributes`, which builds `Queue.attributes` three
  times, i.e. nine more full scans per returned message: ≈1–1.5 ms per queued message per call.
* `SQSBackend.send_message` builds `Queue.attributes` once per message (to read
  ContentBasedDeduplication), so queueing n messages costs O(n²).
* `delete_message` and `change_message_visibility` walk every message comparing every receipt
  handle it ever had; receive deep-copies each returned message (and BaseModel.__new__ keeps
  every instance, copies included, in a class-level list for good).

The fix: standard queues are switched (`__class__`) to `FastQueue`, which keeps moto's `Message`
objects and their fields as the truth (visible_at, delayed_until, approximate_receive_count,
receipt handles) but files each live message in an `_Index`: either *available* (an ordered dict,
oldest first) or *waiting* (a heap keyed by the time it becomes receivable; stale heap entries are
skipped by a per-message token). Receiving moves what has come due from the heap and pops from the
front; counts are `len()`s (so building `Queue.attributes` on every SendMessage is cheap too,
the more so with its snake-casing of attribute names cached); receipt handles are a dict; returned
messages are shallow snapshots. Semantics kept: visibility timeout,
DelaySeconds, receive counts, redrive to the DLQ once `maxReceiveCount` receives have happened
(checked on the next receive, as moto and AWS do), retention, long polling (woken by new messages
and by the next message coming due), graceful double delete. The clock is read through
`moto.sqs.models.unix_time_millis`, the same function moto's `Message` uses, so both agree (and
tests can replace it). FIFO queues keep moto's original code: group ordering and deduplication
are not worth re-implementing for a local stack that uses none.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from moto.core.utils import camelcase_to_underscores
from moto.sqs import models as sqs_models
from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend

from infra.patching import Patches

_MAX_VISIBILITY_MS = 43200 * 1000
_install_lock = threading.Lock()


def _now_ms() -> float:
    return float(sqs_models.unix_time_millis())  # type: ignore[attr-defined]


def _receivable(message: Message, now: float) -> bool:
    # The same comparisons as moto's Message.visible and Message.delayed, at one instant.
    return bool(message.visible_at < now and message.delayed_until <= now)


class _Index:
    """Where each live message of one queue is: available now, or waiting until a time."""

    def __init__(self) -> None:
        # Every live message → its current token (insertion ordered: moto's `_messages` order).
        self.tokens: dict[Message, int] = {}
        self.available: OrderedDict[Message, None] = OrderedDict()
        self.waiting: list[tuple[float, int, Message]] = []  # (due ms, token, message), a heap
        self.delayed: set[Message] = set()  # waiting because of DelaySeconds, not in flight
        self.handles: dict[str, Message] = {}  # current and past receipt handles, as moto accepts
        self._next_token = itertools.count()

    def place(self, message: Message, now: float) -> None:
        """File a message that was added or whose times changed; older heap entries go stale."""
        self.available.pop(message, None)
        self.delayed.discard(message)
        token = self.tokens[message] = next(self._next_token)
        if _receivable(message, now):
            self.available[message] = None
            return
        due = max(message.visible_at, message.delayed_until)
        heapq.heappush(self.waiting, (due, token, message))
        if message.delayed_until > now:
            self.delayed.add(message)

    def promote(self, now: float) -> None:
        """Move messages that have come due from the heap to the end of `available`."""
        while self.waiting and self.waiting[0][0] <= now:
            _, token, message = self.waiting[0]
            if self.tokens.get(message) == token:
                if not _receivable(message, now):
                    break  # due exactly now; moto's "visible" is strictly after visible_at
                self.delayed.discard(message)
                self.available[message] = None
            heapq.heappop(self.waiting)

    def remember_handles(self, message: Message) -> None:
        self.handles.update(dict.fromkeys(_handles_of(message), message))

    def forget(self, message: Message) -> None:
        del self.tokens[message]
        self.available.pop(message, None)
        self.delayed.discard(message)
        for handle in _handles_of(message):
            self.handles.pop(handle, None)

    def seconds_until_due(self, now: float) -> float:
        return (self.waiting[0][0] - now) / 1000 if self.waiting else math.inf


class FastQueue(Queue):
    """A standard moto queue whose operations cost O(messages touched), not O(queue depth)."""

    _index: _Index

    @property
    def _messages(self) -> list[Message]:
        # A snapshot for moto code that still reads the list; the index is the truth.
        return list(self._index.tokens)

    @_messages.setter
    def _messages(self, messages: Iterable[Message]) -> None:
        # Assigned by adoption and by moto's purge_queue (`queue._messages = []`).
        self._index = _Index()
        now = _now_ms()
        for message in messages:
            self._index.place(message, now)

    @property
    def messages(self) -> list[Message]:
        with self._messages_lock:
            self._index.promote(_now_ms())
            return list(self._index.available)

    def _counts(self) -> tuple[int, int, int]:
        """(available, delayed, in flight) now. Read on every SendMessage: moto builds all the
        queue's attributes there to look at one, so these must not scan."""
        with self._messages_lock:
            index = self._index
            index.promote(_now_ms())
            available, delayed = len(index.available), len(index.delayed)
            return available, delayed, len(index.tokens) - available - delayed

    @property
    def approximate_number_of_messages(self) -> int:
        return self._counts()[0]

    @property
    def approximate_number_of_messages_delayed(self) -> int:
        return self._counts()[1]

    @property
    def approximate_number_of_messages_not_visible(self) -> int:
        return self._counts()[2]

    def add_message(self, message: Message) -> None:
        if self.lambda_event_source_mappings:
            raise NotImplementedError(
                "moto Lambda event source mappings are not driven for fast queues; "
                "the local stack's dispatcher plays that role"
            )
        with self._messages_lock:
            self._index.place(message, _now_ms())
            # A message redriven from another queue still answers to its handles, as in moto.
            self._index.remember_handles(message)
            self._messages_lock.notify_all()

    def delete_message(self, receipt_handle: str) -> None:
        with self._messages_lock:
            if receipt_handle in self.deleted_messages:
                return
            message = self._index.handles.get(receipt_handle)
            if message is None:
                raise ReceiptHandleIsInvalid()
            self.deleted_messages.update(_handles_of(message))
            self._index.forget(message)

    def change_visibility(self, receipt_handle: str, visibility_timeout: int) -> None:
        with self._messages_lock:
            message = self._index.handles.get(receipt_handle)
            if message is None:
                raise ReceiptHandleIsInvalid()
            total_ms = _now_ms() + visibility_timeout * 1000 - (message.sent_timestamp or 0)
            if total_ms > _MAX_VISIBILITY_MS:
                raise InvalidParameterValue(
                    f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. "
                    "Reason: Total VisibilityTimeout for the message is beyond the limit "
                    "[43200 seconds]"
                )
            message.change_visibility(visibility_timeout)
            self._index.place(message, _now_ms())

    def receive(
        self, count: int, wait_seconds: int, visibility_timeout: int, attribute_names: list[str]
    ) -> list[Message]:
        deadline = time.monotonic() + wait_seconds
        with self._messages_lock:
            while True:
                now = _now_ms()
                received = self._receive_now(count, visibility_timeout, now)
                left = deadline - time.monotonic()
                if received or left <= 0:
                    # Snapshots are taken under the lock: with visibility 0 another receive could
                    # otherwise re-stamp the message first.
                    return [_snapshot(message, attribute_names) for message in received]
                # add_message notifies; a waiting message coming due does not, so wake for it.
                self._messages_lock.wait(max(0.001, min(left, self._index.seconds_until_due(now))))

    def _receive_now(self, count: int, visibility_timeout: int, now: float) -> list[Message]:
        index = self._index
        index.promote(now)
        received: list[Message] = []
        retention_ms = int(self.message_retention_period) * 1000  # type: ignore[attr-defined]
        redrive = self.redrive_policy
        dlq = self.dead_letter_queue if redrive else None
        max_receives = int(redrive["maxReceiveCount"]) if redrive else 0
        while index.available and len(received) < count:
            message, _ = index.available.popitem(last=False)
            if (message.sent_timestamp or 0) + retention_ms <= now:
                index.forget(message)  # past retention: AWS deletes it
            elif dlq and message.approximate_receive_count >= max_receives:
                index.forget(message)
                dlq.add_message(message)
            else:
                message.mark_received(visibility_timeout=visibility_timeout)
                index.remember_handles(message)
                received.append(message)
        # Filed only now so that a visibility timeout of 0 cannot return a message twice.
        for message in received:
            index.place(message, now)
        return received


def _handles_of(message: Message) -> list[str]:
    # Before its first receive a message's handle is None, and moto keeps that None in the list.
    return [handle for handle in message.all_receipt_handles if handle]


def _snapshot(message: Message, attribute_names: list[str]) -> Message:
    """What moto's deepcopy gave: the message as received, with only the asked-for attributes.

    `object.__new__` skips BaseModel.__new__, which would keep every copy alive forever.
    """
    copy = object.__new__(type(message))
    copy.__dict__.update(message.__dict__)
    sqs_models._filter_message_attributes(copy, attribute_names)
    return copy


def _adopt(queue: Queue) -> None:
    with queue._messages_lock:
        messages = queue.__dict__.pop("_messages")
        # mypy thinks moto's models abstract (CloudFormationModel); they are not.
        queue.__class__ = FastQueue  # type: ignore[type-abstract]
        queue._messages = messages


def _release(queue: FastQueue) -> None:
    with queue._messages_lock:
        messages = queue._messages
        queue.__class__ = Queue  # type: ignore[assignment]
        del queue.__dict__["_index"]
        queue._messages = messages


def _all_queues() -> Iterator[Queue]:
    # dict.values: BackendDict's own item access would create backends as a side effect.
    for account in dict.values(sqs_models.sqs_backends):
        for backend in dict.values(account):
            yield from list(backend.queues.values())


_original_create_queue = SQSBackend.create_queue
_original_receive_message = SQSBackend.receive_message
_original_change_message_visibility = SQSBackend.change_message_visibility


def _create_queue(
    self: SQSBackend, name: str, tags: dict[str, str] | None = None, **kwargs: Any
) -> Queue:
    queue = _original_create_queue(self, name, tags, **kwargs)
    if type(queue) is Queue and not queue.fifo_queue:
        _adopt(queue)
    return queue


def _receive_message(
    self: SQSBackend,
    queue_name: str,
    count: int,
    wait_seconds_timeout: int,
    visibility_timeout: int,
    message_attribute_names: list[str] | None = None,
) -> list[Message]:
    queue = self.get_queue(queue_name)
    if isinstance(queue, FastQueue):
        return queue.receive(
            count, int(wait_seconds_timeout), int(visibility_timeout), message_attribute_names or []
        )
    return _original_receive_message(
        self, queue_name, count, wait_seconds_timeout, visibility_timeout, message_attribute_names
    )


def _change_message_visibility(
    self: SQSBackend, queue_name: str, receipt_handle: str, visibility_timeout: int
) -> None:
    queue = self.get_queue(queue_name)
    if isinstance(queue, FastQueue):
        queue.change_visibility(receipt_handle, int(visibility_timeout))
    else:
        _original_change_message_visibility(self, queue_name, receipt_handle, visibility_timeout)


# Queue.attributes, built on every SendMessage, spends most of its time converting the same
# twenty attribute names to snake case: a pure function, so cached.
_PATCHES = Patches(
    (SQSBackend, "create_queue", _create_queue),
    (SQSBackend, "receive_message", _receive_message),
    (SQSBackend, "change_message_visibility", _change_message_visibility),
    (sqs_models, "camelcase_to_underscores", functools.cache(camelcase_to_underscores)),
)


def install() -> None:
    """Patch moto's SQS backend in this process; existing standard queues are adopted too."""
    with _install_lock:
        if _PATCHES.applied:
            return
        _PATCHES.apply()
        for queue in _all_queues():
            if type(queue) is Queue and not queue.fifo_queue:
                _adopt(queue)


def uninstall() -> None:
    """Restore moto's code and turn every fast queue back into a plain one (for comparisons)."""
    with _install_lock:
        _PATCHES.revert()
        for queue in _all_queues():
            if isinstance(queue, FastQueue):
                _release(queue)


def status() -> dict[str, Any]:
    """Whether the patch is live here and which queues use it: asked of the moto child process."""
    return {
        "installed": _PATCHES.applied,
        "fast_queues": sorted(q.name for q in _all_queues() if isinstance(q, FastQueue)),
    }
