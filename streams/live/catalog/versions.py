"""Every catalog version a worker has seen, and which one each of its partitions runs.

:class:`CatalogVersions` keeps the versions read from the catalog topic, in
the order they apply: by time, equal times in arrival order (the record's
offset on the one-partition topic), as ``replay --switch`` applies its
switches in the order given (contract section 8). A version seen twice (the
same key: two workers that both found the topic empty and published the
same folder) is kept once, at its first arrival.

:class:`LiveCatalog` is the runtime's hook (:class:`streams.live.runtime.CatalogHook`).
When a partition starts, the hook builds its processor, on the version in
force at its watermark (restored from the commit metadata, so a restarted
worker comes back on the version in force), and every later version is handed
to the partition's switch as ``on_version(at_ms, catalog)``; a version that arrives
later is handed to every running partition's switch the same way. Applying
it when the partition's watermark reaches ``at`` is the switch's business:
:mod:`streams.live.catalog.switch`.

A version whose time a partition's watermark has already passed when it
arrives (a deploy raced a busy partition) cannot switch at its time there:
it is applied at once, with a warning, and that partition's decisions may
then differ from ``replay --switch``. ``tactful deploy`` refuses a time
behind the committed watermarks to make this rare (``docs/catalog.md``).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.engine import Engine, IdleAdvance, Processor, StateStore
from streams.errors import CatalogRefused
from streams.live.catalog.record import Version, short
from streams.live.catalog.switch import InterimSwitch, Switch
from streams.timeutil import format_time

log = logging.getLogger(__name__)


class CatalogVersions:
    """The versions seen, by key; listed in the order they apply."""

    def __init__(self) -> None:
        self._by_key: dict[bytes, Version] = {}
        self._ordered: list[Version] = []

    def add(self, version: Version) -> bool:
        """Keep ``version``; False if a version with its key was already kept."""
        key = version.record.key
        if key in self._by_key:
            return False
        self._by_key[key] = version
        self._ordered = sorted(self._by_key.values(), key=lambda v: v.key)
        return True

    def versions(self) -> list[Version]:
        """Every version, ordered by (time, arrival)."""
        return list(self._ordered)

    def newest(self) -> Version | None:
        return self._ordered[-1] if self._ordered else None

    def in_force(self, watermark: int | None) -> Version | None:
        """The version that governs at ``watermark``: the last whose time it has reached; before
        any watermark (or before every version's time), the first version."""
        found = self._ordered[0] if self._ordered else None
        if watermark is None:
            return found
        for v in self._ordered:
            if v.at > watermark:
                break
            found = v
        return found

    def after(self, version: Version) -> list[Version]:
        """The versions that apply after ``version``, in order."""
        return [v for v in self._ordered if v.key > version.key]


class CatalogMetrics:
    """``tactful_catalog_refused_total{reason}`` and ``tactful_catalog_info{hash}`` (docs/metrics.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.refused = Counter(
            "tactful_catalog_refused_total",
            "Catalog records refused: corrupt, from a newer format, or with invalid topologies",
            ["reason"],
            registry=registry,
        )
        self.info = Gauge(
            "tactful_catalog_info",
            "1 for each catalog version (by hash) in force on one of this worker's partitions"
            " (with none, the newest version known)",
            ["hash"],
            registry=registry,
        )
        self._shown: set[str] = set()

    def show(self, hashes: set[str]) -> None:
        for gone in self._shown - hashes:
            self.info.remove(gone)
        for h in hashes - self._shown:
            self.info.labels(h).set(1)
        self._shown = set(hashes)


class LiveCatalog:
    """The runtime's catalog hook: versions in, per partition a switch that applies them."""

    def __init__(
        self,
        versions: CatalogVersions,
        metrics: CatalogMetrics | None = None,
        *,
        switch: Callable[[Processor], Switch] = InterimSwitch,
    ) -> None:
        self.versions = versions
        self.metrics = metrics
        self._make_switch = switch
        self._partitions: dict[int, tuple[Processor, Switch]] = {}
        self._engines: dict[str, Engine] = {}  # the first version's, by hash: a processor's starting engine
        self.listeners: list[Callable[[Version], None]] = []  # told of each new version (the runtime)
        self.refused: collections.Counter[str] = collections.Counter()  # by reason; kept for metrics attached later
        self._refresh()

    def attach(self, metrics: CatalogMetrics) -> None:
        """Export to ``metrics`` from now on, counting the refusals made before (the start-up read)."""
        self.metrics = metrics
        for reason, n in self.refused.items():
            metrics.refused.labels(reason).inc(n)
        self._refresh()

    # -- the runtime's hook ----------------------------------------------------------------

    def processor(
        self, partition: int, store: StateStore, idle: IdleAdvance | None, stream_time: int | None
    ) -> Processor:
        """The partition's processor, resumed at ``stream_time``, on the version in force at its watermark."""
        first = self.versions.versions()[0]  # a worker starts only once it has a version
        processor = Processor(self._engine(first), store, idle)
        processor.stream_time = stream_time
        base = self.versions.in_force(processor.watermark) or first
        sw = self._make_switch(processor)
        sw.start(base.catalog)
        for v in self.versions.after(base):
            sw(v.at, v.catalog)
        self._partitions[partition] = (processor, sw)
        self._refresh()
        return processor

    def advanced(self, partition: int) -> None:
        entry = self._partitions.get(partition)
        if entry is not None and entry[1].due():
            v = self.in_force(partition)
            if v is not None:
                log.info(
                    "partition %d now runs catalog version %s (its watermark reached %s)",
                    partition,
                    short(v.hash),
                    format_time(v.at),
                )
            self._refresh()

    def stopped(self, partition: int) -> None:
        if self._partitions.pop(partition, None) is not None:
            self._refresh()

    # -- versions arriving -------------------------------------------------------------------

    def add(self, version: Version) -> bool:
        """A version read from the topic: kept, scheduled on every running partition; False if known."""
        if not self.versions.add(version):
            return False
        log.info(
            "catalog version %s (at %s, %s) received",
            short(version.hash),
            format_time(version.at),
            version.record.changes.summary(),
        )
        for partition, (processor, sw) in sorted(self._partitions.items()):
            wm = processor.watermark
            if wm is not None and version.at <= wm:
                log.warning(
                    "catalog version %s is for %s, but partition %d's watermark is already %s: applied now",
                    short(version.hash),
                    format_time(version.at),
                    partition,
                    format_time(wm),
                )
            sw(version.at, version.catalog)
        for listener in self.listeners:
            listener(version)
        for partition in list(self._partitions):
            self.advanced(partition)
        self._refresh()
        return True

    def refuse(self, exc: CatalogRefused, where: str) -> None:
        """A record that does not load: a log line and a count; the versions kept stay as they are."""
        log.error("catalog record %s refused (%s); keeping the versions already known", where, exc)
        self.refused[exc.reason] += 1
        if self.metrics is not None:
            self.metrics.refused.labels(exc.reason).inc()

    def _engine(self, version: Version) -> Engine:
        engine = self._engines.get(version.hash)
        if engine is None:
            engine = self._engines[version.hash] = Engine(version.catalog)
        return engine

    # -- what is in force ----------------------------------------------------------------------

    def in_force(self, partition: int) -> Version | None:
        entry = self._partitions.get(partition)
        return None if entry is None else self.versions.in_force(entry[0].watermark)

    def status(self) -> dict[str, Any]:
        """For ``/ready``: the version in force per partition, and the newest known."""
        newest = self.versions.newest()
        per: dict[str, str] = {}
        for p in sorted(self._partitions):
            v = self.in_force(p)
            if v is not None:
                per[str(p)] = v.hash
        return {
            "in_force": sorted(set(per.values())),
            "partitions": per,
            "newest": None if newest is None else {"hash": newest.hash, "at": format_time(newest.at)},
            "versions": len(self.versions.versions()),
        }

    def _refresh(self) -> None:
        if self.metrics is None:
            return
        hashes = {v.hash for p in self._partitions if (v := self.in_force(p)) is not None}
        if not hashes and (newest := self.versions.newest()) is not None:
            hashes = {newest.hash}
        self.metrics.show(hashes)
