"""Following the catalog topic in a running worker (:mod:`streams.live.catalog`).

A plain aiokafka consumer with no group (each worker reads every version),
assigned the topic's one partition from the offset where the worker's
start-up read ended, run as a task on the worker's event loop, so that the
versions it hands to :class:`~streams.live.catalog.LiveCatalog` reach the
runtime between batches. A broker error restarts it from the next offset; it
never ends the worker. Public aiokafka API only.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.live.catalog.kafka import MAX_RECORD_BYTES, Raw, load_all
from streams.live.catalog.versions import LiveCatalog
from streams.live.faust.mirror_log import aiokafka_options
from streams.settings import Settings

log = logging.getLogger(__name__)


class CatalogFollower:
    """Follows the catalog topic from ``start`` on, handing each record to ``live`` (a worker task)."""

    def __init__(self, settings: Settings, live: LiveCatalog, start: int) -> None:
        self.settings = settings
        self.live = live
        self.start = start

    async def run(self) -> None:
        topic = self.settings.topics.catalog
        while True:
            consumer = AIOKafkaConsumer(
                **aiokafka_options(self.settings.kafka),
                group_id=None,
                enable_auto_commit=False,
                client_id=f"{self.settings.topics.app_id}-catalog",
                max_partition_fetch_bytes=MAX_RECORD_BYTES,
                fetch_max_bytes=MAX_RECORD_BYTES,
            )
            try:
                await consumer.start()
                tp = TopicPartition(topic, 0)
                consumer.assign([tp])
                consumer.seek(tp, self.start)
                while True:
                    batches = await consumer.getmany(tp, timeout_ms=1000)
                    for msg in batches.get(tp, []):
                        self.start = msg.offset + 1
                        load_all([Raw(msg.offset, msg.key, msg.value)], self.live)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("following the catalog topic %s failed (%r); retrying", topic, exc)
                await asyncio.sleep(1.0)
            finally:
                await consumer.stop()
