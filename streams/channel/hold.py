"""Holding decisions until their ``not_before``, per partition, without blocking the partition.

Pure bookkeeping (no Kafka, no Redis, no clock of its own) for
:class:`~streams.channel.client.ChannelClient`:

* A record read from a partition is *ready* at once unless it is an ENGAGE
  whose ``not_before`` is still ahead, or its customer already has a held
  record: a customer's records are handed over in topic order, so a later
  decision never overtakes an earlier one of the same customer (a SUPPRESS
  never lands before the ENGAGE it followed).
* Other customers of the partition go on: one customer's quiet hours hold
  only that customer.
* A forget record (an erased customer) drops the customer's held decisions
  (docs/erasure.md: do not act on them any more) and is ready at once.
* The partition's commit point is the lowest offset still held or in hand,
  else one past the last record read, so a restart reads every held record
  again (and the deduplication skips what was already handed over).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """One record of a partition: its offset, its customer, when it may be handed over, and what it is."""

    offset: int
    customer: str
    due: int | None
    item: T


@dataclass(slots=True)
class PartitionHold(Generic[T]):
    """The records of one partition that were read but not yet finished."""

    next_offset: int | None = None
    held: dict[str, deque[Entry[T]]] = field(default_factory=dict)
    # Offsets handed over (ready) but not yet finished: they pin the commit point too.
    open: set[int] = field(default_factory=set)

    @property
    def held_count(self) -> int:
        return sum(len(q) for q in self.held.values())

    def add(self, entry: Entry[T], now: int) -> Entry[T] | None:
        """Take a record; return it if it is ready now, else hold it (None)."""
        self.next_offset = entry.offset + 1
        queue = self.held.get(entry.customer)
        if queue is None and (entry.due is None or entry.due <= now):
            self.open.add(entry.offset)
            return entry
        if queue is None:
            queue = self.held[entry.customer] = deque()
        queue.append(entry)
        return None

    def skip(self, offset: int) -> None:
        """A record that is not handed over (not a decision, expired): only the read position moves."""
        self.next_offset = offset + 1

    def forget(self, customer: str) -> list[Entry[T]]:
        """Drop a customer's held records (a forget record came); return them."""
        return list(self.held.pop(customer, ()))

    def due(self, now: int) -> Iterator[Entry[T]]:
        """Held records that became ready, in offset order; each customer's in topic order."""
        ready: list[Entry[T]] = []
        for customer in list(self.held):
            queue = self.held[customer]
            while queue and (queue[0].due is None or queue[0].due <= now):
                ready.append(queue.popleft())
            if not queue:
                del self.held[customer]
        ready.sort(key=lambda e: e.offset)
        for entry in ready:
            self.open.add(entry.offset)
        return iter(ready)

    def next_due(self) -> int | None:
        """The earliest time a held record becomes ready, if any is held."""
        heads = [q[0].due for q in self.held.values() if q and q[0].due is not None]
        return min(heads) if heads else None

    def finish(self, offset: int) -> None:
        """A ready record was dealt with (handed over, skipped or dropped)."""
        self.open.discard(offset)

    def commit_point(self) -> int | None:
        """The offset to commit: nothing before it is still held or in hand."""
        pinned = [q[0].offset for q in self.held.values() if q]
        pinned.extend(self.open)
        if pinned:
            return min(pinned)
        return self.next_offset
