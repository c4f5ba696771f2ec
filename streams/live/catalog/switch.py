"""The seam between the catalog on Kafka and the engine's catalog switch (contract section 8).

A :class:`Switch` belongs to one partition's processor. :meth:`Switch.start`
sets the catalog the partition starts on; calling the switch with
``(at_ms, catalog)`` schedules a later version; :meth:`Switch.due` is called
after each record and tick and answers whether a version was applied since.

:class:`InterimSwitch` is a stand-in, kept in this one place so that it can be
swapped for the engine's own switch: when the partition's watermark has
reached a scheduled version's time, it rebuilds the processor's engine with
the new catalog and keeps the state store (customer state is keyed by
topology name, so changed topologies keep their state and added ones start
from it). It falls short of section 8 in three ways, which the engine's
switch does not: the event that moves the watermark past ``at`` is evaluated
under the old catalog, and so are deadlines at or after ``at`` that this
move makes due; removed topologies' suppressions are not lifted by RELEASE
decisions (they end at their own time); and armed deadlines of removed
topologies fire nothing only because the new engine no longer knows them.

Swapping in the engine's switch touches only this package: the runtime asks
:meth:`LiveCatalog.processor <streams.live.catalog.versions.LiveCatalog.processor>`
for each starting partition's processor, so the processor can be built the
engine's way (following a schedule shared by the worker's partitions, resumed
at the restored stream time), and :meth:`LiveCatalog.add
<streams.live.catalog.versions.LiveCatalog.add>` hands each new version to
that schedule instead of to the switches here.
"""

from __future__ import annotations

import bisect
from itertools import count
from typing import Protocol

from streams.engine import Engine, Processor
from streams.topology import Catalog


class Switch(Protocol):
    """One partition's catalog switch."""

    def start(self, catalog: Catalog) -> None:
        """The catalog the partition starts on (the version in force at its watermark)."""

    def __call__(self, at_ms: int, catalog: Catalog) -> None:
        """Schedule ``catalog`` from ``at_ms`` on (in calling order among equal times)."""

    def due(self) -> bool:
        """Apply what the watermark has reached; True if anything was applied."""


class InterimSwitch:
    """Rebuilds the processor's engine when its watermark reaches a version (module docstring)."""

    def __init__(self, processor: Processor) -> None:
        self.processor = processor
        self._pending: list[tuple[int, int, Catalog]] = []
        self._seq = count()
        self._engines: dict[int, Engine] = {}

    def start(self, catalog: Catalog) -> None:
        self._use(catalog)

    def __call__(self, at_ms: int, catalog: Catalog) -> None:
        bisect.insort(self._pending, (at_ms, next(self._seq), catalog), key=lambda p: (p[0], p[1]))

    def due(self) -> bool:
        pending = self._pending
        if not pending:
            return False
        wm = self.processor.watermark
        if wm is None or pending[0][0] > wm:
            return False
        while pending and pending[0][0] <= wm:
            _, _, catalog = pending.pop(0)
            self._use(catalog)
        return True

    def _use(self, catalog: Catalog) -> None:
        proc = self.processor
        engine = self._engines.get(id(catalog))
        if engine is None:
            engine = self._engines[id(catalog)] = Engine(catalog)
        proc.engine = engine
        # What the processor copied from its engine when built.
        proc.lateness = engine.policies.lateness
        proc.retention = engine.policies.retention
        proc._read_types = engine.catalog.roles
