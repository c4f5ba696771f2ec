"""The catalog on Kafka: versions of the topologies folder that workers apply while they run.

A catalog version is a whole topologies folder, published by ``tactful
deploy`` as one immutable, content-addressed record on a compacted topic
(:mod:`~streams.live.catalog.record`: the format and the hash;
:mod:`~streams.live.catalog.kafka`: the topic). Every worker reads the topic
whole at start (publishing its ``--topologies`` folder as the first version if
there is none) and then follows it, keeping every version
(:mod:`~streams.live.catalog.versions`); each partition applies a version when
its watermark reaches the version's time, through the engine's
:class:`~streams.engine.CatalogSchedule` (contract section 8, as ``replay --switch``).
A record that does not load is refused with a log line and
``tactful_catalog_refused_total{reason}``; the worker keeps the versions it
had. :mod:`~streams.live.catalog.deploy` chooses and checks a version's time,
and exports the history for ``replay --switch``. The whole story, with the
record's bytes: ``docs/catalog.md``.
"""

from streams.live.catalog.record import CatalogRecord, Version, content_hash, load_record
from streams.live.catalog.versions import CatalogMetrics, CatalogVersions, LiveCatalog

__all__ = [
    "CatalogMetrics",
    "CatalogRecord",
    "CatalogVersions",
    "LiveCatalog",
    "Version",
    "content_hash",
    "load_record",
]
