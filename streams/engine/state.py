"""Per-customer engine state: a compact value for a changelog-backed table.

It holds only what decisions can depend on: the events some topology reads
(with only the attributes some rule reads), active and recently ended
suppressions, recent emitted engagements (for caps), the last fire time of
each topology (for cooldown) and pending absence timers. Everything is pruned
by ``retention``; see :meth:`CustomerState.prune`.

Contract v1.1 (section 7) adds two lists, each serialised only when not empty
(under ``"h"`` and ``"o"``), so a v1 catalog's state keeps its v1 bytes:
``held``, the suppressions of shadow and held-out matches, which are never in
force but are released with their status and cause; and ``goals``, the open
goals of fired matches, each with the definition it was opened with. A goal's
deadline is one of the customer's deadlines (:meth:`next_deadline`). Every
entry names its topology, so state can be looked up per topology name.

Names, never versions: that is what carries journeys across a catalog change
(contract 8). Stored events, the marks of the matches they completed, fire
times, suppressions and armed deadlines all belong to a topology name, so a
new version of a topology goes on from exactly this state, an added one
starts from it, and one removed and added again finds what its name left.
Only an open goal records a version, because it keeps the definition it was
opened with. The format needs nothing new for it.

An erased customer (contract section 9) keeps only a tombstone here:
``erased_at`` (the erase's ``occurred_at``) and ``erased_offset`` (its input
offset, live only), until ``erased_at`` falls before the watermark minus
``retention``. Events after the erase build new state beside it. The tombstone
is serialised under the key ``"x"``, only when there is one, so the state of
a customer never erased is the same bytes as before erasure existed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from orjson import dumps

from streams.errors import StateError
from streams.topology.model import Pattern

FORMAT_VERSION = 1
_EMPTY: tuple[()] = ()  # an empty JSON array, shared by every state that has none
_ONLY_EVENTS = b'{"v":%d,"n":%d,"e":%b,"s":[],"g":[],"f":{},"m":[]}'  # to_obj's keys, in its order


class StoredEvent:
    """A touchpoint kept in state. ``done`` names topologies it completed a match for."""

    __slots__ = ("attributes", "channel", "done", "event_id", "seq", "t", "type")

    def __init__(
        self,
        seq: int,
        t: int,
        event_id: str,
        type: str,
        channel: str | None,
        attributes: dict[str, str],
        done: set[str] | None = None,
    ) -> None:
        self.seq = seq
        self.t = t
        self.event_id = event_id
        self.type = type
        self.channel = channel
        self.attributes = attributes
        self.done = done

    def is_done(self, topology: str) -> bool:
        return self.done is not None and topology in self.done

    def mark_done(self, topology: str) -> None:
        if self.done is None:
            self.done = {topology}
        else:
            self.done.add(topology)

    def __repr__(self) -> str:
        return f"StoredEvent({self.event_id!r}, {self.type!r}, t={self.t}, seq={self.seq})"


@dataclass(slots=True)
class Suppression:
    topology: str
    channel: str
    category: str
    start: int
    end: int
    decision_id: str
    # Only in ``CustomerState.held``: the suppression's status (shadow or held_out) and cause.
    status: str = "emitted"
    cause: str | None = None

    def active_at(self, t: int) -> bool:
        return self.start <= t < self.end


@dataclass(slots=True)
class OpenGoal:
    """A fired match's goal still waiting (contract 7.4): reached by a qualifying event in
    ``(start, deadline]``, else missed at ``deadline``. It keeps the definition it was opened with."""

    topology: str
    version: int
    evidence: tuple[str, ...]
    start: int  # the match's effective time
    deadline: int  # start + within
    arm: str
    pattern: Pattern

    def to_obj(self) -> list[Any]:
        where = [[k, sorted(v)] for k, v in self.pattern.where]
        return [self.topology, self.version, list(self.evidence), self.start, self.deadline, self.arm,
                self.pattern.event, where]  # fmt: skip

    @staticmethod
    def from_obj(obj: list[Any]) -> OpenGoal:
        topology, version, evidence, start, deadline, arm, event, where = obj
        pattern = Pattern(str(event), tuple((str(k), frozenset(v)) for k, v in where))
        return OpenGoal(str(topology), int(version), tuple(evidence), int(start), int(deadline), str(arm), pattern)


@dataclass(slots=True, order=True)
class Timer:
    deadline: int
    topology: str
    seq: int  # the arming `after` event


@dataclass(slots=True)
class CustomerState:
    next_seq: int = 0
    events: list[StoredEvent] = field(default_factory=list)  # in (t, seq) order
    suppressions: list[Suppression] = field(default_factory=list)
    engagements: list[tuple[int, str]] = field(default_factory=list)  # (effective_at, channel)
    last_fired: dict[str, int] = field(default_factory=dict)
    timers: list[Timer] = field(default_factory=list)  # sorted
    held: list[Suppression] = field(default_factory=list)  # shadow and held-out suppressions: never in force
    goals: list[OpenGoal] = field(default_factory=list)
    erased_at: int | None = None  # the tombstone: the last erase's occurred_at
    erased_offset: int | None = None  # and its input offset (live), see streams.engine.processor

    # -- events -------------------------------------------------------------------

    def has_event(self, event_id: str) -> bool:
        # A plain loop: any() over a generator costs a generator per call, and this runs for
        # every event a topology reads (the duplicate check).
        for e in self.events:  # noqa: SIM110 - measured: the loop is faster
            if e.event_id == event_id:
                return True
        return False

    def insert(self, ev: StoredEvent) -> int:
        """Insert in (t, seq) order; returns the index. ``ev.seq`` is the newest."""
        events = self.events
        if not events or events[-1].t <= ev.t:
            # In time order, as most events come: where bisect_right would put it, with no
            # key function called per probe.
            events.append(ev)
            return len(events) - 1
        i = bisect_right(events, ev.t, key=lambda e: e.t)
        events.insert(i, ev)
        return i

    def find(self, seq: int) -> StoredEvent | None:
        for e in self.events:
            if e.seq == seq:
                return e
        return None

    def next_deadline(self) -> int | None:
        """The earliest armed absence deadline or goal window end."""
        first = self.timers[0].deadline if self.timers else None
        # A loop, not min() over a generator: a customer has a goal or two, and this runs
        # for every evaluation and every deadline that fires.
        for g in self.goals:
            if first is None or g.deadline < first:
                first = g.deadline
        return first

    # -- pruning ----------------------------------------------------------------------

    def prune(self, cutoff: int, max_cap_window: int, max_cooldown: int) -> None:
        """Drop what no future decision can depend on.

        ``cutoff`` is ``watermark - retention``. Every window is at most
        ``retention`` long and every future event is at or after the watermark,
        so no future match can include an event before the cutoff, and no
        future match is effective before it. Engagements stay while a cap
        window reaching back from the cutoff can count them, fire times while a
        cooldown can still hold back a match, events while a timer needs them.
        """
        # This runs after every evaluation and usually drops nothing: each list is rebuilt only
        # once a plain loop finds something to drop (a comprehension is a call and a new list).
        if self.events and self.events[0].t < cutoff:
            armed = {tm.seq for tm in self.timers}
            self.events = [e for e in self.events if e.t >= cutoff or e.seq in armed]
        for s in self.suppressions:
            if s.end <= cutoff:
                self.suppressions = [s for s in self.suppressions if s.end > cutoff]
                break
        for s in self.held:
            if s.end <= cutoff:
                self.held = [s for s in self.held if s.end > cutoff]
                break
        keep_from = cutoff - max_cap_window
        for g in self.engagements:
            if g[0] <= keep_from:
                self.engagements = [g for g in self.engagements if g[0] > keep_from]
                break
        if self.last_fired and min(self.last_fired.values()) < cutoff - max_cooldown:
            keep_from = cutoff - max_cooldown
            self.last_fired = {k: v for k, v in self.last_fired.items() if v >= keep_from}
        if self.erased_at is not None and self.erased_at < cutoff:
            self.erased_at = self.erased_offset = None

    def is_empty(self) -> bool:
        return not (
            self.events
            or self.suppressions
            or self.engagements
            or self.last_fired
            or self.timers
            or self.held
            or self.goals
            or self.erased_at is not None
        )

    def holds_only_tombstone(self) -> bool:
        """Erased, and nothing happened to the customer since that is still kept."""
        return self.erased_at is not None and not (
            self.events
            or self.suppressions
            or self.engagements
            or self.last_fired
            or self.timers
            or self.held
            or self.goals
        )

    # -- serialisation ---------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The state's changelog value: the same bytes as ``orjson.dumps(self.to_obj())``, made with
        fewer objects, as this runs for every customer a batch changed. A state holding only events
        (a new customer's, mostly) is formatted around its encoded events, without the dict; rows
        are tuples (cheaper to build than lists; orjson writes a tuple as an array), empty lists
        one shared tuple, and engagements go as the tuples they are. tests/engine/test_state_bytes.py
        holds these bytes to :meth:`to_obj` and to changelog values recorded before this encoder.
        (Caching each stored event's encoded row, to encode only what changed, was measured on the
        bench workload and did not pay: most rows are written once or twice, and each row's own
        ``dumps`` cost about what the cache saved.)"""
        sup, engagements, fired, timers = self.suppressions, self.engagements, self.last_fired, self.timers
        events = [
            (e.seq, e.t, e.event_id, e.type, e.channel, e.attributes or None, sorted(e.done) if e.done else None)
            for e in self.events
        ]
        if not (sup or engagements or fired or timers or self.held or self.goals) and self.erased_at is None:
            return _ONLY_EVENTS % (FORMAT_VERSION, self.next_seq, dumps(events))
        obj: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "n": self.next_seq,
            "e": events,
            "s": [(s.topology, s.channel, s.category, s.start, s.end, s.decision_id) for s in sup] if sup else _EMPTY,
            "g": engagements,
            "f": fired,
            "m": [(tm.deadline, tm.topology, tm.seq) for tm in timers] if timers else _EMPTY,
        }
        if self.held or self.goals or self.erased_at is not None:
            obj.update(self._extra())
        return dumps(obj)

    def to_obj(self) -> dict[str, Any]:
        """The state as JSON values (``customer_view`` shows it raw); :meth:`to_bytes` encodes it."""
        obj: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "n": self.next_seq,
            "e": [
                [e.seq, e.t, e.event_id, e.type, e.channel, e.attributes or None, sorted(e.done) if e.done else None]
                for e in self.events
            ],
            "s": [[s.topology, s.channel, s.category, s.start, s.end, s.decision_id] for s in self.suppressions],
            "g": [list(g) for g in self.engagements],
            "f": self.last_fired,
            "m": [[tm.deadline, tm.topology, tm.seq] for tm in self.timers],
        }
        obj.update(self._extra())
        return obj

    def _extra(self) -> dict[str, Any]:
        """What contract v1.1 and erasure added, each only when there is some: ``"h"``, ``"o"``, ``"x"``."""
        obj: dict[str, Any] = {}
        if self.held:
            obj["h"] = [
                [s.topology, s.channel, s.category, s.start, s.end, s.decision_id, s.status, s.cause] for s in self.held
            ]
        if self.goals:
            obj["o"] = [g.to_obj() for g in self.goals]
        if self.erased_at is not None:
            obj["x"] = [self.erased_at, self.erased_offset]
        return obj

    @staticmethod
    def from_bytes(data: bytes) -> CustomerState:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise StateError(f"customer state is not valid JSON: {exc}") from exc
        return CustomerState.from_obj(obj)

    @staticmethod
    def from_obj(obj: Mapping[str, Any]) -> CustomerState:
        try:
            if obj.get("v") != FORMAT_VERSION:
                raise StateError(f"unknown customer state format {obj.get('v')!r}")
            tomb = obj.get("x")
            return CustomerState(
                erased_at=None if tomb is None else int(tomb[0]),
                erased_offset=None if tomb is None or tomb[1] is None else int(tomb[1]),
                next_seq=int(obj["n"]),
                events=[
                    StoredEvent(seq, t, eid, typ, ch, attrs or {}, set(done) if done else None)
                    for seq, t, eid, typ, ch, attrs, done in obj["e"]
                ],
                suppressions=[Suppression(*s) for s in obj["s"]],
                engagements=[(int(t), str(c)) for t, c in obj["g"]],
                last_fired={str(k): int(v) for k, v in obj["f"].items()},
                timers=[Timer(d, tp, seq) for d, tp, seq in obj["m"]],
                held=[Suppression(*s) for s in obj.get("h", ())],
                goals=[OpenGoal.from_obj(g) for g in obj.get("o", ())],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"customer state is malformed: {exc!r}") from exc
