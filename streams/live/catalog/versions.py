"""Every catalog version a worker has seen, and which one each of its partitions runs.

:class:`CatalogVersions` keeps the versions read from the catalog topic, in
the order they apply: by time, equal times in arrival order (the record's
offset on the one-partition topic), as ``replay --switch`` applies its
switches in the order given (contract section 8). A version seen twice (the
same key: two workers that both found the topic empty and published the
same folder) is kept once, at its first arrival.

:class:`LiveCatalog` is the runtime's hook (:class:`streams.live.runtime.CatalogHook`).
Every version goes into one :class:`~streams.engine.CatalogSchedule` the
worker's partitions share: the engine applies each change when a partition's
watermark reaches its time, in the order of contract section 8, exactly as
``replay --switch`` does. When a partition starts, the hook builds its
processor on the schedule and resumes it at the stream time restored from the
commit metadata, so a restarted worker comes back on the version in force and
decides nothing again.

A version whose time a running partition's watermark has already passed when
it arrives (a deploy raced a busy partition) cannot switch at its time there,
and the engine never applies a change in the past: it is refused (reason
``late``, logged and counted) and the worker keeps the versions it had.
``tactful deploy`` refuses a time behind the committed watermarks to make this
rare (``docs/catalog.md``); deploy again with a later ``--at``.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.engine import CatalogSchedule, IdleAdvance, Processor, StateStore
from streams.errors import CatalogChangeError, CatalogRefused
from streams.live.catalog.record import Version, short
from streams.timeutil import format_time

log = logging.getLogger(__name__)


class CatalogVersions:
    """The versions seen, by key; listed in the order they apply."""

    def __init__(self) -> None:
        self._by_key: dict[bytes, Version] = {}
        self._ordered: list[Version] = []

    def known(self, version: Version) -> bool:
        """A version with ``version``'s key is kept already."""
        return version.record.key in self._by_key

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
    """The runtime's catalog hook: versions in, one engine schedule that applies them per partition."""

    def __init__(self, versions: CatalogVersions, metrics: CatalogMetrics | None = None) -> None:
        self.versions = versions
        self.metrics = metrics
        self._schedule: CatalogSchedule | None = None
        self._partitions: dict[int, tuple[Processor, int]] = {}  # processor, changes applied when last seen
        self.listeners: list[Callable[[Version], None]] = []  # told of each new version (the runtime)
        self.refused: collections.Counter[str] = collections.Counter()  # by reason; kept for metrics attached later
        self._refresh()

    def attach(self, metrics: CatalogMetrics) -> None:
        """Export to ``metrics`` from now on, counting the refusals made before (the start-up read)."""
        self.metrics = metrics
        for reason, n in self.refused.items():
            metrics.refused.labels(reason).inc(n)
        self._refresh()

    def schedule(self) -> CatalogSchedule:
        """The schedule of every version known, the first from the start (built at the first need)."""
        if self._schedule is None:
            first, *later = self.versions.versions()  # a worker starts only once it has a version
            self._schedule = CatalogSchedule(first.catalog)
            for v in later:  # no partition follows it yet: nothing is late
                self._schedule.add(v.at, v.catalog)
        return self._schedule

    # -- the runtime's hook ----------------------------------------------------------------

    def processor(
        self, partition: int, store: StateStore, idle: IdleAdvance | None, stream_time: int | None
    ) -> Processor:
        """The partition's processor, resumed at ``stream_time``, on the version in force at its watermark."""
        schedule = self.schedule()
        processor = Processor(schedule.initial, store, idle, schedule=schedule)
        if stream_time is not None:
            processor.resume(stream_time)
        self._partitions[partition] = (processor, processor.applied)
        self._refresh()
        return processor

    def advanced(self, partition: int) -> None:
        entry = self._partitions.get(partition)
        if entry is None or entry[0].applied == entry[1]:
            return
        self._partitions[partition] = (entry[0], entry[0].applied)
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
        entry = self._partitions.pop(partition, None)
        if entry is not None:
            if self._schedule is not None:
                self._schedule.unfollow(entry[0])
            self._refresh()

    # -- versions arriving -------------------------------------------------------------------

    def add(self, version: Version) -> bool:
        """A version read from the topic: kept and scheduled; False if known or refused as late."""
        if self.versions.known(version):
            return False
        if self._schedule is not None:
            earliest = self._schedule.earliest()
            if earliest is not None and version.at < earliest:
                self.refuse(
                    CatalogRefused(
                        "late",
                        f"version {short(version.hash)} is for {format_time(version.at)}, but a partition's "
                        f"watermark is already {format_time(earliest - 1)}; deploy again with a later --at",
                    ),
                    f"{short(version.hash)}@{version.at}",
                )
                return False
        if not self.versions.add(version):
            return False
        if self._schedule is not None:
            try:
                self._schedule.add(version.at, version.catalog)
            except CatalogChangeError as exc:  # checked just above; kept for the engine's own word
                log.error("catalog version %s not scheduled: %s", short(version.hash), exc)
        log.info(
            "catalog version %s (at %s, %s) received",
            short(version.hash),
            format_time(version.at),
            version.record.changes.summary(),
        )
        for listener in self.listeners:
            listener(version)
        self._refresh()
        return True

    def refuse(self, exc: CatalogRefused, where: str) -> None:
        """A record that does not load: a log line and a count; the versions kept stay as they are."""
        log.error("catalog record %s refused (%s); keeping the versions already known", where, exc)
        self.refused[exc.reason] += 1
        if self.metrics is not None:
            self.metrics.refused.labels(exc.reason).inc()

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
