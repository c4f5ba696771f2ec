"""One partition's driver around the engine: stream time, watermark, lateness,
duplicates, timers and erasure. `replay` and the live workers both run this class
(through :mod:`streams.engine.step`), so they decide alike; they differ only
in where state lives (a dict, a Faust table), where decisions go, and whether
an idle policy (:class:`~streams.engine.idle.IdleAdvance`) moves a quiet
partition's stream time by a wall clock it is given.

Erasure (contract section 9) is an arrival-level rule, so it lives here, not
in the engine. A ``tactful.erase`` event is never late nor a duplicate: it
moves stream time (the deadlines it makes due fire first), then replaces the
customer's whole state by a tombstone (:class:`CustomerState` with only
``erased_at`` and ``erased_offset``). While the tombstone stands (its time at
or after the watermark minus ``retention``), the customer's events at or before
it are :attr:`Outcome.ERASED`, before any duplicate or lateness check. Live, the
tombstone also holds the erase's input offset, and a record of the customer
with a lower offset is erased whatever its time: a record redelivered after a
crash (at-least-once) arrived before the erase and must not rebuild what it
deleted. The index of tombstones (:attr:`Processor.erased`) is kept beside the
store so that events of types no topology reads need no state lookup.

A customer's deadlines are its absence timers and the window ends of its open
goals (contract 7.4): :meth:`CustomerState.next_deadline` gives the earliest,
so both fire alike, when the watermark reaches them.

Catalog changes (contract section 8) are a watermark rule too, so they live
here as well: a processor given a
:class:`~streams.engine.schedule.CatalogSchedule` applies each change when its
watermark moves from below the change's time ``T`` to ``T`` or beyond
(:meth:`Processor._cross`): the due deadlines before ``T`` fire under the old
catalog, the change is applied (the releases of removed topologies, for every
customer in id order), then the due deadlines from ``T`` on fire and the event
that moved the watermark is evaluated, under the new catalog. The processor
keeps the time of its next change (or :data:`NEVER`), so with no change
pending the check costs one comparison. A change of ``lateness`` never moves
the watermark back: the watermark reached stays as a floor.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterable
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from streams.decisions import Decision
from streams.engine.engine import Engine, retire
from streams.engine.idle import IdleAdvance
from streams.engine.state import CustomerState
from streams.events import ERASE_TYPE, Event

if TYPE_CHECKING:
    from streams.engine.schedule import CatalogSchedule, Change
    from streams.topology.model import Catalog

# The time of "no catalog change pending": later than any event time (year 146,140,482).
NEVER = 1 << 62


class StateStore(Protocol):
    """Where per-customer state lives."""

    def get(self, customer_id: str) -> CustomerState | None: ...
    def put(self, customer_id: str, state: CustomerState) -> None: ...
    def delete(self, customer_id: str) -> None: ...
    def customers(self) -> Iterable[str]:
        """Every customer with state here (a catalog change visits them all, contract 8)."""
        ...


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

    def customers(self) -> list[str]:
        return list(self.data)


class Outcome(Enum):
    """What became of one record. :meth:`Processor.process` answers the first seven;
    :class:`~streams.engine.step.Step` adds the last two, decided before processing."""

    EVALUATED = "evaluated"
    IGNORED = "ignored"  # valid and on time, but no topology reads its type
    DUPLICATE = "duplicate"
    LATE = "late"
    ERASE = "erase"  # a tactful.erase that deleted the customer's state (contract section 9)
    STALE_ERASE = "stale_erase"  # a tactful.erase that changed nothing: not after the tombstone, or too old
    ERASED = "erased"  # an event of an erased customer from before the erase: ignored, never dead-lettered
    INVALID = "invalid"  # not a valid event (contract section 1): never processed
    ROUTED = "routed"  # valid, but the step's admit hook sent it elsewhere (live: another partition)


# Members bound once: on Python 3.11 each `Outcome.X` is a lookup through the enum's class
# machinery (measured about 7 times a global's cost), and process() returns one for every event.
_EVALUATED, _IGNORED, _DUPLICATE, _LATE = Outcome.EVALUATED, Outcome.IGNORED, Outcome.DUPLICATE, Outcome.LATE
_ERASE, _STALE_ERASE, _ERASED = Outcome.ERASE, Outcome.STALE_ERASE, Outcome.ERASED


class Processor:
    """Feeds one partition's events, in arrival order, through the engine.

    With a ``schedule``, ``engine`` must be its :attr:`~CatalogSchedule.initial`
    engine; :attr:`engine` is then the engine of the catalog in force, which
    changes as the watermark reaches the schedule's changes.
    """

    def __init__(
        self,
        engine: Engine,
        store: StateStore,
        idle: IdleAdvance | None = None,
        *,
        schedule: CatalogSchedule | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.idle = idle
        self.lateness = engine.policies.lateness
        self.stream_time: int | None = None
        # A floor under the watermark: set from outside (replay --until), or the watermark a catalog
        # change found when it applied (contract 8: a longer lateness never moves the watermark back).
        self._floor: int | None = None
        # The timer index, lazily refreshed: a heap of deadlines, each once, and per deadline the
        # customers due then (unsorted; `_unsorted` names the deadlines whose list grew since it was
        # last sorted, descending so that pop() gives the smallest id). It fires in exactly the order of
        # one heap of (deadline, customer_id) tuples, for a fraction of the comparisons: a million
        # customers' heap of tuples cost three times as much per pop as one of ints.
        self._timers: list[int] = []
        self._due: dict[int, list[str]] = {}
        self._unsorted: set[int] = set()
        self._pending = 0  # entries in _due, stale ones included (pending_timers)
        self._read_types: Container[str] = engine.catalog.roles  # membership only: the per-event hot path
        self.retention = engine.policies.retention
        # Tombstones standing: customer id -> (erased_at, erase's input offset or None).
        self.erased: dict[str, tuple[int, int | None]] = {}
        self.schedule = schedule
        self.applied = 0  # how many of the schedule's changes are applied
        # Goal event types read only for the open goals of an earlier catalog's definitions, each
        # until the watermark at which no such goal can still be open.
        self._lingering: dict[str, int] = {}
        self._switch_at = NEVER  # the watermark at which _cross has work: a change, or lingering ending
        if schedule is not None:
            if engine is not schedule.initial:
                raise ValueError("a processor following a schedule starts with the schedule's initial engine")
            schedule.follow(self)
            self._reschedule()

    @property
    def catalog(self) -> Catalog:
        """The catalog in force (contract 8: it changes as the watermark reaches a scheduled change)."""
        return self.engine.catalog

    @property
    def watermark(self) -> int | None:
        wm = None if self.stream_time is None else self.stream_time - self.lateness
        if self._floor is not None and (wm is None or self._floor > wm):
            return self._floor
        return wm

    def process(self, ev: Event, offset: int | None = None) -> tuple[Outcome, list[Decision]]:
        """Take one valid event; ``offset`` is its input offset (live), for the tombstone's offset rule."""
        reads = ev.type in self._read_types
        cid = ev.customer_id
        # No topology reads a tactful.* type (a loading error), so an erase is never `reads`.
        if not reads and ev.type == ERASE_TYPE:
            return self._erase(ev, offset)
        if self.erased and cid in self.erased and self._is_erased(cid, ev.occurred_at, offset):
            return _ERASED, []
        state: CustomerState | None = None
        if reads:
            state = self.store.get(cid)
            # Duplicates are recognised before lateness (contract section 2).
            if state is not None and state.has_event(ev.event_id):
                return _DUPLICATE, []
        t = ev.occurred_at
        stream_time = self.stream_time
        if stream_time is not None:
            wm = stream_time - self.lateness
            if self._floor is not None and self._floor > wm:
                wm = self._floor
            if t < wm:
                return _LATE, []
        decisions: list[Decision] = []
        moved = False  # whether deadlines fired or the catalog changed: they may have changed this state
        if stream_time is None or t > stream_time:
            self.stream_time = t
            if t - self.lateness >= self._switch_at:
                moved = True
                decisions.extend(self._cross())
                # The event is evaluated under the catalog now in force, which may read its type or not.
                was_read, reads = reads, ev.type in self._read_types
                if reads and not was_read:
                    state = self.store.get(cid)
                    if state is not None and state.has_event(ev.event_id):
                        return _DUPLICATE, decisions
            elif self._timers and self._timers[0] <= t - self.lateness:
                moved = True
                decisions.extend(self._fire_due())
        if not reads:
            return _IGNORED, decisions
        if moved:
            # Deadlines may just have changed (or deleted) this customer's state: read it again.
            state = self.store.get(cid)
        if state is None:
            state = CustomerState()
        before = state.next_deadline()
        decisions.extend(self.engine.on_event(state, ev))
        self._settle(cid, state, before)
        timers = self._timers
        if timers:
            # The watermark, inline (stream time is set by now): this runs for every evaluated event.
            wm = self.stream_time - self.lateness  # type: ignore[operator]
            if self._floor is not None and self._floor > wm:
                wm = self._floor
            if timers[0] <= wm:
                decisions.extend(self._fire_due())
        return _EVALUATED, decisions

    def _is_erased(self, cid: str, t: int, offset: int | None) -> bool:
        """Whether the customer's tombstone, if it still stands, covers an event at ``t`` (and ``offset``)."""
        te, at = self.erased[cid]
        wm = self.watermark
        if wm is not None and te < wm - self.retention:
            del self.erased[cid]  # expired; the state's copy goes at its next prune
            return False
        return t <= te or (offset is not None and at is not None and offset < at)

    def _erase(self, ev: Event, offset: int | None) -> tuple[Outcome, list[Decision]]:
        cid, te = ev.customer_id, ev.occurred_at
        wm = self.watermark
        floor = None if wm is None else wm - self.retention
        current = self.erased.get(cid)
        if current is not None and floor is not None and current[0] < floor:
            del self.erased[cid]
            current = None
        # A redelivered (or older) erase must not wipe what came after the one in force.
        if (current is not None and te <= current[0]) or (floor is not None and te < floor):
            return _STALE_ERASE, []
        decisions: list[Decision] = []
        if self.stream_time is None or te > self.stream_time:
            self.stream_time = te
            decisions.extend(self._moved())
        # All at once: events (and so the ids seen), suppressions with no RELEASE, caps,
        # cooldowns, fired-match memory, armed deadlines. Heap entries left for this customer
        # are stale: _fire_due skips them, the tombstone having no timers.
        self.store.put(cid, CustomerState(erased_at=te, erased_offset=offset))
        self.erased[cid] = (te, offset)
        return _ERASE, decisions

    def advance_stream_time(self, t: int) -> list[Decision]:
        """Move stream time forward (idle partitions, live); fires due timers."""
        if self.stream_time is None or t > self.stream_time:
            self.stream_time = t
        return self._moved()

    def advance_idle(self, backlog: int | None) -> list[Decision]:
        """If the idle policy finds the partition quiet and caught up, move its stream time
        to the wall clock less ``idle_after`` (never back) and fire due timers."""
        target = None if self.idle is None else self.idle.due(backlog)
        return [] if target is None else self.advance_stream_time(target)

    def advance_watermark(self, watermark: int) -> list[Decision]:
        """Set the watermark to at least ``watermark`` (replay's ``--until``); fires due timers."""
        if self.watermark is None or watermark > self.watermark:
            self._floor = watermark
        return self._moved()

    # -- catalog changes (contract section 8) -----------------------------------------------

    def resume(self, stream_time: int, watermark: int | None = None) -> None:
        """Start from a committed stream time (a restarted or reassigned live partition).

        The changes of the schedule that this stream time's watermark has
        reached count as applied, by whichever worker ran the partition then:
        the restored state holds their effects, and nothing is decided again.
        The processor takes the catalog they leave in force. Give the
        ``watermark`` committed with the stream time too, if there is one: after
        a change that made ``lateness`` longer, the watermark stays above stream
        time minus lateness for a while, and only it says by how much.
        """
        self.stream_time = stream_time
        if watermark is not None and (self._floor is None or watermark > self._floor):
            self._floor = watermark
        wm = self.watermark
        changes = self.schedule.changes if self.schedule is not None else []
        while wm is not None and self.applied < len(changes) and changes[self.applied].at <= wm:
            self._take(changes[self.applied])
            self.applied += 1
            wm = self.watermark
        self._reschedule()

    def _moved(self) -> list[Decision]:
        """Stream time or the floor moved: apply the changes reached, and fire the due deadlines."""
        wm = self.watermark
        if wm is not None and wm >= self._switch_at:
            return self._cross()
        return self._fire_due()

    def _cross(self) -> list[Decision]:
        """The watermark moved to or past the time of the next change (or of lingering's end).

        For each change reached, in order: the due deadlines before its time
        fire under the catalog before it, then it is applied. Last, the due
        deadlines from the last change's time on fire under the catalog now in
        force; the caller then evaluates the event that moved the watermark.
        """
        out: list[Decision] = []
        changes = self.schedule.changes if self.schedule is not None else []
        while (wm := self.watermark) is not None and wm >= self._switch_at:
            if self.applied < len(changes) and changes[self.applied].at <= wm:
                change = changes[self.applied]
                out.extend(self._fire_due(change.at - 1))
                out.extend(self._apply(change))
                self.applied += 1
            else:
                # No goal of an earlier definition can still be open: stop reading for them.
                self._lingering = {k: v for k, v in self._lingering.items() if v > wm}
                self._read_types = self._reads()
            self._reschedule()
        out.extend(self._fire_due())
        return out

    def _apply(self, change: Change) -> list[Decision]:
        """Put the change's catalog in force, and apply it to every customer's state."""
        self._take(change)
        if not change.touches_state:
            return []
        out: list[Decision] = []
        for cid in sorted(self.store.customers()):
            state = self.store.get(cid)
            if state is None:
                continue
            before = state.next_deadline()
            decisions, changed = retire(state, cid, change.at, change.removed, change.unarmed)
            out.extend(decisions)
            if changed:
                self._settle(cid, state, before)
        return out

    def _take(self, change: Change) -> None:
        """The change's catalog in force from now: its engine, lateness, retention and read types."""
        wm = self.watermark
        if wm is not None:
            self._floor = wm  # a longer lateness must not move the watermark back
        engine = change.engine
        self.engine = engine
        self.lateness = engine.policies.lateness
        self.retention = engine.policies.retention
        horizon = self.stream_time if self.stream_time is not None else change.at
        for typ, within in change.lingering.items():
            # A goal opened before now has its window's end at most `within` after stream time.
            self._lingering[typ] = max(self._lingering.get(typ, horizon), horizon + within)
        self._read_types = self._reads()

    def _reads(self) -> Container[str]:
        roles = self.engine.catalog.roles
        return {*roles, *self._lingering} if self._lingering else roles

    def _reschedule(self) -> None:
        """Note the watermark at which _cross next has work (NEVER: none; a schedule changed)."""
        at = NEVER
        changes = self.schedule.changes if self.schedule is not None else []
        if self.applied < len(changes):
            at = changes[self.applied].at
        if self._lingering:
            at = min(at, min(self._lingering.values()))
        self._switch_at = at

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
            if state.erased_at is None:
                self.erased.pop(cid, None)
            if state.is_empty():
                self.store.delete(cid)
                dropped += 1
            else:
                self.store.put(cid, state)
        return dropped

    def restore_timers(self, states: Iterable[tuple[str, CustomerState]]) -> None:
        """Rebuild the timer index from stored state (a restarted live worker)."""
        # next_deadline, not timers[0]: a goal's window end is a deadline too (contract 7.4).
        self._timers, self._due, self._unsorted, self._pending = [], {}, set(), 0
        for cid, s in states:
            d = s.next_deadline()
            if d is not None:
                self._arm(d, cid)

    def restore_erased(self, states: Iterable[tuple[str, CustomerState]]) -> None:
        """Rebuild the tombstone index from stored state (a restarted live worker)."""
        self.erased = {cid: (s.erased_at, s.erased_offset) for cid, s in states if s.erased_at is not None}

    def pending_timers(self) -> int:
        return self._pending

    def _arm(self, deadline: int, cid: str) -> None:
        """Add (deadline, customer) to the timer index."""
        due = self._due.get(deadline)
        if due is None:
            self._due[deadline] = [cid]
            heapq.heappush(self._timers, deadline)
        else:
            due.append(cid)
            self._unsorted.add(deadline)
        self._pending += 1

    def _pop_due(self) -> tuple[int, str]:
        """Take the smallest (deadline, customer) from the timer index, as a heap of pairs would pop
        it: entries armed while firing (an earlier deadline, or this one) are among those compared."""
        deadline = self._timers[0]
        due = self._due[deadline]
        if self._unsorted and deadline in self._unsorted:
            due.sort(reverse=True)
            self._unsorted.discard(deadline)
        cid = due.pop()
        if not due:
            heapq.heappop(self._timers)
            del self._due[deadline]
        self._pending -= 1
        return deadline, cid

    def _fire_due(self, upto: int | None = None) -> list[Decision]:
        """Fire the deadlines the watermark has reached (and, given ``upto``, at or before it)."""
        wm = self.watermark
        out: list[Decision] = []
        if wm is None:
            return out
        if upto is not None and upto < wm:
            wm = upto
        heap = self._timers
        while heap and heap[0] <= wm:
            deadline, cid = self._pop_due()
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
            self._arm(nd, cid)
