"""Catalog changes at a time (contract section 8): which catalog governs a stream, and from when.

A :class:`CatalogSchedule` holds the catalog a stream starts with and the
later ones, each with its time ``T``, in the order they take force: by time,
equal times in the order they were added. It is shared: ``replay`` gives its
one :class:`~streams.engine.Processor` a schedule, and a live worker gives the
same schedule to every partition's processor. Each processor applies the
changes itself, when *its* watermark reaches their time, so every partition
switches at the same point of its stream whatever the moment a worker learnt
of the change (see :meth:`Processor._cross <streams.engine.processor.Processor>`).

A schedule builds one :class:`~streams.engine.Engine` per catalog, shared by
every processor that follows it, and works out once per change what applying
it means (:class:`Change`): which topologies are removed (their suppressions
are released), whose armed deadlines are dropped (removed, or no longer an
``absence``), and which goal event types must still be read for the open
goals of an earlier definition. Topologies are matched by name: state is keyed
by name, so a changed topology keeps its customers' journeys in flight, and an
added one starts from the state as it is.

Pure: no clock and no I/O. A live worker adds a version it reads with
:meth:`CatalogSchedule.add`; a restarted worker positions a processor on its
committed stream time with :meth:`Processor.resume
<streams.engine.processor.Processor.resume>`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streams.engine.engine import Engine
from streams.errors import CatalogChangeError
from streams.timeutil import format_time
from streams.topology.model import Absence, Catalog, Topology

if TYPE_CHECKING:
    from streams.engine.processor import Processor


@dataclass(slots=True)
class Change:
    """One catalog change: from time ``at``, ``engine`` (over ``catalog``) decides.

    What applying it does is worked out against the catalog before it in the
    schedule (and worked out again should a change be inserted before it):
    """

    at: int
    catalog: Catalog
    engine: Engine
    # Topologies of the previous catalog that this one lacks, by name: their suppressions are released.
    removed: tuple[Topology, ...] = ()
    # Names whose armed deadlines are dropped: removed, or an absence that no longer is one.
    unarmed: frozenset[str] = frozenset()
    # Goal event types the open goals of a previous definition may still wait for, with the longest
    # goal window among them: read until no such goal can be open (contract 7.4, "a goal keeps the
    # definition it was opened with").
    lingering: dict[str, int] = field(default_factory=dict)

    @property
    def touches_state(self) -> bool:
        """Whether applying it must visit every customer's state (releases, dropped deadlines)."""
        return bool(self.removed or self.unarmed)


class CatalogSchedule:
    """The catalogs a stream runs: the first from the start, each later one from its time on.

    Create it with the first catalog, :meth:`add` each later one, and pass it to
    every :class:`~streams.engine.Processor` of the stream with the schedule's
    :attr:`initial` engine: ``Processor(schedule.initial, store, idle, schedule=schedule)``.
    """

    def __init__(self, catalog: Catalog, engine: Engine | None = None) -> None:
        self.initial = engine if engine is not None else Engine(catalog)
        self.changes: list[Change] = []
        self._followers: weakref.WeakSet[Processor] = weakref.WeakSet()

    def add(self, at: int, catalog: Catalog) -> Change:
        """Schedule ``catalog`` to take force at ``at`` (epoch ms); after every change of the same time.

        The change is applied by each following processor when its watermark
        moves from below ``at`` to ``at`` or beyond, exactly as ``replay
        --switch`` applies it. A change is never applied in the past: if the
        watermark of a processor already following this schedule is at or after
        ``at``, nothing is added and :class:`~streams.errors.CatalogChangeError`
        is raised (that partition has decided past ``at`` under the catalog
        before it; applying the change now would differ from a replay). Pick a
        time after :meth:`earliest`. A processor started later, on a stream
        time already past ``at``, takes the change as applied (see
        :meth:`Processor.resume <streams.engine.processor.Processor.resume>`).
        """
        for p in self._followers:
            wm = p.watermark
            if wm is not None and wm >= at:
                raise CatalogChangeError(
                    f"a catalog change at {format_time(at)} comes too late: a partition's watermark "
                    f"is already at {format_time(wm)}; pick a time after it"
                )
        i = len(self.changes)
        while i > 0 and self.changes[i - 1].at > at:
            i -= 1
        change = Change(at, catalog, Engine(catalog))
        self.changes.insert(i, change)
        self._rework()
        for p in self._followers:
            p._reschedule()
        return change

    def earliest(self) -> int | None:
        """The earliest time :meth:`add` accepts now (None: any), after every follower's watermark."""
        marks = [wm for p in self._followers if (wm := p.watermark) is not None]
        return max(marks) + 1 if marks else None

    def engines(self) -> Iterator[Engine]:
        """Every engine, the initial one first (for summing their counters)."""
        yield self.initial
        for c in self.changes:
            yield c.engine

    def follow(self, processor: Processor) -> None:
        """Called by a processor given this schedule: :meth:`add` tells it of later changes."""
        self._followers.add(processor)

    def unfollow(self, processor: Processor) -> None:
        """A processor given up (live: its partition revoked): its watermark no longer holds :meth:`add` back.

        Followers are held weakly, so a processor dropped and collected leaves anyway; this says it at once.
        """
        self._followers.discard(processor)

    def _rework(self) -> None:
        """Work out each change against the catalog before it, and what every engine keeps."""
        engines = list(self.engines())
        cap_window = max(e._max_cap_window for e in engines)
        cooldown = max(e._max_cooldown for e in engines)
        for e in engines:
            e.keep_for(cap_window, cooldown)
        before = self.initial.catalog
        for c in self.changes:
            _diff(c, before)
            before = c.catalog


def _diff(change: Change, before: Catalog) -> None:
    after = change.catalog
    removed: list[Topology] = []
    unarmed: set[str] = set()
    lingering: dict[str, int] = {}
    for old in before.topologies:
        new = after.get(old.name)
        if new is None:
            removed.append(old)
        if isinstance(old.when, Absence) and (new is None or not isinstance(new.when, Absence)):
            unarmed.add(old.name)
        if old.goal is not None and (new is None or new.goal is None or new.goal.pattern != old.goal.pattern):
            typ = old.goal.pattern.event
            lingering[typ] = max(lingering.get(typ, 0), old.goal.within)
    removed.sort(key=lambda t: t.name)
    change.removed = tuple(removed)
    change.unarmed = frozenset(unarmed)
    change.lingering = lingering
