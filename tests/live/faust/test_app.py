"""The Faust worker wrapper: what it changes in Faust's defaults, and why it matters."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer

from streams.live.faust.app import faust_worker
from streams.live.faust.consumer import batching_consumer
from streams.live.faust.table import changelog_key, state_table


@pytest.mark.parametrize("loglevel", ["warning", "error", "info"])
def test_the_root_logger_keeps_the_level_asked_for(loglevel: str) -> None:
    # Faust's spinner would set the root logger to DEBUG at warning and above, and
    # every aiokafka send would then build a log record (11% of a busy worker's samples).
    app = faust.App("test-app-logging", broker="kafka://127.0.0.1:1", web_enabled=False)
    worker = faust_worker(app, loglevel)
    logger = logging.Logger("root-under-test", level=logging.WARNING)
    logger.addHandler(logging.NullHandler())
    worker.on_setup_root_logger(logger, logging.getLevelName(loglevel.upper()))
    assert logger.level == logging.WARNING
    assert not logger.isEnabledFor(logging.DEBUG)
    assert [type(h) for h in logger.handlers] == [logging.NullHandler]


def test_faust_alone_would_turn_debug_on() -> None:
    # The hazard the wrapper exists for; if Faust drops it, this says so.
    app = faust.App("test-app-logging-plain", broker="kafka://127.0.0.1:1", web_enabled=False)
    worker = faust.Worker(app, loglevel="warning")
    logger = logging.Logger("root-under-test", level=logging.WARNING)
    logger.addHandler(logging.NullHandler())
    worker.on_setup_root_logger(logger, logging.WARNING)
    assert logger.isEnabledFor(logging.DEBUG)


def test_the_consumer_asks_the_broker_for_the_configured_fetch_wait() -> None:
    # Faust hard-codes 1.5 s; the batching consumer's thread replaces it before aiokafka
    # builds its fetcher. Reaches into aiokafka's private field on purpose: an upgrade
    # that renames it must fail here, not quietly bring the 1.5 s back.
    async def build() -> Any:
        app = faust.App("test-app-fetch-wait", broker="kafka://127.0.0.1:1", web_enabled=False)

        async def handle(batch: list[Any]) -> None:
            return None

        app.transport.Consumer = batching_consumer("input", handle, 10, fetch_max_wait_ms=42)
        thread = app.consumer._new_consumer_thread()
        consumer = thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(build()) == 42
    # ...and the field is what aiokafka hands its fetcher when the consumer starts.
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)


@pytest.mark.parametrize("customer_id", ["c000123", 'q"uo\\te', "é-ü", "tab\tx", "\u2028"])
def test_state_is_written_under_the_key_faust_would_write_and_reads_back(customer_id: str) -> None:
    # The runtime writes the changelog itself (in record batches); Faust's recovery must
    # read it as if the table had written it.
    app = faust.App(
        "test-app-changelog", broker="kafka://127.0.0.1:1", key_serializer="raw", value_serializer="raw"
    )
    table = state_table(app, 4)
    faust_key, _ = table.changelog_topic.prepare_key(customer_id, None)
    assert changelog_key(customer_id) == faust_key
    assert app.serializers.loads_key(str, changelog_key(customer_id), serializer=table.key_serializer) == customer_id
