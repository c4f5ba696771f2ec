"""Publishing versions: ``tactful deploy``, a worker's first version, the history's export.

``deploy`` (:func:`deploy`) publishes a validated folder as a new version at
time ``T``. ``T`` must be ahead of every partition's watermark, so that every
worker switches at the same point of the stream whenever it reads the
record. The workers commit each partition's stream time with its offset
(:mod:`streams.live.runtime`), so the deploy reads them back:

- without ``--at``, ``T`` is the largest committed stream time (never before
  the newest version's time): ahead of every committed watermark by
  ``lateness``, which leaves the workers that long of stream time to read the
  record (they read it within a second; the commits lag a few seconds). With
  no committed stream time at all (nothing processed yet), ``T`` is the wall
  clock now. The first version on an empty topic is at time 0 (the base
  catalog, in force from the first event), as a worker publishes its folder;
- an explicit ``--at`` at or behind a committed watermark is refused, naming
  the partition and its watermark, as is one before the newest version's time
  (versions stay in time order, so each one's changes read against the one
  before).

Deploying the folder of the newest version again is a no-op. A rollback
(the folder of an older version) is a new version. The channels of the new
catalog get their decision topics before the record is published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streams.errors import ConfigError
from streams.live.catalog.kafka import (
    committed_stream_times,
    ensure_topic,
    load_all,
    publish,
    read_all,
)
from streams.live.catalog.record import CatalogRecord, Deployed, Version, diff, read_folder, short
from streams.live.catalog.versions import CatalogVersions, LiveCatalog
from streams.settings import Settings
from streams.timeutil import format_time
from streams.topology import Catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Who:
    """Who is publishing, from where, when (epoch ms), with what."""

    user: str
    host: str
    now: int
    tool: str

    def deployed(self, folder: Path) -> Deployed:
        return Deployed(self.user, self.host, self.now, self.tool, str(folder))


@dataclass(frozen=True)
class DeployResult:
    record: CatalogRecord
    published: bool  # False: the newest version is this folder already
    offset: int | None = None


def read_versions(settings: Settings, live: LiveCatalog | None = None) -> tuple[LiveCatalog, int]:
    """Every version on the topic (refused records logged and counted), and the offset after the last."""
    ensure_topic(settings)
    live = live if live is not None else LiveCatalog(CatalogVersions())
    raws = read_all(settings)
    load_all(raws, live)
    return live, (raws[-1].offset + 1 if raws else 0)


def choose_time(
    at: int | None, newest: Version | None, stream_times: Mapping[int, int], lateness: int, now: int
) -> int:
    """``T`` for a new version (module docstring); :class:`ConfigError` for one that is too early."""
    floor = newest.at if newest is not None else 0
    watermarks = {p: st - lateness for p, st in stream_times.items()}
    if at is None and newest is None:
        return 0  # the first version is the base catalog: in force from the first event, as a worker's
    if at is None:
        if not stream_times:
            return max(now, floor)
        return max(max(stream_times.values()), max(watermarks.values()) + 1, floor)
    if newest is not None and at < newest.at:
        raise ConfigError(
            f"--at {format_time(at)} is before the newest version {short(newest.hash)} ({format_time(newest.at)}):"
            " versions are deployed in time order"
        )
    behind = sorted((wm, p) for p, wm in watermarks.items() if at <= wm)
    if behind:
        wm, p = behind[-1]
        raise ConfigError(
            f"--at {format_time(at)} is not ahead of partition {p}'s committed watermark {format_time(wm)}:"
            f" the workers could not all switch at that time; use a later --at (or none: {format_time(wm + 1)}"
            " or later is chosen)"
        )
    return at


def deploy(settings: Settings, folder: Path, catalog: Catalog, at: int | None, who: Who) -> DeployResult:
    """Publish ``folder`` (already validated as ``catalog``) as a new version; a no-op if it is the newest."""
    from streams.live.topics import ensure_topics

    live, _ = read_versions(settings)
    newest = live.versions.newest()
    files = read_folder(folder)
    if newest is not None and newest.record.files == files:
        return DeployResult(newest.record, published=False)
    lateness = (newest.catalog if newest is not None else catalog).policies.lateness
    t = choose_time(at, newest, committed_stream_times(settings), lateness, who.now)
    changes = diff(newest.catalog if newest else None, newest.hash if newest else None, catalog)
    record = CatalogRecord(files=files, at=t, deployed=who.deployed(folder), changes=changes)
    # New channels need their decision topics before any worker decides on them.
    ensure_topics(settings, catalog)
    offset = publish(settings, record)
    return DeployResult(record, published=True, offset=offset)


def first_version(settings: Settings, folder: Path, who: Who) -> tuple[LiveCatalog, int]:
    """A starting worker's versions; with none on the topic, its folder is published first, at time 0
    (in force from the first event on). Returns the versions and the offset to follow from."""
    live, end = read_versions(settings)
    if live.versions.newest() is None:
        record = CatalogRecord(files=read_folder(folder), at=0, deployed=who.deployed(folder))
        offset = publish(settings, record)
        log.info("the catalog topic had no version: published %s as the first (%s)", folder, short(record.hash))
        # Read again from where the first read ended: another worker may have published too.
        live, end = read_versions(settings, live)
        assert offset < end
    newest = live.versions.newest()
    assert newest is not None
    if newest.record.files != read_folder(folder):
        log.warning(
            "the catalog topic's newest version is %s (%s), not the folder %s: the topic governs;"
            " publish a folder with 'tactful deploy'",
            short(newest.hash),
            format_time(newest.at),
            folder,
        )
    return live, end


def who_now() -> Who:
    """Who is publishing: the login name and host of this process, now."""
    import getpass
    import socket

    from streams import __version__

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        user = "unknown"
    return Who(user, socket.gethostname(), int(time.time() * 1000), f"tactful {__version__}")


def export(versions: list[Version], out: Path) -> list[tuple[int, Path]]:
    """Write each version's files to ``out/NN-<hash>/``; returns (time, folder) in order.
    ``out`` must be absent or empty: files left from another export would join a version."""
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty: export to a new folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, v in enumerate(versions, 1):
        folder = out / f"{i:02d}-{short(v.hash)}"
        folder.mkdir(exist_ok=True)
        for name, text in v.record.files.items():
            (folder / name).write_text(text, encoding="utf-8")
        written.append((v.at, folder))
    return written
