"""One partition's driver around the engine: stream time, watermark, lateness,
duplicates and timers. `replay` and the live workers both run this class
(through :mod:`streams.engine.step`), so they decide alike; they differ only
in where state lives (a dict, a Faust table), where decisions go, and whether
an idle policy (:class:`~streams.engine.idle.IdleAdvance`) moves a quiet
partition's stream time by a wall clock it is given.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from enum import Enum
from typing import Protocol

from streams.decisions import Decision
from streams.engine.engine import Engine
from streams.engine.idle import IdleAdvance
from streams.engine.state import CustomerState
from streams.events import Event


class StateStore(Protocol):
    """Where per-customer state lives."""

    def get(self, customer_id: str) -> CustomerState | None: ...
    def put(self, customer_id: str, state: CustomerState) -> None: ...
    def delete(self, customer_id: str) -> None: ...


class DictStore:
    """In-memory store, for replay and tests."""

    def __init__(self) -> None:
        self.data: dict[str, CustomerState] = {}

    def get(self, customer_id: str) -> CustomerState | None:
        return self.data.get(customer_id)

    def put(self, customer_id: str, state: CustomerState) -> None:
        self.data[customer_id] = state

    def delete(self, customer_id: str) -> None:
        self.data.pop(customer_id, None)


class Outcome(Enum):
    """What became of one record. :meth:`Processor.process` answers the first four;
    :class:`~streams.engine.step.Step` adds the last two, decided before processing."""

    EVALUATED = "evaluated"
    IGNORED = "ignored"  # valid and on time, but no topology reads its type
    DUPLICATE = "duplicate"
    LATE = "late"
    INVALID = "invalid"  # not a valid event (contract section 1): never processed
    ROUTED = "routed"  # valid, but the step's admit hook sent it elsewhere (live: another partition)


class Processor:
    """Feeds one partition's events, in arrival order, through the engine."""

    def __init__(self, engine: Engine, store: StateStore, idle: IdleAdvance | None = None) -> None:
        self.engine = engine
        self.store = store
        self.idle = idle
        self.lateness = engine.policies.lateness
        self.stream_time: int | None = None
        self._floor: int | None = None  # a watermark set from outside (replay --until)
        self._timers: list[tuple[int, str]] = []  # (deadline, customer_id), lazily refreshed
        self._read_types = engine.catalog.roles  # membership test only: the per-event hot path

    @property
    def watermark(self) -> int | None:
        wm = None if self.stream_time is None else self.stream_time - self.lateness
        if self._floor is not None and (wm is None or self._floor > wm):
            return self._floor
        return wm

    def process(self, ev: Event) -> tuple[Outcome, list[Decision]]:
        reads = ev.type in self._read_types
        cid = ev.customer_id
        if reads:
            state = self.store.get(cid)
            # Duplicates are recognised before lateness (contract section 2).
            if state is not None and state.has_event(ev.event_id):
                return Outcome.DUPLICATE, []
        t = ev.occurred_at
        stream_time = self.stream_time
        if stream_time is not None:
            wm = stream_time - self.lateness
            if self._floor is not None and self._floor > wm:
                wm = self._floor
            if t < wm:
                return Outcome.LATE, []
        decisions: list[Decision] = []
        if stream_time is None or t > stream_time:
            self.stream_time = t
            if self._timers and self._timers[0][0] <= t - self.lateness:
                decisions.extend(self._fire_due())
        if not reads:
            return Outcome.IGNORED, decisions
        # Timers may just have changed this customer's state: read it again.
        state = self.store.get(cid) or CustomerState()
        before = state.next_deadline()
        decisions.extend(self.engine.on_event(state, ev))
        self._settle(cid, state, before)
        if self._timers and self._timers[0][0] <= self.watermark:  # type: ignore[operator]
            decisions.extend(self._fire_due())
        return Outcome.EVALUATED, decisions

    def advance_stream_time(self, t: int) -> list[Decision]:
        """Move stream time forward (idle partitions, live); fires due timers."""
        if self.stream_time is None or t > self.stream_time:
            self.stream_time = t
        return self._fire_due()

    def advance_idle(self, backlog: int | None) -> list[Decision]:
        """If the idle policy finds the partition quiet and caught up, move its stream time
        to the wall clock less ``idle_after`` (never back) and fire due timers."""
        target = None if self.idle is None else self.idle.due(backlog)
        return [] if target is None else self.advance_stream_time(target)

    def advance_watermark(self, watermark: int) -> list[Decision]:
        """Set the watermark to at least ``watermark`` (replay's ``--until``); fires due timers."""
        if self.watermark is None or watermark > self.watermark:
            self._floor = watermark
        return self._fire_due()

    def sweep(self, customers: Iterable[str]) -> int:
        """Prune these customers' state (those no event touched lately); returns how many were dropped.

        Timers are not fired here: that stays with watermark movement, so a
        sweep never changes a decision.
        """
        wm = self.watermark
        dropped = 0
        if wm is None:
            return dropped
        for cid in customers:
            state = self.store.get(cid)
            if state is None:
                continue
            self.engine.prune(state, wm)
            if state.is_empty():
                self.store.delete(cid)
                dropped += 1
            else:
                self.store.put(cid, state)
        return dropped

    def restore_timers(self, states: Iterable[tuple[str, CustomerState]]) -> None:
        """Rebuild the timer index from stored state (a restarted live worker)."""
        self._timers = [(s.timers[0].deadline, cid) for cid, s in states if s.timers]
        heapq.heapify(self._timers)

    def pending_timers(self) -> int:
        return len(self._timers)

    def _fire_due(self) -> list[Decision]:
        wm = self.watermark
        out: list[Decision] = []
        if wm is None:
            return out
        heap = self._timers
        while heap and heap[0][0] <= wm:
            deadline, cid = heapq.heappop(heap)
            state = self.store.get(cid)
            if state is None or state.next_deadline() != deadline:
                continue  # stale entry: fired already, or the customer's earliest moved
            out.extend(self.engine.on_deadline(state, cid, deadline))
            self._settle(cid, state, None)
        return out

    def _settle(self, cid: str, state: CustomerState, previous_deadline: int | None) -> None:
        wm = self.watermark
        if wm is not None:
            self.engine.prune(state, wm)
        if state.is_empty():
            self.store.delete(cid)
            return
        self.store.put(cid, state)
        nd = state.next_deadline()
        if nd is not None and nd != previous_deadline:
            heapq.heappush(self._timers, (nd, cid))
